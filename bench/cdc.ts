// Capture throughput against pg_recvlogical reading the same changes, and commit-to-log latency.
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { createPool, migrate, quoteIdentifier, startEmbeddedPostgres } from '../src/db/index.js';
import { startCapture } from '../src/ingest/index.js';

const ROWS = 200_000;
const SMALL_TX_ROWS = 10;
const LATENCY_RATE = 1000;
const LATENCY_SECONDS = 10;

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

function findRecvlogical(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(path.join(dir, 'pg_recvlogical'))) return path.join(dir, 'pg_recvlogical');
  }
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return undefined;
  for (const version of readdirSync(base).sort().reverse()) {
    const candidate = path.join(base, version, 'bin', 'pg_recvlogical');
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

async function query(url: string, sql: string, params: unknown[] = []) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(sql, params);
  } finally {
    await client.end();
  }
}

export async function benchCdc() {
  const dir = await mkdtemp(path.join(tmpdir(), 'tributary-bench-cdc-'));
  await chmod(dir, 0o755); // as root the server runs as `postgres`, which must reach its data directory
  const external = process.env.DATABASE_URL;
  const server = external
    ? undefined
    : await startEmbeddedPostgres({ dataDir: path.join(dir, 'pgdata'), settings: { fsync: 'off' } });
  const adminUrl = external ? withDatabase(external, 'postgres') : server!.adminUrl;
  const tag = Date.now().toString(36);
  const sourceDb = `bench_src_${tag}`;
  const logDb = `bench_log_${tag}`;
  await query(adminUrl, `create database ${quoteIdentifier(sourceDb)}`);
  await query(adminUrl, `create database ${quoteIdentifier(logDb)}`);
  const sourceUrl = withDatabase(adminUrl, sourceDb);
  const logUrl = withDatabase(adminUrl, logDb);
  await migrate(logUrl);
  const pool = createPool(logUrl, { max: 8 });
  const recvlogical = findRecvlogical();
  console.log(
    `cdc benchmark (${external ? 'DATABASE_URL' : 'embedded PostgreSQL, fsync=off'}; figures on a shared, loaded machine vary)`,
  );

  try {
    await query(sourceUrl, 'create table t (id int primary key, v text, n int)');
    const sources = (slot: string) => ({
      [slot]: {
        url: sourceUrl,
        tables: ['public.t'],
        slot,
        publication: 'bench_pub',
        snapshot: 'never' as const,
      },
    });

    const scenario = async (label: string, slot: string, write: () => Promise<void>) => {
      // Create both slots first, so that both readers get exactly the same changes.
      const first = startCapture({ sources: sources(slot), pool });
      while (first.status()[0]?.state !== 'streaming') await new Promise((r) => setTimeout(r, 20));
      await first.stop();
      await pool.query('delete from tributary.cdc_progress');
      const recvSlot = `${slot}_recv`;
      if (recvlogical)
        await query(sourceUrl, "select pg_create_logical_replication_slot($1, 'pgoutput')", [recvSlot]);
      await write();
      const endLsn = (await query(sourceUrl, 'select pg_current_wal_lsn()::text as lsn')).rows[0]
        .lsn as string;
      const { rows: before } = await pool.query<{ n: string }>(
        'select transactions as n from tributary.cdc_checkpoints where source = $1',
        [slot],
      );
      const startTransactions = Number(before[0]?.n ?? 0);
      const expectedTransactions = label === 'one big transaction' ? 1 : ROWS / SMALL_TX_ROWS;

      let started = performance.now();
      const capture = startCapture({ sources: sources(slot), pool });
      while (true) {
        const { rows } = await pool.query<{ n: string }>(
          'select transactions as n from tributary.cdc_checkpoints where source = $1',
          [slot],
        );
        if (Number(rows[0]?.n ?? 0) - startTransactions >= expectedTransactions) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      const ours = (performance.now() - started) / 1000;
      await capture.stop();

      let theirs: number | undefined;
      if (recvlogical) {
        started = performance.now();
        await promisify(execFile)(recvlogical, [
          '-d',
          sourceUrl,
          '--slot',
          recvSlot,
          '--start',
          '-o',
          'proto_version=1',
          '-o',
          'publication_names=bench_pub',
          '--endpos',
          endLsn,
          '--no-loop',
          '-f',
          '/dev/null',
        ]);
        theirs = (performance.now() - started) / 1000;
        await query(sourceUrl, 'select pg_drop_replication_slot($1)', [recvSlot]);
      }
      const rate = (seconds: number) => `${Math.round(ROWS / seconds).toLocaleString('en')} rows/s`;
      console.log(
        `  ${label.padEnd(38)} tributary ${ours.toFixed(2)} s (${rate(ours)})` +
          (theirs === undefined
            ? '   pg_recvlogical not found (install postgresql-client): ratio skipped'
            : `   pg_recvlogical ${theirs.toFixed(2)} s (${rate(theirs)})   ratio ${(theirs / ours).toFixed(2)} (target ≥ 0.5)`),
      );
    };

    console.log(`throughput, ${ROWS.toLocaleString('en')} changed rows:`);
    await scenario('one big transaction', 'bench_big', async () => {
      await query(sourceUrl, "insert into t select i, 'value ' || i, i from generate_series(1, $1) i", [
        ROWS,
      ]);
    });
    await scenario(
      `${ROWS / SMALL_TX_ROWS} transactions of ${SMALL_TX_ROWS} rows`,
      'bench_small',
      async () => {
        await query(
          sourceUrl,
          `do $$ begin for k in 0..${ROWS / SMALL_TX_ROWS - 1} loop
           update t set n = n + 1 where id > k * ${SMALL_TX_ROWS} and id <= (k + 1) * ${SMALL_TX_ROWS};
           commit;
         end loop; end $$`,
        );
      },
    );

    // Latency: source commit → log commit, under a steady rate.
    await pool.query('truncate tributary.cdc_checkpoints, tributary.cdc_progress');
    await query(
      sourceUrl,
      "select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name like 'bench%'",
    );
    const capture = startCapture({ sources: sources('bench_latency'), pool });
    while (capture.status()[0]?.state !== 'streaming') await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 500));
    const listener = new pg.Client({ connectionString: logUrl });
    await listener.connect();
    const latencies: number[] = [];
    let lastPosition = (
      await listener.query<{ v: string }>(
        "select coalesce(max(stream_position), 0)::text as v from tributary.events where stream_id = 'cdc-bench_latency'",
      )
    ).rows[0]!.v;
    let reading = Promise.resolve();
    const read = () => {
      reading = reading.then(async () => {
        const seenAt = Date.now();
        const { rows } = await listener.query<{ p: string; t: Date }>(
          "select stream_position::text as p, event_time as t from tributary.events where stream_id = 'cdc-bench_latency' and stream_position > $1 order by stream_position",
          [lastPosition],
        );
        for (const row of rows) latencies.push(seenAt - row.t.getTime());
        if (rows.length > 0) lastPosition = rows[rows.length - 1]!.p;
      });
    };
    listener.on('notification', read);
    await listener.query('listen tributary_events');

    const writers = await Promise.all(
      Array.from({ length: 4 }, async () => {
        const client = new pg.Client({ connectionString: sourceUrl });
        await client.connect();
        return client;
      }),
    );
    const total = LATENCY_RATE * LATENCY_SECONDS;
    const begin = performance.now();
    let sent = 0;
    await Promise.all(
      writers.map(async (client, w) => {
        for (let i = w; i < total; i += writers.length) {
          const due = begin + (i * 1000) / LATENCY_RATE;
          const wait = due - performance.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
          await client.query('update t set n = n + 1 where id = $1', [1 + (i % ROWS)]);
          sent++;
        }
      }),
    );
    const achieved = sent / ((performance.now() - begin) / 1000);
    const deadline = Date.now() + 30_000;
    while (latencies.length < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await reading;
    for (const client of writers) await client.end();
    await listener.end();
    await capture.stop();
    latencies.sort((a, b) => a - b);
    const pct = (p: number) =>
      latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? NaN;
    console.log(
      `latency, source commit → log commit at ${Math.round(achieved)} tx/s for ${LATENCY_SECONDS} s (${latencies.length} changes): p50 ${pct(50)} ms, p99 ${pct(99)} ms, max ${latencies[latencies.length - 1]} ms (target p99 < 50 ms)`,
    );
  } finally {
    await pool.end();
    await query(adminUrl, `drop database if exists ${quoteIdentifier(sourceDb)} with (force)`).catch(
      () => {},
    );
    await query(adminUrl, `drop database if exists ${quoteIdentifier(logDb)} with (force)`).catch(() => {});
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
