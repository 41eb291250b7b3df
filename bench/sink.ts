import pg from 'pg';
import { migrate } from '../src/db/index.js';
import { formatPosition } from '../src/ingest/index.js';
import {
  defineView,
  loadSinks,
  resolveSinks,
  startSinks,
  VIEW_CHANGES_CHANNEL,
} from '../src/projections/index.js';
import { openBenchDatabase } from './database.js';

const ROWS = Number(process.env.BENCH_ROWS ?? 100_000);
const LIVE_SECONDS = Number(process.env.BENCH_LIVE_SECONDS ?? 10);
const LIVE_RATE = Number(process.env.BENCH_LIVE_RATE ?? 1000);

const products = defineView({
  name: 'bench_products',
  columns: {
    id: { type: 'integer' },
    name: { type: 'text', nullable: false },
    description: { type: 'text' },
    price: { type: 'numeric', nullable: false },
  },
  primaryKey: ['id'],
  search: { fields: ['name', 'description'] },
});

const WORDS = [
  'red',
  'blue',
  'light',
  'heavy',
  'steel',
  'wooden',
  'laptop',
  'lamp',
  'desk',
  'chair',
  'mug',
  'kettle',
];

const rate = (count: number, ms: number) => Math.round((count * 1000) / ms);
const fmt = (n: number) => n.toLocaleString('en-US');
const words = (i: number, n: number) =>
  Array.from({ length: n }, (_, j) => WORDS[(i * 7 + j * 13) % WORDS.length]).join(' ');

export async function benchSink(): Promise<void> {
  const db = await openBenchDatabase('sink');
  await migrate(db.url);
  const pool = new pg.Pool({ connectionString: db.url, max: 4 });
  try {
    console.log(`Filling a view of ${fmt(ROWS)} rows…`);
    await pool.query('create schema if not exists tributary_views');
    await pool.query(
      `create table tributary_views.bench_products (id integer primary key, name text not null, description text, price numeric not null)`,
    );
    await pool.query(
      `insert into tributary_views.bench_products
       select i, 'product ' || i || ' ' || (array[${WORDS.map((w) => `'${w}'`).join(',')}])[1 + i % ${WORDS.length}],
              'a ' || (array[${WORDS.map((w) => `'${w}'`).join(',')}])[1 + (i * 7) % ${WORDS.length}] || ' thing for the ' ||
              (array[${WORDS.map((w) => `'${w}'`).join(',')}])[1 + (i * 13) % ${WORDS.length}] || ', model ' || i,
              (i % 1000) + 0.99
         from generate_series(1, $1) i`,
      [ROWS],
    );
    await pool.query('vacuum analyze tributary_views.bench_products');

    // Baseline: the same search table, filled by one INSERT … SELECT.
    await pool.query('create schema if not exists bench_baseline');
    await pool.query(
      `create table bench_baseline.products (id integer not null, name text, description text, price numeric,
         "__document" jsonb, "__search" tsvector, "__version" bigint not null, "__deleted" boolean not null default false,
         "__updated_at" timestamptz not null default now(), primary key (id))`,
    );
    await pool.query('create index on bench_baseline.products using gin ("__search")');
    let started = performance.now();
    await pool.query(
      `insert into bench_baseline.products (id, name, description, price, "__document", "__search", "__version")
       select id, name, description, price, jsonb_build_object('name', name, 'description', description),
              setweight(to_tsvector('english'::regconfig, coalesce(name, '')), 'A') ||
              setweight(to_tsvector('english'::regconfig, coalesce(description, '')), 'B'), 1
         from tributary_views.bench_products`,
    );
    const baselineMs = performance.now() - started;

    // The sink: first load of the same view (fuzzy off: the baseline has no trigram index either).
    const [sink] = resolveSinks(
      { benchSearch: { view: 'bench_products', backend: { kind: 'postgres' }, fuzzy: false } },
      [products],
    );
    const latencies: number[] = [];
    const pending: { cursor: string; committedAt: number }[] = [];
    const sinks = startSinks({
      url: db.url,
      sinks: [sink!],
      pollIntervalMs: 1000,
      ...(process.env.BENCH_CHUNK ? { backfillChunk: Number(process.env.BENCH_CHUNK) } : {}),
      onApplied: ({ position }) => {
        const now = performance.now();
        while (pending.length > 0 && pending[0]!.cursor <= position) {
          latencies.push(now - pending.shift()!.committedAt);
        }
      },
    });
    try {
      started = performance.now();
      for (;;) {
        const [row] = await loadSinks(pool, ['benchSearch']);
        if (row?.index_name && !row.pending_swap && !row.build_index) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const sinkMs = performance.now() - started;
      const { rows: counted } = await pool.query<{ n: string }>(
        `select count(*)::text as n from tributary_search.bench_search where not "__deleted"`,
      );
      if (Number(counted[0]!.n) !== ROWS)
        throw new Error(`the index holds ${counted[0]!.n} documents, not ${ROWS}`);
      console.log(`Backfill of ${fmt(ROWS)} documents into the PostgreSQL backend:`);
      console.log(
        `  INSERT … SELECT baseline: ${fmt(rate(ROWS, baselineMs))} docs/s (${(baselineMs / 1000).toFixed(2)} s)`,
      );
      console.log(
        `  sink backfill:            ${fmt(rate(ROWS, sinkMs))} docs/s (${(sinkMs / 1000).toFixed(2)} s)`,
      );
      console.log(`  ratio sink / baseline:    ${(baselineMs / sinkMs).toFixed(2)} (target ≥ 0.5)`);

      // Live: LIVE_RATE changes a second, in transactions of 10 every 10 ms.
      console.log(`Live: ${fmt(LIVE_RATE)} changes/s for ${LIVE_SECONDS} s…`);
      const writer = new pg.Client({ connectionString: db.url });
      await writer.connect();
      const perTx = Math.max(1, Math.round(LIVE_RATE / 100));
      const end = performance.now() + LIVE_SECONDS * 1000;
      let next = performance.now();
      let written = 0;
      while (performance.now() < end) {
        // One statement, one transaction: the view rows and their changelog entries.
        const ids = Array.from({ length: perTx }, (_, j) => 1 + (((written + j) * 7919) % ROWS));
        const { rows: changes } = await writer.query<{ xid: string; seq: string }>(
          `with u as (
             update tributary_views.bench_products p set name = 'renamed ' || $2::text || ' ' || p.id
               from unnest($1::int[]) as k(id) where p.id = k.id
             returning p.id, p.name, p.description, p.price::text as price)
           insert into tributary.view_changes (view, op, key, row)
           select 'bench_products', 'upsert', jsonb_build_object('id', id),
                  jsonb_build_object('id', id, 'name', name, 'description', description, 'price', price)
             from u
           returning transaction_id::text as xid, seq::text`,
          [ids, words(written, 2)],
        );
        written += ids.length;
        const top = changes.reduce((a, b) => (BigInt(a.seq) > BigInt(b.seq) ? a : b));
        const last = formatPosition(top.xid, BigInt(top.seq));
        pending.push({ cursor: last, committedAt: performance.now() });
        await writer.query('select pg_notify($1, $2)', [VIEW_CHANGES_CHANNEL, '']);
        next += 10;
        const wait = next - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      }
      const achieved = rate(written, LIVE_SECONDS * 1000);
      const deadline = performance.now() + 30_000;
      while (pending.length > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      await writer.end();
      latencies.sort((a, b) => a - b);
      const pct = (p: number) =>
        latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? NaN;
      console.log(
        `  commit → searchable, ${fmt(latencies.length)} transactions (${fmt(written)} changes, ${fmt(achieved)} changes/s): p50 ${pct(50).toFixed(1)} ms, p99 ${pct(99).toFixed(1)} ms (target p99 < 1000 ms)`,
      );
      if (pending.length > 0) console.log(`  ${pending.length} transactions were not applied within 30 s`);
    } finally {
      await sinks.stop();
    }
  } finally {
    await pool.end();
    await db.close();
  }
}
