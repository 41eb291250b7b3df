// `npm run bench -- api`: a filtered, ordered 50-row page through GraphQL under concurrent load
// against the same SQL run directly with pg (same run, same database), and change-to-delivery
// latency with 1,000 and 10,000 concurrent subscribers while changes flow; beside it PostGraphile
// v4 serves the same page under the same load.

import { fork } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { createApi } from '../src/api/index.js';
import { createPool, migrate, startEmbeddedPostgres, withTransaction } from '../src/db/index.js';
import { defineView } from '../src/projections/index.js';

const CONNECTIONS = 16;
const DURATION_S = 6;
const ROUNDS = 2;
const ROWS = 100_000;
/** Subscribers, and changes sent to them, in each fan-out run. */
const FAN_OUT = [
  [1000, 100],
  [10_000, 20],
] as const;
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
  const closers: (() => Promise<void>)[] = [];
  const api = await createApi({
    connectionString: url,
    pool,
    views: [orders, ticks],
    // Every subscriber of the fan-out comes from this one address.
    config: {
      auth: { open: true },
      limits: {
        subscriptionBuffer: 100_000,
        maxConnectionsPerAddress: 0,
        maxConnections: 20_000,
        // 10,000 sockets opening at once on a busy machine take a while to say connection_init.
        connectionInitTimeoutMs: 120_000,
        headersTimeoutMs: 60_000,
      },
    },
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
    const postgraphile = await startPostGraphile(url);
    closers.push(postgraphile.close);
    console.log(
      `api bench: ${ROWS} rows, ${CONNECTIONS} concurrent clients, ${DURATION_S}s each (shared machine: figures are under load)\n`,
    );

    // 1. The page through GraphQL, Tributary against PostGraphile v4 (with the connection-filter
    // plugin) on the same table, page and filter, alternated under the same load.
    const query = `{ benchOrders(first: 50, where: { status: { eq: "paid" }, total: { gte: "100" } },
      orderBy: [{ field: placed_at, direction: DESC }]) { nodes { id customer status total placed_at } pageInfo { endCursor } } }`;
    const postgraphileQuery = `{ allBenchOrders(first: 50, filter: { status: { equalTo: "paid" }, total: { greaterThanOrEqualTo: "100" } },
      orderBy: [PLACED_AT_DESC]) { nodes { id customer status total placedAt } pageInfo { endCursor } } }`;
    // The statement the server sends for the page, captured as it goes out: the baseline runs it.
    let statement: { text: string; params: unknown[] } | undefined;
    const query$ = pool.query.bind(pool) as (text: string, params?: unknown[]) => Promise<unknown>;
    (pool as unknown as { query: typeof query$ }).query = (text, params) => {
      // The server's first run of a statement is unnamed (it is prepared from the second).
      if (typeof text === 'string' && text.includes('bench_orders'))
        statement ??= { text, params: params ?? [] };
      return query$(text, params);
    };
    const tributaryPage = await post(endpoint, query);
    (pool as unknown as { query: typeof query$ }).query = query$;
    const postgraphilePage = await post(postgraphile.url, postgraphileQuery);
    const nodesOf = (page: unknown, field: string) =>
      (page as { data?: Record<string, { nodes: { id: string }[] }> }).data?.[field]?.nodes ?? [];
    const ids = nodesOf(tributaryPage, 'benchOrders').map((node) => node.id);
    if (
      ids.length !== 50 ||
      ids.join() !==
        nodesOf(postgraphilePage, 'allBenchOrders')
          .map((n) => n.id)
          .join()
    )
      throw new Error(
        `the two servers disagree: ${JSON.stringify(tributaryPage).slice(0, 200)} / ${JSON.stringify(postgraphilePage).slice(0, 200)}`,
      );
    if (!statement) throw new Error('the page statement was not seen');

    // The same page as clients usually send it: one document, the values in variables.
    const whereType = api.schema
      .getQueryType()!
      .getFields()
      .benchOrders!.args.find((arg) => arg.name === 'where')!.type;
    const variablesQuery = `query Page($first: Int, $where: ${whereType}) { benchOrders(first: $first, where: $where,
      orderBy: [{ field: placed_at, direction: DESC }]) { nodes { id customer status total placed_at } pageInfo { endCursor } } }`;
    const variables = { first: 50, where: { status: { eq: 'paid' }, total: { gte: '100' } } };
    if (JSON.stringify(await post(endpoint, variablesQuery, variables)) !== JSON.stringify(tributaryPage))
      throw new Error('the page with variables differs from the page with literals');

    const rounds: { tributary: Load[]; postgraphile: Load[]; variables: Load[] } = {
      tributary: [],
      postgraphile: [],
      variables: [],
    };
    for (let round = 0; round < ROUNDS; round++) {
      rounds.tributary.push(await load(endpoint, query));
      rounds.postgraphile.push(await load(postgraphile.url, postgraphileQuery));
      rounds.variables.push(await load(endpoint, variablesQuery, {}, 200, variables));
    }
    // 2. The same SQL (what the server sends, canonical projection and all), directly with pg,
    // prepared as the server runs it.
    const { text, params } = statement;
    const direct = await runDirect(async () => {
      await pool.query({ name: 'bench_direct_page', text, values: params });
    });
    const t = merge(rounds.tributary);
    const p = merge(rounds.postgraphile);
    console.log(`50-row filtered, ordered page (${ROUNDS} alternated rounds of ${DURATION_S}s each)`);
    const line = (name: string, l: Load) =>
      console.log(
        `  ${name.padEnd(30)} p50 ${l.p50.toFixed(1)} ms  p99 ${l.p99.toFixed(1)} ms  ${l.rps.toFixed(0)} req/s`,
      );
    line('Tributary (HTTP, autocannon):', t);
    line('PostGraphile v4 (same load):', p);
    line('same SQL with pg directly:', direct);
    const v = merge(rounds.variables);
    line('Tributary, values in variables:', v);
    console.log(
      `  Tributary / PostGraphile:      throughput ${(t.rps / p.rps).toFixed(2)}x, p99 ${t.p99.toFixed(1)} vs ${p.p99.toFixed(1)} ms (target >= 1.5x at equal or better p99)`,
    );
    console.log(
      `  Tributary / direct SQL:        throughput ${(t.rps / direct.rps).toFixed(2)}x, p50 latency ${(t.p50 / Math.max(direct.p50, 0.01)).toFixed(2)}x`,
    );
    console.log(
      `  variables / literals:          throughput ${(v.rps / t.rps).toFixed(2)}x (a document with variables is planned for each request)`,
    );
    console.log(`  statement: ${text.replace(/\s+/g, ' ')}\n`);

    // 3. Polling an unchanged page with If-None-Match: 304 without reading the page.
    const etag = (
      await fetch(endpoint, { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify({ query }) })
    ).headers.get('etag');
    const polled = await load(endpoint, query, { 'if-none-match': etag ?? '' }, 304);
    line('revalidation (304):', polled);
    console.log('');

    // 4. Fan-out: 1,000 then 10,000 subscribers on graphql-ws while changes flow.
    let tick = 0;
    for (const [subscribers, changes] of FAN_OUT) {
      const worker = fork(fileURLToPath(new URL('./apiSubscribers.ts', import.meta.url)), {
        execArgv: ['--import', 'tsx'],
        env: {
          ...process.env,
          BENCH_SUBSCRIBERS: JSON.stringify({ url: endpoint.replace('http', 'ws'), subscribers, changes }),
        },
      });
      const finished = new Promise<number[]>((resolve, reject) => {
        worker.on('message', (message: { latencies?: number[] }) => {
          if (message.latencies) resolve(message.latencies);
        });
        worker.on('error', reject);
        worker.on('exit', (code) => reject(new Error(`the subscribers' process exited (${code})`)));
      });
      const started = Date.now();
      while (api.tailer.listeners < subscribers) {
        if (Date.now() - started > 300_000)
          throw new Error(`only ${api.tailer.listeners} subscribers attached`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      for (let i = 0; i < changes; i++) {
        await withTransaction(pool, async (client) => {
          const now = Date.now();
          const id = tick++;
          await client.query('insert into tributary_views.bench_ticks values ($1, $2)', [id, now]);
          await client.query(
            `insert into tributary.view_changes (view, op, key, row) values ('bench_ticks', 'upsert', $1, $2)`,
            [JSON.stringify({ id }), JSON.stringify({ id, written_ms: now })],
          );
        });
        await new Promise((resolve) => setTimeout(resolve, CHANGE_INTERVAL_MS));
      }
      const latencies = await Promise.race([
        finished,
        new Promise<number[]>((_, reject) =>
          setTimeout(() => reject(new Error('subscribers did not finish')), 300_000),
        ),
      ]);
      worker.kill();
      while (api.tailer.listeners > 0) await new Promise((resolve) => setTimeout(resolve, 50));
      const received = latencies.length;
      latencies.sort((a, b) => a - b);
      const pct = (p: number) =>
        latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? NaN;
      console.log(
        `fan-out: ${subscribers} subscribers over graphql-ws (clients in another process), ${changes} changes (one every ${CHANGE_INTERVAL_MS} ms), one shared changelog tailer`,
      );
      console.log(`  delivered ${received} of ${subscribers * changes} messages`);
      console.log(
        `  change-to-delivery latency: p50 ${pct(50)} ms  p99 ${pct(99)} ms  max ${latencies.at(-1)} ms${subscribers <= 1000 ? '  (target p99 < 100 ms)' : ''}`,
      );
    }
  } finally {
    for (const close of closers) await close();
    await api.close();
    await pool.end();
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

const JSON_HEADERS = { 'content-type': 'application/json' };

interface Load {
  p50: number;
  p99: number;
  rps: number;
}

async function post(endpoint: string, query: string, variables?: Record<string, unknown>): Promise<unknown> {
  const response = await fetch(endpoint, {
    method: 'POST',
    headers: JSON_HEADERS,
    body: JSON.stringify({ query, variables }),
  });
  return response.json();
}

/** One round of autocannon against `endpoint`, its load generator in a worker thread. */
async function load(
  endpoint: string,
  query: string,
  headers: Record<string, string> = {},
  status = 200,
  variables?: Record<string, unknown>,
) {
  const result = await autocannon({
    url: endpoint,
    method: 'POST',
    connections: CONNECTIONS,
    duration: DURATION_S,
    workers: 1,
    headers: { ...JSON_HEADERS, ...headers },
    body: JSON.stringify({ query, variables }),
  });
  const wrong =
    status === 200
      ? result.non2xx
      : result.requests.total - (result.statusCodeStats?.[String(status) as `${number}`]?.count ?? 0);
  if (wrong > 0 || result.errors > 0)
    throw new Error(`load on ${endpoint} had ${wrong} answers other than ${status}, ${result.errors} errors`);
  return { p50: result.latency.p50, p99: result.latency.p99, rps: result.requests.average };
}

/** Rounds of one server as one: throughput averaged, latencies of the worst round. */
function merge(loads: Load[]): Load {
  return {
    p50: Math.max(...loads.map((l) => l.p50)),
    p99: Math.max(...loads.map((l) => l.p99)),
    rps: loads.reduce((sum, l) => sum + l.rps, 0) / loads.length,
  };
}

/**
 * PostGraphile v4 over the view schema, with connection filters, in its own process (as it is
 * deployed; it also needs its own graphql, see postgraphileServer.cjs), with a pool of the same size.
 */
async function startPostGraphile(databaseUrl: string) {
  const child = fork(fileURLToPath(new URL('./postgraphileServer.cjs', import.meta.url)), {
    env: { ...process.env, DATABASE_URL: databaseUrl, POOL_SIZE: String(CONNECTIONS + 4) },
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (message: { port: number }) => resolve(message.port));
    child.once('exit', (code) => reject(new Error(`PostGraphile exited (${code})`)));
  });
  return {
    url: `http://127.0.0.1:${port}/graphql`,
    async close() {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill();
      await exited;
    },
  };
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
