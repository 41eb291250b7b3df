import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.js';
import { createPool, type Pool, type PoolClient, type Queryable } from '../db/index.js';
import { createPostgresEventStore, type Envelope, readAll, START } from '../ingest/index.js';
import { applyEnvelopes } from './applyEnvelopes.js';
import { defineProjection, defineView, type Projection } from './index.js';
import { cacheKey, type RowCache } from './rowCache.js';
import { DEFAULT_VIEW_SCHEMA } from './view.js';
import { createViewTables } from './viewTables.js';
import { createViewWriter } from './viewWriter.js';

const ACCOUNTS = 3000;
const EVENTS = 2400;
const BATCH = 400;

const accounts = defineView({
  name: 'accounts',
  columns: { id: { type: 'integer' }, balance: { type: 'bigint', nullable: false } },
  primaryKey: ['id'],
});

const deposit = async (event: Envelope, ctx: Parameters<NonNullable<Projection['handle']>>[1]) => {
  const id = Number(event.data.account);
  const row = await ctx.get(accounts, { id });
  await ctx.upsert(accounts, {
    id,
    balance: String(BigInt(row?.balance ?? '0') + BigInt(Number(event.data.amount))),
  });
};

/** Learns where the keys are: no `prefetch`. */
const learning = defineProjection({ name: 'learning', version: 1, views: [accounts], handle: deposit });
/** Says which keys it reads. */
const declared = defineProjection({
  name: 'declared',
  version: 1,
  views: [accounts],
  handle: deposit,
  prefetch: (event) => [{ view: accounts, key: { id: Number(event.data.account) } }],
});

let db: TestDatabase;
let pool: Pool;
let envelopes: Envelope[];

beforeAll(async () => {
  db = await createTestDatabase();
  pool = createPool(db.url, { max: 2 });
  const store = createPostgresEventStore({ connectionString: db.url, pool });
  for (let i = 0; i < EVENTS; i += 200) {
    await store.append(
      `teller-${i}`,
      Array.from({ length: 200 }, (_, j) => ({
        type: 'Deposited',
        data: { account: ((i + j) * 7919) % ACCOUNTS, amount: ((i + j) % 97) + 1 },
      })),
    );
  }
  envelopes = (await readAll(pool, START, { limit: EVENTS })).events;
  expect(envelopes).toHaveLength(EVENTS);
});
afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

/** The statements a batch sends, by kind: one-row reads (cache misses) and batched key reads. */
interface Counts {
  singleReads: number;
  batchReads: number;
}

/** A real connection that tallies the reads of the view table it sends. */
function tallying(client: PoolClient, counts: Counts): Queryable {
  return {
    query: ((text: string, values?: unknown[]) => {
      if (typeof text !== 'string') return client.query(text, values); // a COPY stream
      if (/from "tributary_views"."accounts"\s+where "id" = \$1$/.test(text.trim())) counts.singleReads++;
      if (/= any\(\$1::integer\[\]\)/.test(text)) counts.batchReads++;
      return client.query(text, values);
    }) as Queryable['query'],
  };
}

/**
 * Folds every envelope through the one handler path, a batch per transaction, into a
 * view table that starts with every account at balance 1000 (a view larger than the
 * batches, read cold). Returns the statements each batch sent.
 */
async function fold(
  projection: Projection,
  options: { cacheBytes: number; coldEveryBatch?: boolean },
): Promise<{ perBatch: Counts[]; cache: RowCache }> {
  const client = await pool.connect();
  const cache: RowCache = new Map();
  const perBatch: Counts[] = [];
  try {
    await client.query(`drop table if exists ${DEFAULT_VIEW_SCHEMA}.accounts`);
    await createViewTables(client, [accounts]);
    await client.query(
      `insert into ${DEFAULT_VIEW_SCHEMA}.accounts select g, 1000 from generate_series(0, $1 - 1) g`,
      [ACCOUNTS],
    );
    let from = START;
    for (let i = 0; i < envelopes.length; i += BATCH) {
      if (options.coldEveryBatch) cache.clear(); // as after a restart
      const counts: Counts = { singleReads: 0, batchReads: 0 };
      const page = envelopes.slice(i, i + BATCH);
      await client.query('begin');
      const db = tallying(client, counts);
      const writer = createViewWriter({
        client: db,
        projection: projection.name,
        views: projection.views,
        schema: DEFAULT_VIEW_SCHEMA,
        cache,
        cacheBytes: options.cacheBytes,
      });
      const result = await applyEnvelopes(page, {
        projection,
        client: db,
        writer,
        failures: new Map(),
        from,
        now: new Date(),
        readNext: page.at(-1)!.position,
      });
      expect(result.applied).toBe(page.length);
      await writer.flush();
      await client.query('commit');
      from = result.position;
      perBatch.push(counts);
    }
    const { rows } = await client.query<{ differing: number }>(
      `with expected as (
         select g as id, 1000 + coalesce(sum((e.data->>'amount')::bigint), 0) as balance
         from generate_series(0, $1 - 1) g
         left join tributary.events e on (e.data->>'account')::int = g
         group by g)
       select count(*)::int as differing
       from expected x full join ${DEFAULT_VIEW_SCHEMA}.accounts a using (id)
       where x.balance is distinct from a.balance`,
      [ACCOUNTS],
    );
    expect(rows[0]!.differing).toBe(0);
    return { perBatch, cache };
  } finally {
    client.release();
  }
}

describe('a view larger than the cache, read cold', () => {
  it('costs one key read per view and batch once the runner has learned where the keys are', async () => {
    const { perBatch } = await fold(learning, { cacheBytes: 64 * 1024 * 1024, coldEveryBatch: true });
    // The first event reads its row alone, which shows that the key is the event's `account`;
    // the rest of that batch is then read in one statement.
    expect(perBatch[0]).toEqual({ singleReads: 1, batchReads: 1 });
    for (const counts of perBatch.slice(1)) expect(counts).toEqual({ singleReads: 0, batchReads: 1 });
  });

  it('needs no learning when the projection says which keys it reads', async () => {
    const { perBatch } = await fold(declared, { cacheBytes: 64 * 1024 * 1024, coldEveryBatch: true });
    for (const counts of perBatch) expect(counts).toEqual({ singleReads: 0, batchReads: 1 });
  });

  it('keeps the cache within its memory budget, evicting the least recently used rows, and stays exact', async () => {
    const budget = 160 * 1024; // more than a batch needs, far less than the view
    const { cache, perBatch } = await fold(declared, { cacheBytes: budget });
    const rows = cache.get('accounts')!;
    expect(rows.bytes).toBeLessThanOrEqual(budget);
    expect(rows.size).toBeGreaterThan(0);
    expect(rows.size).toBeLessThan(ACCOUNTS);
    // The most recent batch's keys are the ones kept.
    const last = envelopes.slice(-BATCH).map((e) => cacheKey(accounts, { id: Number(e.data.account) }));
    const kept = new Set(rows.keys());
    expect(last.slice(-50).every((key) => kept.has(key))).toBe(true);
    for (const counts of perBatch) expect(counts.singleReads).toBe(0);
  });
});
