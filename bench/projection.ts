import pg from 'pg';
import { migrate } from '../src/db/index.js';
import { createPostgresEventStore, readAll, readHead, START } from '../src/ingest/index.js';
import { defineProjection, defineView, startWorkers, viewTableStatements } from '../src/projections/index.js';
import { openBenchDatabase } from './database.js';

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

const rate = (events: number, ms: number) => Math.round((events * 1000) / ms);

/**
 * The raw log read, doing nothing with the events: the same reads the runner makes (the
 * projection's type filter, pages of the runner's batch size), so the ratio compares like with like.
 */
async function rawRead(pool: pg.Pool, type: string): Promise<{ events: number; ms: number }> {
  const client = await pool.connect();
  const started = performance.now();
  let position = START;
  let events = 0;
  for (;;) {
    const page = await readAll(client, position, { limit: BATCH, filter: { types: [type] } });
    events += page.events.length;
    if (page.events.length < BATCH) break;
    position = page.next;
  }
  const ms = performance.now() - started;
  client.release();
  return { events, ms };
}
const fmt = (n: number) => n.toLocaleString('en-US');

export async function benchProjection(): Promise<void> {
  // The large view's table and index (about 90 MB each time) and the log outgrow PostgreSQL's
  // default 128 MB of shared buffers, which no real server keeps; the raw read runs on it too.
  const db = await openBenchDatabase('projection', { settings: { shared_buffers: '1GB' } });
  await migrate(db.url);
  const pool = new pg.Pool({ connectionString: db.url, max: 4 });
  try {
    if (TOTAL > 0) await benchSmallView(pool, db.url);
    if (LARGE_KEYS > 0) await benchLargeView(pool, db.url);
  } finally {
    await pool.end();
    await db.close();
  }
}

/** The view of KEYS rows, which the row cache holds whole. */
async function benchSmallView(pool: pg.Pool, url: string): Promise<void> {
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

  // (a) the raw log read, doing nothing with the events
  const { events: read, ms: rawMs } = await rawRead(pool, 'Measured');

  // (b) the same view in one SQL statement
  await pool.query(
    'create table bench_sql (key text primary key, count bigint not null, sum bigint not null)',
  );
  let started = performance.now();
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
    url,
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
  const store = createPostgresEventStore({ connectionString: url, poolSize: 2 });
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
  console.log(`  ratio projection / raw read      ${(projectionRate / rawRate).toFixed(2)}  (target ≥ 0.30)`);
  console.log(`  ratio projection / SQL GROUP BY  ${(projectionRate / sqlRate).toFixed(2)}`);
  console.log(
    `  view equals the SQL fold: ${check.rows[0].differing === 0 ? 'yes' : `NO (${check.rows[0].differing} keys differ)`}`,
  );
  console.log(
    `  live latency, append commit → view commit, ${fmt(latencies.length)} appends at ${LIVE_RATE}/s: p50 ${pct(50).toFixed(1)} ms, p99 ${pct(99).toFixed(1)} ms`,
  );
}

const LARGE_KEYS = Number(process.env.BENCH_LARGE_KEYS ?? 1_000_000);
const LARGE_EVENTS = Number(process.env.BENCH_LARGE_EVENTS ?? 200_000);
const NAIVE_SECONDS = Number(process.env.BENCH_NAIVE_SECONDS ?? 15);
/** Folds of the large view, each alternated with a raw read. */
const LARGE_RUNS = Math.max(1, Number(process.env.BENCH_LARGE_RUNS ?? 3));

const balances = (name: string) =>
  defineView({
    name,
    columns: {
      account: { type: 'text' },
      deposits: { type: 'bigint', nullable: false },
      balance: { type: 'bigint', nullable: false },
    },
    primaryKey: ['account'],
  });

/** Deposits into existing accounts: every event reads one row of a large view. */
function depositsProjection(view: ReturnType<typeof balances>, options: { naive?: boolean } = {}) {
  return defineProjection({
    name: view.name,
    version: 1,
    views: [view],
    filter: { types: ['Deposited'] },
    // The naive runner: no key prefetch, so each event's read is its own SELECT.
    ...(options.naive ? { prefetch: () => [] } : {}),
    async handle(event, ctx) {
      const account = event.data.account as string;
      const row = await ctx.get(view, { account });
      await ctx.upsert(view, {
        account,
        deposits: String(Number(row?.deposits ?? 0) + 1),
        balance: String(Number(row?.balance ?? 0) + (event.data.amount as number)),
      });
    },
  });
}

/**
 * A view of LARGE_KEYS rows that exists before the worker starts (as after a restart: the
 * cache is cold, and the view far too large to load whole), and LARGE_EVENTS deposits over
 * random accounts. The runner reads each batch's keys in one statement, in LARGE_RUNS folds
 * (each into its own copy of the view, after a raw read of the log); the naive runner (no
 * prefetch) reads one row per event, measured for NAIVE_SECONDS.
 */
async function benchLargeView(pool: pg.Pool, url: string): Promise<void> {
  console.log(
    `\nlarge view: ${fmt(LARGE_KEYS)} accounts, ${fmt(LARGE_EVENTS)} deposits over random accounts…`,
  );
  const runs = Array.from({ length: LARGE_RUNS }, (_, i) => balances(`bench_accounts_${i + 1}`));
  const naiveView = balances('bench_accounts_naive');
  for (const view of [...runs, naiveView]) {
    await pool.query('create schema if not exists tributary_views');
    // As the runner creates it (page fill included), before the worker starts.
    for (const statement of viewTableStatements(view, 'tributary_views')) await pool.query(statement);
    await pool.query(
      `insert into tributary_views.${view.name} select 'a' || g, 0, 0 from generate_series(0, $1 - 1) g`,
      [LARGE_KEYS],
    );
    await pool.query(`vacuum analyze tributary_views.${view.name}`);
  }
  let seed = 42;
  const random = () => {
    // In 32-bit integer arithmetic: the product as a double loses its low bits past 2^53, and
    // the sequence then cycles through a few thousand accounts instead of spreading over all.
    seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff;
    return seed / 2147483648;
  };
  for (let start = 0; start < LARGE_EVENTS; start += 2000) {
    const ids = Array.from({ length: Math.min(2000, LARGE_EVENTS - start) }, (_, i) => start + i);
    await pool.query(
      `select tributary.append_events($1, 'any', $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], false)`,
      [
        `teller-${start % 50}`,
        ids.map((i) => `d-${i}`),
        ids.map(() => 'Deposited'),
        ids.map((i) =>
          JSON.stringify({ account: `a${Math.floor(random() * LARGE_KEYS)}`, amount: (i % 101) + 1 }),
        ),
        ids.map(() => '{}'),
        ids.map(() => null),
      ],
    );
  }
  await pool.query('vacuum analyze tributary.events');

  const fold = async (projection: ReturnType<typeof depositsProjection>, seconds: number) => {
    const head = await readHead(pool);
    let events = 0;
    let finish: () => void = () => {};
    const done = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const begin = performance.now();
    const workers = startWorkers({
      url,
      projections: [projection],
      batchSize: BATCH,
      onCommit: ({ position: committed, events: applied }) => {
        events += applied;
        if (committed >= head) finish();
      },
    });
    const timeout = setTimeout(finish, seconds * 1000);
    await done;
    clearTimeout(timeout);
    const ms = performance.now() - begin;
    await workers.stop();
    return { events, ms, heapMb: Math.round(process.memoryUsage().heapUsed / 1024 / 1024) };
  };
  // Runs alternate the raw read with a fold into a fresh copy of the view: on a shared
  // machine one run can be 15% off another, so the ratio is the median of the runs'.
  const measured: Array<{ raw: number; runner: number; ms: number; heapMb: number }> = [];
  for (const view of runs) {
    const { events: rawEvents, ms: rawMs } = await rawRead(pool, 'Deposited');
    const raw = rate(rawEvents, rawMs);
    const runner = await fold(depositsProjection(view), 3600);
    measured.push({ raw, runner: rate(runner.events, runner.ms), ms: runner.ms, heapMb: runner.heapMb });
    // Untimed: else autovacuum cleans this copy's 200,000 dead rows during the next run.
    await pool.query(`vacuum analyze tributary_views.${view.name}`);
  }
  const naive = await fold(depositsProjection(naiveView, { naive: true }), NAIVE_SECONDS);
  const differing: number[] = [];
  for (const view of runs) {
    const check = await pool.query(
      `with expected as (
         select data->>'account' as account, count(*) as deposits, sum((data->>'amount')::bigint) as balance
         from tributary.events where type = 'Deposited' group by 1)
       select count(*)::int as differing from expected x join tributary_views.${view.name} a using (account)
       where x.deposits is distinct from a.deposits or x.balance is distinct from a.balance`,
    );
    differing.push(check.rows[0].differing as number);
  }

  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  const ratios = measured.map((run) => run.runner / run.raw);
  const naiveRate = rate(naive.events, naive.ms);
  measured.forEach((run, i) => {
    console.log(
      `  run ${i + 1}: raw log read ${fmt(run.raw).padStart(9)} events/s, projection ${fmt(run.runner).padStart(7)} events/s (${Math.round(run.ms)} ms, heap ${run.heapMb} MB), ratio ${ratios[i]!.toFixed(2)}`,
    );
  });
  console.log(
    `  (a) raw log read, no work        ${fmt(median(measured.map((run) => run.raw))).padStart(10)} events/s  (median of ${runs.length})`,
  );
  console.log(
    `  projection, batched key reads    ${fmt(median(measured.map((run) => run.runner))).padStart(10)} events/s  (median of ${runs.length})`,
  );
  console.log(
    `  naive: a SELECT per event        ${fmt(naiveRate).padStart(10)} events/s  (${fmt(naive.events)} events in ${Math.round(naive.ms)} ms)`,
  );
  console.log(
    `  ratio projection / raw read      ${median(ratios).toFixed(2)}  (median of ${runs.length}, from ${Math.min(...ratios).toFixed(2)} to ${Math.max(...ratios).toFixed(2)}; target ≥ 0.30)`,
  );
  console.log(
    `  ratio projection / naive         ${(median(measured.map((run) => run.runner)) / naiveRate).toFixed(2)}`,
  );
  console.log(
    `  views equal the SQL fold: ${differing.every((n) => n === 0) ? 'yes' : `NO (${differing.join(', ')} accounts differ)`}`,
  );
}
