import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, PACKAGE_ENTRY, runCli } from '../../test/support/cli.js';
import { createEmptyDatabase, type TestDatabase } from '../../test/support/database.js';
import { waitFor } from '../../test/support/waitFor.js';
import { migrate } from '../db/index.js';

let cwd: string;
let databaseUrl: string;
let database: TestDatabase;
let pool: pg.Pool;

function tributary(args: string[], env: Record<string, string> = {}) {
  return runCli(args, { cwd, env: { DATABASE_URL: databaseUrl, ...env } });
}

const CONFIG = `import { defineConfig, defineProjection, defineView } from ${JSON.stringify(PACKAGE_ENTRY)};
const totals = defineView({
  name: 'cli_totals',
  columns: { key: { type: 'text' }, total: { type: 'bigint', nullable: false } },
  primaryKey: ['key'],
});
export default defineConfig({
  projections: [
    defineProjection({
      name: 'cli_totals',
      version: Number(process.env.PROJECTION_VERSION ?? 1),
      views: [totals],
      filter: { types: ['Added'] },
      onError: 'dead-letter',
      retry: { maxAttempts: 1 },
      async handle(event, ctx) {
        if (event.data.bad) throw new Error('bad event ' + event.data.n);
        const row = await ctx.get(totals, { key: String(event.data.key) });
        await ctx.upsert(totals, { key: String(event.data.key), total: String(Number(row?.total ?? 0) + Number(event.data.n)) });
      },
    }),
  ],
  runner: { leaseTimeoutMs: 2000 },
});
`;

beforeAll(async () => {
  cwd = await mkdtemp(path.join(tmpdir(), 'tributary-proj-cli-'));
  await writeFile(path.join(cwd, 'tributary.config.ts'), CONFIG);
  database = await createEmptyDatabase('cli_proj');
  databaseUrl = database.url;
  await migrate(databaseUrl);
  pool = new pg.Pool({ connectionString: databaseUrl, max: 2 });
  const n = Array.from({ length: 40 }, (_, i) => i + 1);
  await pool.query(
    `select tributary.append_events('cli', 'any', $1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], false)`,
    [
      n.map((i) => `e${i}`),
      n.map(() => 'Added'),
      n.map((i) => JSON.stringify({ key: `k${i % 4}`, n: i, bad: i === 13 })),
      n.map(() => '{}'),
      n.map(() => null),
    ],
  );
});

afterAll(async () => {
  await pool.end();
  await rm(cwd, { recursive: true, force: true });
  await database.drop();
});

const total = async () =>
  Number(
    (await pool.query('select coalesce(sum(total), 0)::int as t from tributary_views.cli_totals')).rows[0].t,
  );

describe('projection commands', () => {
  it.each([['start'], ['status'], ['rebuild'], ['replay'], ['deadletters'], ['deadletters', 'retry']])(
    '%j --help prints usage',
    async (...command) => {
      const run = await tributary([...command, '--help']);
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(new RegExp(`Usage: tributary ${command.join(' ')}`));
    },
  );

  it('start runs the workers until SIGTERM; status, deadletters, rebuild and replay work on them', async () => {
    const start = spawn(process.execPath, [BIN, 'start', '--no-api'], {
      cwd,
      env: { ...process.env, DATABASE_URL: databaseUrl, TRIBUTARY_LOG_LEVEL: 'warn' },
      stdio: 'ignore',
    });
    try {
      const expected = (40 * 41) / 2 - 13;
      await waitFor(async () => (await total()) === expected, { what: 'the view', timeoutMs: 60_000 });
      const status = await tributary(['status']);
      expect(status.code).toBe(0);
      expect(status.stdout).toMatch(/PROJECTION\s+STATE\s+VERSION\s+LAG/);
      expect(status.stdout).toMatch(/cli_totals\s+running\s+1\s+0\s+0/);
      const json = JSON.parse((await tributary(['status', '--json'])).stdout);
      expect(json[0]).toMatchObject({ name: 'cli_totals', state: 'running', lagEvents: 0, deadLetters: 1 });
      expect(json[0].leaseOwner).toEqual(expect.any(String));
    } finally {
      const exited = start.exitCode === null ? once(start, 'exit') : Promise.resolve([start.exitCode]);
      start.kill('SIGTERM');
      const [code] = await exited;
      expect(code).toBe(0);
    }
    const { rows } = await pool.query(
      `select lease_owner from tributary.projections where name = 'cli_totals'`,
    );
    expect(rows[0].lease_owner).toBeNull();

    const list = await tributary(['deadletters', 'list']);
    expect(list.stdout).toMatch(/#\d+\s+cli_totals\s+\S+\s+Added on cli[\s\S]*bad event 13/);
    const id = /#(\d+)/.exec(list.stdout)![1]!;
    const retried = await tributary(['deadletters', 'retry', id]);
    expect(retried.code).toBe(1);
    expect(retried.stdout).toMatch(new RegExp(`#${id} failed again: bad event 13`));
    expect((await tributary(['deadletters', 'discard', '--all'])).stdout).toMatch(/Discarded 1 dead letter/);

    const rebuilt = await tributary(['rebuild', 'cli_totals'], { PROJECTION_VERSION: '2' });
    expect(rebuilt.stderr + rebuilt.stdout).toMatch(/Rebuilt cli_totals v2 \(40 events\) and swapped it in/);
    // The progress bar (a line per frame when not on a terminal) ends on every event done.
    expect(rebuilt.stderr.trim().split('\n').at(-1)).toMatch(
      /rebuild cli_totals v2 .* 40\/40 events .* ETA 0s$/,
    );
    expect(rebuilt.stderr).not.toMatch(/ETA (NF|LL)/);
    expect(await total()).toBe((40 * 41) / 2 - 13);
    expect((await tributary(['status'], { PROJECTION_VERSION: '2' })).stdout).toMatch(
      /cli_totals\s+running\s+2\s/,
    );
    expect((await tributary(['status'])).stdout).toMatch(/cli_totals\s+running\s+2 \(config: 1\)/);

    // Its handler adds: a replay would count again, so it is refused unless forced.
    const refused = await tributary(['replay', 'cli_totals', '--from', '2000-01-01T00:00:00Z'], {
      PROJECTION_VERSION: '2',
    });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(
      /does not declare replay: 'idempotent'[\s\S]*→ Run `tributary rebuild cli_totals`[\s\S]*--force/,
    );
    expect(await total()).toBe((40 * 41) / 2 - 13);
    const replayed = await tributary(['replay', 'cli_totals', '--from', '2000-01-01T00:00:00Z', '--force'], {
      PROJECTION_VERSION: '2',
    });
    expect(replayed.stdout, replayed.stderr).toMatch(/Replayed 40 events to cli_totals/);
    const bad = await tributary(['replay', 'cli_totals', '--from', 'yesterday-ish'], {
      PROJECTION_VERSION: '2',
    });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/neither a log position nor a time[\s\S]*→/);
    const unknown = await tributary(['rebuild', 'nope']);
    expect(unknown.stderr).toMatch(/Unknown projection 'nope'[\s\S]*Known projections: cli_totals/);
  });
});
