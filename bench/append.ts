/**
 * `npm run bench -- append`: throughput and latency of appends to the log, against plain
 * multi-row INSERTs of the same rows into an equivalent table (same columns, a primary
 * key, no Tributary logic) with the same batch size and connections, in the same run.
 *
 * Uses DATABASE_URL when set, else a fresh embedded server in a temporary directory.
 * Options (environment): BENCH_EVENTS (100000), BENCH_BATCH (100), BENCH_WRITERS (4),
 * BENCH_SINGLE (2000 single-event appends), BENCH_ROUNDS (2: baseline and log alternate,
 * the best of each is kept, which evens out a shared machine's noise).
 */
import { randomUUID } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { createPool, migrate, type Pool, quoteIdentifier, startEmbeddedPostgres } from '../src/db/index.js';
import { createPostgresEventStore, type EventInput, type JsonObject } from '../src/ingest/index.js';

const TOTAL = Number(process.env.BENCH_EVENTS ?? 100_000);
const BATCH = Number(process.env.BENCH_BATCH ?? 100);
const WRITERS = Number(process.env.BENCH_WRITERS ?? 4);
const SINGLE = Number(process.env.BENCH_SINGLE ?? 2000);
/** Each measurement alternates baseline and log this many times and keeps the best of each. */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const STREAMS_PER_WRITER = 50;

/** About 1 KB of JSON, varied a little so that nothing compresses to nothing. */
function payload(i: number): JsonObject {
  return {
    orderId: `order-${i}`,
    customer: { id: `c-${i % 977}`, name: `Customer ${i % 977}`, email: `c${i % 977}@example.com` },
    items: Array.from({ length: 6 }, (_, k) => ({
      sku: `SKU-${(i * 7 + k) % 10_000}`,
      quantity: (i + k) % 5,
      price: ((i * 13 + k * 31) % 10_000) / 100,
    })),
    note: `${i.toString(36)}-`.repeat(300).slice(0, 560),
  };
}

function events(from: number, count: number): EventInput[] {
  return Array.from({ length: count }, (_, k) => ({
    type: 'OrderPlaced',
    data: payload(from + k),
    metadata: { source: 'bench', correlationId: `corr-${from + k}` },
  }));
}

const BASELINE_DDL = `create schema if not exists bench;
create table bench.events (
  transaction_id  xid8 not null default pg_current_xact_id(),
  global_position bigint generated always as identity,
  stream_id       text not null,
  stream_position bigint not null,
  event_id        text not null,
  type            text not null,
  data            jsonb not null,
  metadata        jsonb not null,
  event_time      timestamptz not null,
  recorded_at     timestamptz not null default now(),
  primary key (transaction_id, global_position)
)`;

/** The baseline: one multi-row INSERT per batch, values bound as parameters. */
async function insertPlain(pool: Pool, streamId: string, startVersion: number, batch: EventInput[]) {
  const params: unknown[] = [];
  const rows: string[] = [];
  batch.forEach((event, k) => {
    const n = params.length;
    params.push(
      streamId,
      startVersion + k + 1,
      randomUUID(),
      event.type,
      JSON.stringify(event.data),
      JSON.stringify(event.metadata ?? {}),
    );
    rows.push(`($${n + 1}, $${n + 2}, $${n + 3}, $${n + 4}, $${n + 5}::jsonb, $${n + 6}::jsonb, now())`);
  });
  await pool.query(
    `insert into bench.events (stream_id, stream_position, event_id, type, data, metadata, event_time) values ${rows.join(', ')}`,
    params,
  );
}

type Writer = (writer: number, streamId: string, version: number, batch: EventInput[]) => Promise<unknown>;

/** Runs `total` events through `write` in batches from WRITERS concurrent writers; returns events/s. */
async function throughput(
  label: string,
  total: number,
  batchSize: number,
  write: Writer,
  data: EventInput[][],
) {
  const batches = Math.ceil(total / batchSize);
  let next = 0;
  let done = 0;
  const versions = new Map<string, number>();
  const started = performance.now();
  const tty = process.stderr.isTTY;
  const progress = setInterval(() => {
    if (tty) process.stderr.write(`\r  ${label}: ${done}/${batches} batches`);
  }, 1000);
  const latencies: number[] = [];
  await Promise.all(
    Array.from({ length: WRITERS }, async (_, w) => {
      for (let b = next++; b < batches; b = next++) {
        const streamId = `${label}-w${w}-s${b % STREAMS_PER_WRITER}`;
        const version = versions.get(streamId) ?? 0;
        const batch = data[b % data.length]!;
        const t0 = performance.now();
        await write(w, streamId, version, batch);
        latencies.push(performance.now() - t0);
        versions.set(streamId, version + batch.length);
        done++;
      }
    }),
  );
  clearInterval(progress);
  if (tty) process.stderr.write('\r\x1b[K');
  else
    console.log(
      `  ${label}: ${batches * batchSize} events in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))]!;
  return { eventsPerSecond: (batches * batchSize) / seconds, seconds, p50: pct(50), p99: pct(99) };
}

export async function benchAppend(): Promise<void> {
  let cleanup = async () => {};
  let adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    const dir = await mkdtemp(path.join(tmpdir(), 'tributary-bench-'));
    await chmod(dir, 0o755);
    console.log(`Starting a fresh embedded PostgreSQL in ${dir} ...`);
    const server = await startEmbeddedPostgres({ dataDir: path.join(dir, 'pgdata') });
    adminUrl = server.adminUrl;
    cleanup = async () => {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    };
  }
  const database = `tributary_bench_${Date.now().toString(36)}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`create database ${quoteIdentifier(database)}`);
  const url = new URL(adminUrl);
  url.pathname = `/${database}`;
  const dbUrl = url.toString();
  try {
    await migrate(dbUrl);
    const pool = createPool(dbUrl, { max: WRITERS, applicationName: 'bench-baseline' });
    await pool.query(BASELINE_DDL);
    const store = createPostgresEventStore({ connectionString: dbUrl, poolSize: WRITERS });
    const { rows } = await pool.query<{ version: string }>(
      "select current_setting('server_version') as version",
    );
    console.log(
      `append benchmark: ${TOTAL} events of ~${Buffer.byteLength(JSON.stringify(payload(1)))} B of data, batches of ${BATCH}, ${WRITERS} writers; PostgreSQL ${rows[0]!.version}`,
    );

    const data = Array.from({ length: 50 }, (_, b) => events(b * BATCH, BATCH));
    const tributary: Writer = (_w, streamId, version, batch) =>
      store.append(streamId, batch, { expectedVersion: version === 0 ? 'no_stream' : version });
    const plain: Writer = (_w, streamId, version, batch) => insertPlain(pool, streamId, version, batch);

    // Warm up both paths (connections, plans, caches) before measuring.
    await throughput('warm-plain', 2000, BATCH, plain, data);
    await throughput('warm-log', 2000, BATCH, tributary, data);

    type Result = Awaited<ReturnType<typeof throughput>>;
    const best = (a: Result | undefined, b: Result) => (a && a.eventsPerSecond >= b.eventsPerSecond ? a : b);
    let base: Result | undefined;
    let log: Result | undefined;
    let baseSingle: Result | undefined;
    let logSingle: Result | undefined;
    const singles = Array.from({ length: 50 }, (_, b) => events(b, 1));
    for (let round = 0; round < ROUNDS; round++) {
      base = best(base, await throughput(`plain${round}`, TOTAL, BATCH, plain, data));
      log = best(log, await throughput(`log${round}`, TOTAL, BATCH, tributary, data));
      baseSingle = best(baseSingle, await throughput(`plain-single${round}`, SINGLE, 1, plain, singles));
      logSingle = best(logSingle, await throughput(`log-single${round}`, SINGLE, 1, tributary, singles));
    }
    if (!base || !log || !baseSingle || !logSingle) throw new Error('BENCH_ROUNDS must be at least 1');

    const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
    const ms = (n: number) => `${n.toFixed(2)} ms`;
    console.log('');
    console.log(`batched (${BATCH} per append, ${WRITERS} writers)`);
    console.log(
      `  plain INSERT      ${fmt(base.eventsPerSecond).padStart(9)} events/s  (${base.seconds.toFixed(1)} s)`,
    );
    console.log(
      `  tributary append  ${fmt(log.eventsPerSecond).padStart(9)} events/s  (${log.seconds.toFixed(1)} s)`,
    );
    console.log(
      `  ratio             ${(log.eventsPerSecond / base.eventsPerSecond).toFixed(2)} (target >= 0.70)`,
    );
    console.log(`single-event appends (${SINGLE}, ${WRITERS} writers)`);
    console.log(
      `  plain INSERT      ${fmt(baseSingle.eventsPerSecond).padStart(9)} events/s  p50 ${ms(baseSingle.p50)}  p99 ${ms(baseSingle.p99)}`,
    );
    console.log(
      `  tributary append  ${fmt(logSingle.eventsPerSecond).padStart(9)} events/s  p50 ${ms(logSingle.p50)}  p99 ${ms(logSingle.p99)}`,
    );
    console.log(`  ratio             ${(logSingle.eventsPerSecond / baseSingle.eventsPerSecond).toFixed(2)}`);
    await store.close();
    await pool.end();
  } finally {
    await admin.query(`drop database if exists ${quoteIdentifier(database)} with (force)`).catch(() => {});
    await admin.end();
    await cleanup();
  }
}
