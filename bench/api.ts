// `npm run bench -- api`: a filtered, ordered 50-row page through GraphQL under concurrent load
// against the same SQL run directly with pg (same run, same database), and change-to-delivery
// latency with 1,000 concurrent subscribers while changes flow.
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import autocannon from 'autocannon';
import { createApi } from '../src/api/index.js';
import { createPool, migrate, startEmbeddedPostgres, withTransaction } from '../src/db/index.js';
import { defineView } from '../src/projections/index.js';

const CONNECTIONS = 16;
const DURATION_S = 8;
const ROWS = 100_000;
const SUBSCRIBERS = 1000;
const CHANGES = 100;
const CHANGE_INTERVAL_MS = 100;

const orders = defineView({
  name: 'bench_orders',
  columns: {
    id: { type: 'text' },
    customer: { type: 'text' },
    status: { type: 'text' },
    total: { type: 'numeric' },
    placed_at: { type: 'timestamptz' },
  },
  primaryKey: ['id'],
});
const ticks = defineView({
  name: 'bench_ticks',
  columns: { id: { type: 'integer' }, written_ms: { type: 'double' } },
  primaryKey: ['id'],
});

export async function benchApi() {
  const dir = await mkdtemp(path.join(tmpdir(), 'tributary-bench-api-'));
  await chmod(dir, 0o755); // as root the server runs as `postgres`, which must reach its data directory
  const server = process.env.DATABASE_URL
    ? undefined
    : await startEmbeddedPostgres({
        dataDir: path.join(dir, 'pgdata'),
        settings: { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off' },
      });
  const url = process.env.DATABASE_URL ?? server!.url;
  await migrate(url);
  const pool = createPool(url, { max: CONNECTIONS + 4 });
  const api = await createApi({
    connectionString: url,
    pool,
    views: [orders, ticks],
    // Every subscriber of the fan-out comes from this one address.
    config: { auth: { open: true }, limits: { subscriptionBuffer: 100_000, maxConnectionsPerAddress: 0 } },
  });
  try {
    await pool.query('create schema if not exists tributary_views');
    await pool.query(`drop table if exists tributary_views.bench_orders, tributary_views.bench_ticks`);
    await pool.query(`create table tributary_views.bench_orders (
      id text primary key, customer text not null, status text not null, total numeric not null, placed_at timestamptz not null)`);
    await pool.query('create index on tributary_views.bench_orders (status, placed_at desc, id)');
    await pool.query(
      `create table tributary_views.bench_ticks (id integer primary key, written_ms double precision not null)`,
    );
    await pool.query(
      `insert into tributary_views.bench_orders
       select 'o-' || i, 'c-' || (i % 997), (array['new','paid','shipped','cancelled'])[1 + i % 4],
              (i * 7919 % 100000) / 100.0, timestamptz '2026-01-01' + i * interval '1 minute'
       from generate_series(1, $1) i`,
      [ROWS],
    );
    await pool.query('analyze tributary_views.bench_orders');
    const { url: endpoint } = await api.listen(0);
    console.log(
      `api bench: ${ROWS} rows, ${CONNECTIONS} concurrent clients, ${DURATION_S}s each (shared machine: figures are under load)\n`,
    );

    // 1. The page through GraphQL.
    const query = `{ benchOrders(first: 50, where: { status: { eq: "paid" }, total: { gte: "100" } },
      orderBy: [{ field: placed_at, direction: DESC }]) { nodes { id customer status total placed_at } pageInfo { endCursor } } }`;
    const check = (await (
      await fetch(endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query }),
      })
    ).json()) as { data?: { benchOrders: { nodes: unknown[] } } };
    if (check.data?.benchOrders.nodes.length !== 50)
      throw new Error(`unexpected page: ${JSON.stringify(check).slice(0, 300)}`);
    const graphql = await autocannon({
      url: endpoint,
      method: 'POST',
      connections: CONNECTIONS,
      duration: DURATION_S,
      // The load generator runs in a worker thread, off the server's event loop.
      workers: 1,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query }),
    });
    if (graphql.non2xx > 0 || graphql.errors > 0)
      throw new Error(`GraphQL load had ${graphql.non2xx} non-2xx, ${graphql.errors} errors`);

    // 2. The same SQL (what the API sends), directly with pg, same concurrency.
    const sql = `select "id", "customer", "status", "total", to_json("placed_at") #>> '{}' as "placed_at",
        t."placed_at"::text as "__k0", t."id"::text as "__k1"
      from "tributary_views"."bench_orders" t
      where "status" = $1::text and "total" >= $2::numeric
      order by t."placed_at" desc nulls first, t."id" asc nulls last limit $3`;
    const direct = await runDirect(async () => {
      await pool.query(sql, ['paid', '100', 51]);
    });

    const g = { p50: graphql.latency.p50, p99: graphql.latency.p99, rps: graphql.requests.average };
    console.log('50-row filtered, ordered page');
    console.log(
      `  GraphQL (HTTP, autocannon): p50 ${g.p50.toFixed(1)} ms  p99 ${g.p99.toFixed(1)} ms  ${g.rps.toFixed(0)} req/s`,
    );
    console.log(
      `  same SQL with pg directly:  p50 ${direct.p50.toFixed(1)} ms  p99 ${direct.p99.toFixed(1)} ms  ${direct.rps.toFixed(0)} req/s`,
    );
    console.log(
      `  ratio GraphQL / direct:     throughput ${(g.rps / direct.rps).toFixed(2)}x, p50 latency ${(g.p50 / Math.max(direct.p50, 0.01)).toFixed(2)}x\n`,
    );

    // 3. Fan-out: 1,000 subscribers on graphql-ws while changes flow.
    // The worker runs TypeScript through tsx, registered before it imports the subscriber script.
    const script = new URL('./apiSubscribers.ts', import.meta.url).href;
    const worker = new Worker(
      `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(script)}); });`,
      {
        eval: true,
        workerData: { url: endpoint.replace('http', 'ws'), subscribers: SUBSCRIBERS, changes: CHANGES },
      },
    );
    const finished = new Promise<number[]>((resolve, reject) => {
      worker.on('message', (message: { latencies?: number[] }) => {
        if (message.latencies) resolve(message.latencies);
      });
      worker.on('error', reject);
    });
    const started = Date.now();
    while (api.tailer.listeners < SUBSCRIBERS) {
      if (Date.now() - started > 120_000)
        throw new Error(`only ${api.tailer.listeners} subscribers attached`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    for (let i = 0; i < CHANGES; i++) {
      await withTransaction(pool, async (client) => {
        const now = Date.now();
        await client.query('insert into tributary_views.bench_ticks values ($1, $2)', [i, now]);
        await client.query(
          `insert into tributary.view_changes (view, op, key, row) values ('bench_ticks', 'upsert', $1, $2)`,
          [JSON.stringify({ id: i }), JSON.stringify({ id: i, written_ms: now })],
        );
      });
      await new Promise((resolve) => setTimeout(resolve, CHANGE_INTERVAL_MS));
    }
    const latencies = await Promise.race([
      finished,
      new Promise<number[]>((_, reject) =>
        setTimeout(() => reject(new Error('subscribers did not finish')), 120_000),
      ),
    ]);
    await worker.terminate();
    const received = latencies.length;
    latencies.sort((a, b) => a - b);
    const pct = (p: number) =>
      latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? NaN;
    console.log(
      `fan-out: ${SUBSCRIBERS} subscribers over graphql-ws (clients in a worker thread), ${CHANGES} changes (one every ${CHANGE_INTERVAL_MS} ms), one shared changelog tailer`,
    );
    console.log(`  delivered ${received} of ${SUBSCRIBERS * CHANGES} messages`);
    console.log(
      `  change-to-delivery latency: p50 ${pct(50)} ms  p99 ${pct(99)} ms  max ${latencies.at(-1)} ms  (target p99 < 100 ms)`,
    );
  } finally {
    await api.close();
    await pool.end();
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

async function runDirect(run: () => Promise<void>) {
  const latencies: number[] = [];
  const deadline = performance.now() + DURATION_S * 1000;
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (performance.now() < deadline) {
        const start = performance.now();
        await run();
        latencies.push(performance.now() - start);
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  const at = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!;
  return { p50: at(0.5), p99: at(0.99), rps: latencies.length / DURATION_S };
}
