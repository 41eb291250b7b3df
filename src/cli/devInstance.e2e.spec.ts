import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, cliEnv, runCli } from '../../test/support/cli.js';
import { createEmptyDatabase, type TestDatabase } from '../../test/support/database.js';
import { waitFor } from '../../test/support/waitFor.js';

let cwd: string;
let database: TestDatabase;
let dev: ChildProcess | undefined;
let devErrors = '';

const instanceFile = () => path.join(cwd, '.tributary', 'instance.json');

beforeAll(async () => {
  cwd = await mkdtemp(path.join(tmpdir(), 'tributary-dev-'));
  database = await createEmptyDatabase('dev_instance');
});

afterAll(async () => {
  if (dev && dev.exitCode === null) {
    dev.kill('SIGKILL');
    await once(dev, 'exit');
  }
  // The demo's capture left its slot: a database with a slot cannot be dropped.
  const client = new pg.Client({ connectionString: database.adminUrl });
  await client.connect();
  await client.query(
    'select pg_drop_replication_slot(slot_name) from pg_replication_slots where database = $1',
    [database.name],
  );
  await client.end();
  await database.drop();
  await rm(cwd, { recursive: true, force: true });
});

/** Another command run from the folder of `dev`, with no config and no DATABASE_URL. */
const tributary = (...args: string[]) => runCli(args, { cwd, env: { DATABASE_URL: undefined } });

describe('the commands run from the folder of a running `tributary dev`', () => {
  it('find its database, config and sources without flags', async () => {
    // The demo (no config here), on the test server instead of an embedded one.
    dev = spawn(process.execPath, [BIN, 'dev', '--no-workload', '--port', '0'], {
      cwd,
      env: cliEnv({ DATABASE_URL: database.url }),
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    dev.stderr!.on('data', (chunk: Buffer) => {
      devErrors += chunk.toString();
    });
    await waitFor(() => existsSync(instanceFile()), {
      what: () => `dev to record its instance (stderr: ${devErrors})`,
      timeoutMs: 60_000,
    });
    const instance = JSON.parse(await readFile(instanceFile(), 'utf8'));
    expect(instance).toMatchObject({
      pid: dev.pid,
      databaseUrl: database.url,
      sources: { shop: database.url },
    });

    // An order through the API dev serves.
    const response = await fetch(instance.apiUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        query: `mutation { appendEvents(streamId: "order-t1", events: [{ type: "OrderPlaced",
          data: { orderId: "t1", customer: "ada", productId: 1, quantity: 2 } }]) { position } }`,
      }),
    });
    expect(((await response.json()) as { errors?: unknown }).errors).toBeUndefined();

    await waitFor(async () => /shop\s+running\s+1\s+0\s/.test((await tributary('status')).stdout), {
      what: 'status to show the shop projection caught up',
      timeoutMs: 30_000,
    });

    // The capture records that it streams on its own schedule: a loaded machine can show the
    // projection caught up (on the snapshot's rows) before it has.
    let shown = '';
    const cdc = await waitFor(
      async () => {
        const result = await tributary('cdc', 'status');
        expect(result.code, result.stderr).toBe(0);
        shown = result.stdout;
        return /^shop {2}\[streaming\] {2}stream cdc-shop\n/.test(result.stdout) ? result : undefined;
      },
      {
        what: () => `cdc status to show the shop source streaming (last: ${shown})`,
        timeoutMs: 30_000,
        intervalMs: 200,
      },
    );
    expect(cdc.stdout).toMatch(/\n {2}slot {10}tributary_shop_[0-9a-f]+ {2}\(in use/);

    const rebuilt = await tributary('rebuild', 'shop');
    expect(rebuilt.code, rebuilt.stderr).toBe(0);
    expect(rebuilt.stdout).toMatch(/Rebuilt shop v1 \(\d+ events\) and swapped it in\./);

    const replayed = await tributary('replay', 'shop', '--from', '2000-01-01T00:00:00Z');
    expect(replayed.code, replayed.stderr).toBe(0);
    expect(replayed.stdout).toMatch(/Replayed \d+ events to shop\./);

    const schema = await tributary('schema');
    expect(schema.code, schema.stderr).toBe(0);
    expect(schema.stdout).toMatch(/^type OrderLines \{$/m);
    expect(schema.stdout).toMatch(/^ {2}orderLines\(/m);
    expect(schema.stdout).toMatch(/^type Mutation \{[^}]*appendEvents\(/m);

    const exited = once(dev, 'exit');
    dev.kill('SIGTERM');
    expect((await exited)[0]).toBe(0);
    expect(existsSync(instanceFile())).toBe(false);
  });

  it('ignore the record of a `dev` that is gone, with a note', async () => {
    const gone = spawn(process.execPath, ['-e', '']);
    await once(gone, 'exit');
    await mkdir(path.dirname(instanceFile()), { recursive: true });
    await writeFile(
      instanceFile(),
      JSON.stringify({ pid: gone.pid, databaseUrl: database.url, config: undefined, sources: {} }),
    );
    // `schema` needs no database: without the record it serves no views.
    const schema = await tributary('schema');
    expect(schema.code, schema.stderr).toBe(0);
    expect(schema.stderr).toMatch(/ignoring the record of a `tributary dev` that is no longer running/);
    expect(schema.stdout).not.toMatch(/OrderLines/);
  });
});
