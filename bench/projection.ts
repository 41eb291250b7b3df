/**
 * `npm run bench -- projection`: a per-key count-and-sum view over 200k events with 10k
 * keys, processed from the start of the log, against two baselines in the same run:
 * (a) reading the same events with the raw log read and doing nothing, and
 * (b) computing the same view in one SQL `INSERT … SELECT … GROUP BY`.
 * Then live latency: append commit to view commit under a steady load, p50 and p99.
 *
 * Uses DATABASE_URL when set, else a fresh embedded server (fsync off) in a temporary directory.
 * Options (environment): BENCH_EVENTS (200000), BENCH_KEYS (10000), BENCH_LIVE_SECONDS (10),
 * BENCH_LIVE_RATE (200 appends a second), BENCH_BATCH (1000, the runner's default batch size).
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { migrate, quoteIdentifier, startEmbeddedPostgres } from '../src/db/index.js';
import { createPostgresEventStore, readAll, readHead, START } from '../src/ingest/index.js';
import { defineProjection, defineView, startWorkers } from '../src/projections/index.js';

const TOTAL = Number(process.env.BENCH_EVENTS ?? 200_000);
const KEYS = Number(process.env.BENCH_KEYS ?? 10_000);
const LIVE_SECONDS = Number(process.env.BENCH_LIVE_SECONDS ?? 10);
const LIVE_RATE = Number(process.env.BENCH_LIVE_RATE ?? 200);
const BATCH = Number(process.env.BENCH_BATCH ?? 1000);

const totals = defineView({
  name: 'bench_totals',
  columns: {
    key: { type: 'text' },
    count: { type: 'bigint', nullable: false },
    sum: { type: 'bigint', nullable: false },
  },
  primaryKey: ['key'],
});

const projection = defineProjection({
  name: 'bench_totals',
  version: 1,
  views: [totals],
  filter: { types: ['Measured'] },
  async handle(event, ctx) {
    const key = event.data.key as string;
    const row = await ctx.get(totals, { key });
    await ctx.upsert(totals, {
      key,
      count: String(Number(row?.count ?? 0) + 1),
      sum: String(Number(row?.sum ?? 0) + (event.data.value as number)),
    });
  },
});

async function openDatabase(): Promise<{ url: string; close(): Promise<void> }> {
  const external = process.env.DATABASE_URL;
  const database = `bench_projection_${Date.now().toString(36)}`;
  let adminUrl: string;
  let stopServer = async () => {};
  if (external) {
    adminUrl = external;
  } else {
    const dir = await mkdtemp(path.join(tmpdir(), 'tributary-bench-proj-'));
    await chmod(dir, 0o755);
    const server = await startEmbeddedPostgres({
      dataDir: path.join(dir, 'pgdata'),
      settings: { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off' },
    });
    adminUrl = server.adminUrl;
    stopServer = async () => {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    };
  }
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`create database ${quoteIdentifier(database)}`);
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = `/${database}`;
  return {
    url: url.toString(),
    async close() {
      const client = new pg.Client({ connectionString: adminUrl });
      await client.connect();
      await client.query(`drop database if exists ${quoteIdentifier(database)} with (force)`);
      await client.end();
      await stopServer();
    },
  };
}

const rate = (events: number, ms: number) => Math.round((events * 1000) / ms);
const fmt = (n: number) => n.toLocaleString('en-US');

export async function benchProjection(): Promise<void> {
  const db = await openDatabase();
  await migrate(db.url);
  const pool = new pg.Pool({ connectionString: db.url, max: 4 });
  try {
    console.log(`Appending ${fmt(TOTAL)} events over ${fmt(KEYS)} keys…`);
    for (let start = 0; start < TOTAL; start += 2000) {
      const ids = Array.from({ length: Math.min(2000, TOTAL - start) }, (_, i) => start + i);
      await pool.query(
        `select tributary.append_events($1, 'any', $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], false)`,
        [
          `sensor-${start % 50}`,
          ids.map((i) => `m-${i}`),
          ids.map(() => 'Measured'),
          ids.map((i) => JSON.stringify({ key: `k${(i * 7919) % KEYS}`, value: i % 101 })),
          ids.map(() => '{}'),
          ids.map(() => null),
        ],
      );
    }
    await pool.query('vacuum analyze tributary.events');

    // (a) the raw log read, doing nothing with the events: the same reads the runner makes
    // (same filter, pages of the runner's batch size), so the ratio compares like with like.
    const client = await pool.connect();
    let started = performance.now();
    let position = START;
    let read = 0;
    for (;;) {
      const page = await readAll(client, position, { limit: BATCH, filter: { types: ['Measured'] } });
      read += page.events.length;
      if (page.events.length < BATCH) break;
      position = page.next;
    }
    const rawMs = performance.now() - started;
    client.release();

    // (b) the same view in one SQL statement
    await pool.query(
      'create table bench_sql (key text primary key, count bigint not null, sum bigint not null)',
    );
    started = performance.now();
    await pool.query(
      `insert into bench_sql select data->>'key', count(*), sum((data->>'value')::bigint)
       from tributary.events where type = 'Measured' group by 1`,
    );
    const sqlMs = performance.now() - started;

    // the projection, from the start of the log
    const head = await readHead(pool);
    let caughtUp: () => void = () => {};
    const done = new Promise<void>((resolve) => {
      caughtUp = resolve;
    });
    const commits: Array<{ position: string; at: number }> = [];
    started = performance.now();
    const workers = startWorkers({
      url: db.url,
      projections: [projection],
      batchSize: BATCH,
      onCommit: ({ position: committed }) => {
        commits.push({ position: committed, at: performance.now() });
        if (committed >= head) caughtUp();
      },
    });
    await done;
    const projectionMs = performance.now() - started;
    const check = await pool.query(
      `select count(*)::int as differing from bench_sql s full join tributary_views.bench_totals t using (key)
       where s.count is distinct from t.count or s.sum is distinct from t.sum`,
    );

    // live latency: append commit → view commit, one event per append at a steady rate
    const store = createPostgresEventStore({ connectionString: db.url, poolSize: 2 });
    const appended: Array<{ position: string; at: number }> = [];
    const interval = 1000 / LIVE_RATE;
    const liveStart = performance.now();
    let n = 0;
    while (performance.now() - liveStart < LIVE_SECONDS * 1000) {
      const due = liveStart + n * interval;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      const result = await store.append(`live-${n % 20}`, [
        { type: 'Measured', data: { key: `k${n % KEYS}`, value: 1 } },
      ]);
      appended.push({ position: result.position, at: performance.now() });
      n++;
    }
    const last = appended.at(-1)!.position;
    while (!commits.some((c) => c.position >= last)) await new Promise((resolve) => setTimeout(resolve, 10));
    await workers.stop();
    await store.close();
    const latencies = appended
      .map((a) => {
        const commit = commits.find((c) => c.position >= a.position);
        return commit ? Math.max(0, commit.at - a.at) : Number.NaN;
      })
      .filter((ms) => !Number.isNaN(ms))
      .sort((x, y) => x - y);
    const pct = (p: number) =>
      latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))]!;

    const rawRate = rate(read, rawMs);
    const sqlRate = rate(TOTAL, sqlMs);
    const projectionRate = rate(TOTAL, projectionMs);
    console.log(
      `\nprojection benchmark: ${fmt(TOTAL)} events, ${fmt(KEYS)} keys (shared machine: figures are under load)`,
    );
    console.log(
      `  (a) raw log read, no work        ${fmt(rawRate).padStart(10)} events/s  (${Math.round(rawMs)} ms)`,
    );
    console.log(
      `  (b) one INSERT … SELECT GROUP BY ${fmt(sqlRate).padStart(10)} events/s  (${Math.round(sqlMs)} ms)`,
    );
    console.log(
      `  projection (batched runner)      ${fmt(projectionRate).padStart(10)} events/s  (${Math.round(projectionMs)} ms)`,
    );
    console.log(
      `  ratio projection / raw read      ${(projectionRate / rawRate).toFixed(2)}  (target ≥ 0.30)`,
    );
    console.log(`  ratio projection / SQL GROUP BY  ${(projectionRate / sqlRate).toFixed(2)}`);
    console.log(
      `  view equals the SQL fold: ${check.rows[0].differing === 0 ? 'yes' : `NO (${check.rows[0].differing} keys differ)`}`,
    );
    console.log(
      `  live latency, append commit → view commit, ${fmt(latencies.length)} appends at ${LIVE_RATE}/s: p50 ${pct(50).toFixed(1)} ms, p99 ${pct(99).toFixed(1)} ms`,
    );
  } finally {
    await pool.end();
    await db.close();
  }
}
