import { chmod } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import {
  runCli,
  runCapture as spawnCapture,
  writeSourcesConfig,
} from '../../../test/support/captureProcess.js';
import { captureSpec } from '../../../test/support/captureSpec.js';
import {
  foldChanges,
  randomWrite,
  readWholeStream,
  type SourceDatabase,
  sourceBinDir,
} from '../../../test/support/cdcSource.js';
import type { TestDatabase } from '../../../test/support/database.js';
import { waitFor } from '../../../test/support/waitFor.js';
import { type Pool, startEmbeddedPostgres } from '../../db/index.js';
import type { Envelope } from '../log/index.js';
import { startCapture } from './index.js';

let db: TestDatabase;
let pool: Pool;
let src: SourceDatabase;
let source: pg.Client;
let dir: string;

captureSpec((spec) => ({ db, pool, src, source, dir } = spec));

const writeConfig = (name: string, sources: Record<string, unknown>) =>
  writeSourcesConfig(dir, name, sources);
const runCapture = (config: string, nodeOptions = '') => spawnCapture(config, db.url, nodeOptions);
const cli = (config: string, args: string[]) => runCli(config, db.url, args);
const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// Against a second source server version (the pg15-source project) the heaviest tests run
// smaller, to keep the suite's time in bounds: the code paths are the same, only fewer rounds.
const otherVersion = sourceBinDir() !== undefined;
const KILLS = otherVersion ? 6 : 22;
const KILLS_IN_SNAPSHOT = otherVersion ? 3 : 6;
const SNAPSHOT_ROWS = otherVersion ? 40_000 : 60_000;

describe('kill -9 and restart', () => {
  it(`keeps each source transaction exactly once, in commit order, across ${KILLS} SIGKILLs during snapshot and streaming`, async () => {
    await source.query(`create table items (id int primary key, v text);
      create table audit (seq int primary key);
      insert into items select i, 's' || i from generate_series(1, ${SNAPSHOT_ROWS}) i;`);
    const config = await writeConfig('kill', {
      kill: {
        url: src.url,
        tables: ['public.items', 'public.audit'],
        slot: `s_kill_${src.tag}`,
        publication: `p_kill_${src.tag}`,
        snapshotChunkSize: 200,
      },
    });
    const writer = new pg.Client({ connectionString: src.url });
    await writer.connect();
    let seq = 0;
    let stop = false;
    const writing = (async () => {
      while (!stop) {
        await randomWrite(writer, ++seq, 25_000);
        await delay(2);
      }
    })();

    let killedInSnapshot = 0;
    let killedStreaming = 0;
    for (let round = 0; round < KILLS; round++) {
      const child = runCapture(config);
      const inSnapshot = round < KILLS_IN_SNAPSHOT;
      // An early round may find the snapshot already done (a kill landed late): then it streams.
      await child.seen(inSnapshot ? ['snapshot started', 'streaming changes'] : ['streaming changes']);
      // A kill in the snapshot comes soon after it (re)starts: on a quiet machine the whole
      // snapshot takes well under a second, and longer waits let it finish before the kills.
      await delay(Math.floor(Math.random() * (inSnapshot ? 150 : 1500)));
      child.process.kill('SIGKILL');
      await child.exited;
      const { rowCount } = await pool.query('select 1 from tributary.cdc_checkpoints where source = $1', [
        'kill',
      ]);
      if (rowCount === 0) killedInSnapshot++;
      else killedStreaming++;
    }
    stop = true;
    await writing;
    await writer.end();
    expect(killedInSnapshot).toBeGreaterThanOrEqual(2);
    expect(killedInSnapshot + killedStreaming).toBe(KILLS);

    const final = runCapture(config);
    const all = await waitFor(
      async () => {
        const read = await readWholeStream(pool, 'cdc-kill');
        return read.filter((e) => e.type.startsWith('public.audit.')).length >= seq ? read : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 500, what: `all ${seq} audit rows` },
    );
    final.process.kill('SIGTERM');
    await final.exited;

    // Exactly once: every writer transaction (named by its audit seq) once, snapshot or stream.
    const seqs = all
      .filter((e) => e.type.startsWith('public.audit.'))
      .map((e) => (e.data.after as { seq: number }).seq);
    expect(seqs.length).toBe(seq);
    expect(new Set(seqs).size).toBe(seq);
    // In commit order: LSNs never go back, and a transaction's events are contiguous.
    const streamed = all.filter((e) => !e.metadata.snapshot);
    const lsns = streamed.map((e) => e.metadata.lsn as string);
    const key = (lsn: string) =>
      lsn
        .split('/')
        .map((part) => part.padStart(8, '0'))
        .join('');
    for (let i = 1; i < lsns.length; i++) expect(key(lsns[i]!) >= key(lsns[i - 1]!)).toBe(true);
    const streamedSeqs = streamed
      .filter((e) => e.type === 'public.audit.insert')
      .map((e) => (e.data.after as { seq: number }).seq);
    expect(streamedSeqs).toEqual([...streamedSeqs].sort((a, b) => a - b));
    expect(new Set(lsns).size).toBe(streamedSeqs.length);
    // One snapshot only, and the folded log equals the table.
    expect(new Set(all.filter((e) => e.metadata.snapshot).map((e) => e.metadata.lsn)).size).toBe(1);
    const { rows } = await source.query<{ id: number; v: string }>('select id, v from items');
    expect(foldChanges(all).get('public.items')).toEqual(
      new Map(rows.map((r) => [JSON.stringify({ id: r.id }), r])),
    );

    // Operations on the same source, through the CLI.
    const status = await cli(config, ['cdc', 'status', '--json']);
    expect(status.code).toBe(0);
    const [entry] = JSON.parse(status.stdout) as Array<Record<string, unknown>>;
    expect(entry).toMatchObject({
      source: 'kill',
      state: 'stopped',
      running: false,
      slotExists: true,
      slotActive: false,
      slotProblem: null,
      streamId: 'cdc-kill',
      snapshot: { done: true },
    });
    expect(entry!.transactions).toBe(new Set(lsns).size);
    expect(entry!.lagBytes).toEqual(expect.any(Number));
    expect(entry!.retainedBytes).toBeGreaterThanOrEqual(entry!.lagBytes as number);
    expect(entry!.retainedSize).toMatch(/^\d+ (bytes|kB|MB)$/);
    expect(entry!.walStatus).toEqual(expect.any(String));
    const text = await cli(config, ['cdc', 'status']);
    expect(text.stdout).toMatch(/^kill {2}\[stopped\]/m);
    expect(text.stdout).toMatch(/capture {7}not running \(last report \d{4}-.*Z, \d+ s ago\)/);
    expect(text.stdout).toMatch(/WAL held {6}\d+ (bytes|kB|MB) on the source \(from restart_lsn\)/);
    const refused = await cli(config, ['cdc', 'drop', 'kill']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/--yes/);
    const dropped = await cli(config, ['cdc', 'drop', 'kill', '--yes']);
    expect(dropped.stdout).toMatch(/slot '\w+' dropped; publication '\w+' dropped; checkpoint forgotten/);
    const { rowCount } = await source.query('select 1 from pg_replication_slots where slot_name = $1', [
      `s_kill_${src.tag}`,
    ]);
    expect(rowCount).toBe(0);
    expect((await pool.query("select 1 from tributary.cdc_checkpoints where source = 'kill'")).rowCount).toBe(
      0,
    );
    console.log(
      `kill test: ${killedInSnapshot} kills during the snapshot, ${killedStreaming} while streaming, ${seq} source transactions`,
    );
  });
});

// Bounded memory is a property of the capture process, not of the source's version: once is enough.
describe.skipIf(otherVersion)('a big source transaction', () => {
  it('is captured whole with bounded memory (the capture runs with a 96 MB heap; the transaction is ~100 MB)', async () => {
    await source.query(`create table big (id int primary key, payload text);
      alter table big alter column payload set storage external`);
    const config = await writeConfig('big', {
      big: {
        url: src.url,
        tables: ['public.big'],
        slot: `s_big_${src.tag}`,
        publication: `p_big_${src.tag}`,
      },
    });
    const rowsCount = 50_000;
    const child = runCapture(config, '--max-old-space-size=96');
    await child.seen(['streaming changes']);
    // ~2 KB of text per row that does not compress: the transaction alone exceeds the heap.
    await source.query(
      `insert into big select i, (select string_agg(md5(i::text || '-' || j::text), '') from generate_series(1, 64) j)
         from generate_series(1, $1) i`,
      [rowsCount],
    );
    let peakKb = 0;
    const count = await waitFor(
      async () => {
        try {
          const status = await import('node:fs/promises').then((fs) =>
            fs.readFile(`/proc/${child.process.pid}/status`, 'utf8'),
          );
          peakKb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? peakKb);
        } catch {
          // not on Linux, or the child is gone (the next check reports it)
        }
        if (child.process.exitCode !== null) return -1; // died (out of memory): fail at once
        const { rows } = await pool.query<{ n: string }>(
          "select count(*) as n from tributary.events where stream_id = 'cdc-big'",
        );
        return Number(rows[0]!.n) >= rowsCount ? Number(rows[0]!.n) : undefined;
      },
      { timeoutMs: 180_000, intervalMs: 500, what: `${rowsCount} events` },
    );
    expect(child.process.exitCode).toBeNull();
    child.process.kill('SIGTERM');
    await child.exited;
    expect(count).toBe(rowsCount);
    // One source transaction: one log transaction.
    const { rows } = await pool.query<{ n: string }>(
      "select count(distinct transaction_id) as n from tributary.events where stream_id = 'cdc-big'",
    );
    expect(Number(rows[0]!.n)).toBe(1);
    const sample: Envelope[] = await readWholeStream(pool, 'cdc-big').then((all) => all.slice(0, 1));
    expect((sample[0]!.data.after as { payload: string }).payload).toHaveLength(2048);
    console.log(
      `big transaction: ${rowsCount} rows (~${Math.round((rowsCount * 2048) / 1e6)} MB), capture peak RSS ${Math.round(peakKb / 1024)} MB`,
    );
  });
});

describe('the source server restarting', () => {
  it('resumes from the checkpoint once the source is back, nothing lost or doubled', async () => {
    const port = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, '127.0.0.1', () => {
        const address = server.address();
        server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
      });
    });
    const dataDir = path.join(dir, 'restart');
    await chmod(dir, 0o755); // as root the server runs as `postgres`, which must reach it
    const binDir = sourceBinDir();
    const options = {
      dataDir,
      port,
      database: 'shop',
      settings: { fsync: 'off' },
      ...(binDir === undefined ? {} : { binDir }),
    };
    let server = await startEmbeddedPostgres(options);
    const write = async (from: number, to: number) => {
      const client = new pg.Client({ connectionString: server.url });
      await client.connect();
      for (let id = from; id <= to; id++) await client.query('insert into orders values ($1)', [id]);
      await client.end();
    };
    const count = async () =>
      Number(
        (
          await pool.query<{ n: string }>(
            "select count(*) as n from tributary.events where stream_id = 'cdc-restart'",
          )
        ).rows[0]!.n,
      );
    // The table first: a configured table missing on the source stops capture for good.
    const setup = new pg.Client({ connectionString: server.url });
    await setup.connect();
    await setup.query('create table orders (id int primary key)');
    await setup.end();
    const capture = startCapture({
      sources: { restart: { url: server.url, tables: ['public.orders'] } },
      pool,
    });
    try {
      await waitFor(() => capture.status()[0]?.state === 'streaming', {
        timeoutMs: 60_000,
        what: 'streaming',
      });
      await write(1, 100);
      await waitFor(async () => (await count()) >= 50, { timeoutMs: 60_000, what: 'the first changes' });
      await server.stop();
      await waitFor(() => capture.status()[0]?.state === 'reconnecting', {
        timeoutMs: 30_000,
        what: 'reconnecting',
      });
      server = await startEmbeddedPostgres(options);
      await write(101, 200);
      await waitFor(async () => (await count()) >= 200, {
        timeoutMs: 90_000,
        intervalMs: 200,
        what: '200 events',
      });
      const all = await readWholeStream(pool, 'cdc-restart');
      expect(all.map((e) => (e.data.after as { id: number }).id)).toEqual(
        Array.from({ length: 200 }, (_, i) => i + 1),
      );
    } finally {
      await capture.stop();
      await server.stop();
    }
  });
});

describe('a source that cannot be captured', () => {
  it('makes `cdc run` exit 1 at once with the reason, and `cdc status` then shows it stopped with the error and its time', async () => {
    await source.query('create table keyless (a int, b text); create table keyed (id int primary key)');
    const config = await writeConfig('keyless', {
      keyless: {
        url: src.url,
        tables: ['public.keyed', 'public.keyless'],
        slot: `s_keyless_${src.tag}`,
        publication: `p_keyless_${src.tag}`,
      },
    });
    const started = Date.now();
    const run = await cli(config, ['cdc', 'run']);
    expect(run.code).toBe(1);
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(run.stderr).toMatch(/tributary: Source 'keyless': table public\.keyless has no primary key/);
    expect(run.stderr).toMatch(/→ Add a primary key/);
    expect(run.stderr).not.toMatch(/capture failed; retrying/);

    const status = await cli(config, ['cdc', 'status']);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/^keyless {2}\[failed\]/m);
    expect(status.stdout).toMatch(/capture {7}not running/);
    expect(status.stdout).toMatch(
      /last error {4}\d{4}-\d\d-\d\dT[\d:.]+Z, \d+ s ago: Source 'keyless': table public\.keyless has no primary key/,
    );
    const { rowCount } = await source.query('select 1 from pg_replication_slots where slot_name = $1', [
      `s_keyless_${src.tag}`,
    ]);
    expect(rowCount).toBe(0);
  });
});
