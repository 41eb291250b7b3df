import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdir, readFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { migrate } from '../src/db/index.js';
import { ensurePartitionIndex, readAll, readHead, readPartition, START } from '../src/ingest/index.js';
import { defineProjection, defineView } from '../src/projections/index.js';
import { openBenchDatabase } from './database.js';

const TOTAL = Number(process.env.BENCH_EVENTS ?? 200_000);
const STREAMS = Number(process.env.BENCH_STREAMS ?? 2000);
const APPENDS = Number(process.env.BENCH_APPENDS ?? 3000);
const COUNTS = (process.env.BENCH_PARTITIONS ?? '1,2,4').split(',').map(Number);

/** Per-stream totals: keyed by the stream id, so it partitions by the default key. */
export function partitionedTotals(name: string, partitions: number) {
  const view = defineView({
    name,
    columns: {
      stream_id: { type: 'text' },
      count: { type: 'bigint', nullable: false },
      sum: { type: 'bigint', nullable: false },
    },
    primaryKey: ['stream_id'],
  });
  return defineProjection({
    name,
    version: 1,
    views: [view],
    filter: { types: ['Measured'] },
    ...(partitions > 1 ? { partitions } : {}),
    async handle(event, ctx) {
      const row = await ctx.get(view, { stream_id: event.streamId });
      await ctx.upsert(view, {
        stream_id: event.streamId,
        count: String(Number(row?.count ?? 0) + 1),
        sum: String(Number(row?.sum ?? 0) + (event.data.value as number)),
      });
    },
  });
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const rate = (events: number, ms: number) => (events * 1000) / ms;

/**
 * `npm run bench -- partitions`: one projection with 1, 2 and 4 partitions, each run by as many
 * processes, over the same log; the 1-partition run is the baseline. Also what the partition
 * index costs an append, and what one partition's read costs against the whole log's.
 */
export async function benchPartitions(): Promise<void> {
  const db = await openBenchDatabase('partitions', { settings: { shared_buffers: '512MB' } });
  await migrate(db.url);
  const pool = new pg.Pool({ connectionString: db.url, max: 4 });
  try {
    const append = await benchAppendCost(pool);
    console.log(`Appending ${fmt(TOTAL)} events over ${fmt(STREAMS)} streams…`);
    for (let start = 0; start < TOTAL; start += 1000) {
      await appendBlock(
        pool,
        `sensor-${(start / 1000) % STREAMS}`,
        start,
        Math.min(1000, TOTAL - start),
        (i) => `s-${(i * 7919) % STREAMS}`,
      );
    }
    await pool.query('vacuum analyze tributary.events');
    const reads = await benchReads(pool);
    const runs: Run[] = [];
    for (const partitions of COUNTS) runs.push(await runPartitions(pool, db.url, partitions));

    const base = runs.find((run) => run.partitions === 1) ?? runs[0]!;
    const baseRate = rate(TOTAL, base.ms);
    console.log(
      `\npartitions benchmark: ${fmt(TOTAL)} events, ${fmt(STREAMS)} streams, one process per partition, ${cpus().length} cores`,
    );
    for (const run of runs) {
      const r = rate(TOTAL, run.ms);
      console.log(
        `  ${String(run.partitions).padStart(2)} partition(s) / process(es)  ${fmt(r).padStart(8)} events/s  (${fmt(run.ms)} ms)  ×${(r / baseRate).toFixed(2)} of 1;  cores busy ${run.busy.toFixed(2)} of ${cpus().length}, CPU per event: workers ${run.workerUs.toFixed(1)} µs, PostgreSQL ${run.serverUs.toFixed(1)} µs`,
      );
    }
    const cost = base.workerUs + base.serverUs;
    console.log(
      `  model: events/s ≈ cores kept busy / CPU per event; one partition keeps ${base.busy.toFixed(2)} cores busy at ${cost.toFixed(1)} µs an event (${fmt(1e6 / cost)} events/s per busy core)`,
    );
    console.log(
      `  append, 10 events to one stream: ${fmt(append.withIndex)} appends/s with the partition index, ${fmt(append.without)} without  (×${(append.withIndex / append.without).toFixed(2)})`,
    );
    console.log(
      `  read of 1 partition of 4 vs the whole log (runner's pages): ${fmt(reads.partitionMs)} ms vs ${fmt(reads.wholeMs)} ms (×${(reads.partitionMs / reads.wholeMs).toFixed(2)}, ${fmt(reads.partitionEvents)} of ${fmt(reads.wholeEvents)} events)`,
    );
  } finally {
    await pool.end();
    await db.close();
  }
}

/** `count` events to one stream in one append; `key` is unused by the log, kept for the data. */
async function appendBlock(
  pool: pg.Pool,
  stream: string,
  first: number,
  count: number,
  streamOf?: (i: number) => string,
): Promise<void> {
  // With streamOf, each event goes to its own stream's append (as many appends as streams hit).
  if (streamOf) {
    const byStream = new Map<string, number[]>();
    for (let i = first; i < first + count; i++) {
      const target = streamOf(i);
      byStream.set(target, [...(byStream.get(target) ?? []), i]);
    }
    await pool.query(
      `select tributary.append_events(s.stream, 'any', s.ids, s.types, s.data, s.meta, s.times, false)
       from jsonb_to_recordset($1::jsonb) as s(stream text, ids text[], types text[], data text[], meta text[], times timestamptz[])`,
      [
        JSON.stringify(
          [...byStream].map(([target, ids]) => ({
            stream: target,
            ids: ids.map((i) => `m-${i}`),
            types: ids.map(() => 'Measured'),
            data: ids.map((i) => JSON.stringify({ value: i % 101 })),
            meta: ids.map(() => '{}'),
            times: ids.map(() => null),
          })),
        ),
      ],
    );
    return;
  }
  const ids = Array.from({ length: count }, (_, i) => first + i);
  await pool.query(
    `select tributary.append_events($1, 'any', $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], false)`,
    [
      stream,
      ids.map((i) => `a-${i}`),
      ids.map(() => 'Appended'),
      ids.map((i) => JSON.stringify({ value: i })),
      ids.map(() => '{}'),
      ids.map(() => null),
    ],
  );
}

/** Appends of 10 events, with and without the partition index, in alternating rounds. */
async function benchAppendCost(pool: pg.Pool): Promise<{ withIndex: number; without: number }> {
  // Built as the first partitioned projection's process builds it.
  await ensurePartitionIndex(pool);
  const timings = { withIndex: 0, without: 0 };
  let next = 0;
  for (let round = 0; round < 4; round++) {
    const indexed = round % 2 === 0;
    if (!indexed) await pool.query('drop index tributary.events_partition_idx');
    const started = performance.now();
    for (let i = 0; i < APPENDS / 4; i++) {
      await appendBlock(pool, `append-${next % 500}`, next, 10);
      next += 10;
    }
    const ms = performance.now() - started;
    if (indexed) timings.withIndex += ms;
    else timings.without += ms;
    if (!indexed) {
      await pool.query(
        `create index events_partition_idx on tributary.events (tributary.partition_bucket(stream_id), transaction_id, global_position)`,
      );
    }
  }
  return { withIndex: rate(APPENDS / 2, timings.withIndex), without: rate(APPENDS / 2, timings.without) };
}

/** The whole log, then one partition of four, read as a runner reads them (pages of 1000). */
async function benchReads(pool: pg.Pool) {
  const filter = { types: ['Measured'] };
  const time = async (read: (from: string) => ReturnType<typeof readAll>) => {
    const started = performance.now();
    let position = START;
    let events = 0;
    for (;;) {
      const page = await read(position);
      events += page.events.length;
      if (page.events.length < 1000) break;
      position = page.next;
    }
    return { ms: performance.now() - started, events };
  };
  const whole = await time((from) => readAll(pool, from, { limit: 1000, filter }));
  const slice = await time((from) =>
    readPartition(pool, from, { limit: 1000, filter, partition: { index: 0, count: 4 } }),
  );
  return {
    wholeMs: whole.ms,
    wholeEvents: whole.events,
    partitionMs: slice.ms,
    partitionEvents: slice.events,
  };
}

interface Run {
  partitions: number;
  ms: number;
  /** Cores kept busy on average by the workers and the PostgreSQL server. */
  busy: number;
  /** CPU per event in the worker processes, and in the PostgreSQL server. */
  workerUs: number;
  serverUs: number;
}

/** CPU time (µs) of each process of the PostgreSQL server that serves `pool`: postmaster and children. */
async function serverCpu(pool: pg.Pool): Promise<Map<number, number>> {
  const { rows } = await pool.query<{ pid: number }>('select pg_backend_pid() as pid');
  const stat = async (pid: number | string) => {
    const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    // Fields after the command (which may hold spaces): state, ppid, …, utime (14), stime (15).
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) };
  };
  const postmaster = (await stat(rows[0]!.pid)).ppid;
  const cpu = new Map<number, number>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    const { ppid, ticks } = await stat(pid);
    if (pid === postmaster || ppid === postmaster) cpu.set(pid, ticks * (1e6 / 100)); // USER_HZ
  }
  return cpu;
}

const cpuSpent = (before: Map<number, number>, after: Map<number, number>) =>
  [...after].reduce((sum, [pid, us]) => sum + us - (before.get(pid) ?? 0), 0);

/** Runs `partitions` processes over a fresh projection until every partition has reached the head. */
async function runPartitions(pool: pg.Pool, url: string, partitions: number): Promise<Run> {
  const name = `bench_p${partitions}`;
  const head = await readHead(pool);
  const children: ChildProcess[] = [];
  for (let i = 0; i < partitions; i++) {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', path.join(import.meta.dirname, 'partitionWorker.ts')],
      {
        env: {
          ...process.env,
          DATABASE_URL: url,
          NAME: name,
          PARTITIONS: String(partitions),
          TRIBUTARY_LOG_LEVEL: 'error',
        },
        stdio: ['pipe', 'pipe', 'inherit'],
      },
    );
    children.push(child);
  }
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          child.stdout!.on('data', (chunk: Buffer) => {
            if (chunk.toString().includes('loaded')) resolve();
          });
        }),
    ),
  );
  const serverBefore = await serverCpu(pool);
  const started = performance.now();
  for (const child of children) child.stdin!.write('go\n');
  const table = partitions > 1 ? 'tributary.projection_partitions' : 'tributary.projections';
  for (;;) {
    const { rows } = await pool.query<{ behind: number; total: number }>(
      `select count(*) filter (where position < $2)::int as behind, count(*)::int as total from ${table} where name = $1`,
      [name, head],
    );
    if (rows[0]!.total === partitions && rows[0]!.behind === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const ms = performance.now() - started;
  const serverUs = cpuSpent(serverBefore, await serverCpu(pool));
  const { rows: spread } = await pool.query<{ owners: number }>(
    `select count(distinct lease_owner)::int as owners from ${table} where name = $1`,
    [name],
  );
  const workerCpu = children.map(
    (child) =>
      new Promise<number>((resolve) => {
        child.stdout!.on('data', (chunk: Buffer) => {
          const match = /cpu (\d+)/.exec(chunk.toString());
          if (match) resolve(Number(match[1]));
        });
      }),
  );
  for (const child of children) child.stdin!.write('stop\n');
  await Promise.all(children.map((child) => once(child, 'exit')));
  // From `go` to stopped: a little more than the timed run.
  const workerUs = (await Promise.all(workerCpu)).reduce((sum, us) => sum + us, 0);
  const check = await pool.query(
    `select count(*)::int as differing from (
       select stream_id, count(*) as count, sum((data->>'value')::bigint) as sum
       from tributary.events where type = 'Measured' group by 1) s
     full join tributary_views.${name} t using (stream_id)
     where s.count is distinct from t.count or s.sum is distinct from t.sum`,
  );
  console.log(
    `  ${partitions} partition(s): ${fmt(ms)} ms, run by ${spread[0]!.owners} process(es), view equals the SQL fold: ${check.rows[0].differing === 0 ? 'yes' : `NO (${check.rows[0].differing} streams differ)`}`,
  );
  return {
    partitions,
    ms,
    busy: (workerUs + serverUs) / (ms * 1000),
    workerUs: workerUs / TOTAL,
    serverUs: serverUs / TOTAL,
  };
}
