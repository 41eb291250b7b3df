import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliRun, runCli } from '../../test/support/cli.js';
import { createEmptyDatabase, type TestDatabase } from '../../test/support/database.js';

let cwd: string;
let databaseUrl: string;
let database: TestDatabase;

function tributary(args: string[], env: Record<string, string> = {}, dir = cwd): Promise<CliRun> {
  return runCli(args, { cwd: dir, env });
}

beforeAll(async () => {
  cwd = await mkdtemp(path.join(tmpdir(), 'tributary-cli-'));
  database = await createEmptyDatabase('cli');
  databaseUrl = database.url;
});

afterAll(async () => {
  await rm(cwd, { recursive: true, force: true });
  await database.drop();
});

describe('tributary CLI', () => {
  it.each([
    [[], /Usage: tributary \[options\] \[command\][\s\S]*migrate[\s\S]*dev/],
    [['migrate'], /Usage: tributary migrate[\s\S]*several\s+processes/],
    [['dev'], /Usage: tributary dev[\s\S]*embedded PostgreSQL/],
  ])('%j --help prints usage', async (command, usage) => {
    const run = await tributary([...command, '--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(usage);
  });

  it('migrate applies the migrations to DATABASE_URL, then finds nothing to do', async () => {
    const first = await tributary(['migrate'], { DATABASE_URL: databaseUrl });
    expect(first).toMatchObject({ code: 0 });
    expect(first.stdout).toMatch(/Applied \d+ migration\(s\): log, /);
    const second = await tributary(['migrate'], { DATABASE_URL: databaseUrl });
    expect(second.stdout).toMatch(/Database is up to date/);
  });

  it('reads DATABASE_URL over the config file, and the config file with --config', async () => {
    const dir = await mkdtemp(path.join(cwd, 'cfg-'));
    await writeFile(
      path.join(dir, 'tributary.config.js'),
      `export default { database: { url: 'postgres://nobody@127.0.0.1:1/none' } };`,
    );
    await writeFile(
      path.join(dir, 'good.config.js'),
      `export default { database: { url: '${databaseUrl}' } };`,
    );
    expect((await tributary(['migrate'], { DATABASE_URL: databaseUrl }, dir)).code).toBe(0);
    expect((await tributary(['--config', 'good.config.js', 'migrate'], {}, dir)).stdout).toMatch(
      /up to date/,
    );
    const refused = await tributary(['migrate'], {}, dir);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(
      /tributary: cannot reach PostgreSQL: .*ECONNREFUSED[\s\S]*→ Check DATABASE_URL/,
    );
  });

  it('prints a typed error with its hint and exits 1, also when `dev` fails to start', async () => {
    const dir = await mkdtemp(path.join(cwd, 'bad-'));
    await writeFile(path.join(dir, 'tributary.config.js'), 'export default { embedded: { port: -4 } };');
    for (const command of ['migrate', 'dev']) {
      const run = await tributary([command], {}, dir);
      expect(run.code, run.stderr).toBe(1);
      expect(run.stderr).toMatch(
        /tributary: .*embedded\.port must be an integer from 0 to 65535[\s\S]*→ Fix the value/,
      );
    }
  });
});
