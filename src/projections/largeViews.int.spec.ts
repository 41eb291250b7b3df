import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.js';
import { waitFor } from '../../test/support/waitFor.js';
import { createPool, type Pool, type PoolClient, type Queryable } from '../db/index.js';
import { createPostgresEventStore, type Envelope, readAll, START } from '../ingest/index.js';
import { applyEnvelopes } from './applyEnvelopes.js';
import { defineProjection, defineView, type Projection, startWorkers } from './index.js';
import { keysToPrefetch } from './keyPrefetch.js';
import { cacheKey, clearCache, type RowCache } from './rowCache.js';
import { DEFAULT_VIEW_SCHEMA } from './view.js';
import { createViewTables } from './viewTables.js';
import { createViewWriter, type ReadAhead } from './viewWriter.js';

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
  await store.close();
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
    expect(await rowsDifferingFromFold(client, 'accounts', ACCOUNTS)).toBe(0);
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

describe('rows read ahead for the next batch, on another connection', () => {
  /** The second batch re-deposits into the first half of the accounts the first batch wrote. */
  const batches = () => {
    const first = envelopes.slice(0, BATCH);
    const second = envelopes
      .slice(BATCH, 2 * BATCH)
      .map(
        (envelope, i): Envelope =>
          i % 2 === 0
            ? { ...envelope, data: { ...envelope.data, account: first[i / 2]!.data.account! } }
            : envelope,
      );
    return [first, second] as const;
  };

  /**
   * Batch one runs and, before it commits, its writer reads the second batch's rows on
   * another connection; the second batch then takes them. Returns the second batch's reads.
   */
  async function twoBatches(options: { evictFirst: boolean }): Promise<Counts> {
    const client = await pool.connect();
    const cache: RowCache = new Map();
    const [first, second] = batches();
    try {
      await client.query(`drop table if exists ${DEFAULT_VIEW_SCHEMA}.accounts`);
      await createViewTables(client, [accounts]);
      await client.query(
        `insert into ${DEFAULT_VIEW_SCHEMA}.accounts select g, 1000 from generate_series(0, $1 - 1) g`,
        [ACCOUNTS],
      );
      const run = async (page: Envelope[], from: string, counts: Counts, ahead?: ReadAhead) => {
        await client.query('begin');
        const db = tallying(client, counts);
        const writer = createViewWriter({
          client: db,
          projection: declared.name,
          views: declared.views,
          schema: DEFAULT_VIEW_SCHEMA,
          cache,
        });
        if (ahead) writer.accept(ahead);
        const result = await applyEnvelopes(page, {
          projection: declared,
          client: db,
          writer,
          failures: new Map(),
          from,
          now: new Date(),
          readNext: page.at(-1)!.position,
        });
        expect(result.applied).toBe(page.length);
        return { writer, position: result.position };
      };
      const one = await run(first, START, { singleReads: 0, batchReads: 0 });
      // Read while batch one is uncommitted: it must not hand over the rows batch one writes.
      const keys = keysToPrefetch(declared, second);
      let ahead: ReadAhead;
      if (options.evictFirst) {
        // Batch one has flushed and its rows were evicted: neither pending nor cached, they
        // are known as batch one's only by what it wrote.
        await one.writer.flush();
        clearCache(cache);
        ahead = await one.writer.readAhead(pool, keys);
      } else {
        ahead = await one.writer.readAhead(pool, keys);
        await one.writer.flush();
      }
      await client.query('commit');
      const counts: Counts = { singleReads: 0, batchReads: 0 };
      const two = await run(second, one.position, counts, ahead);
      await two.writer.flush();
      await client.query('commit');

      const expected = new Map<number, bigint>();
      for (const envelope of [...first, ...second]) {
        const id = Number(envelope.data.account);
        expected.set(id, (expected.get(id) ?? 1000n) + BigInt(Number(envelope.data.amount)));
      }
      const { rows } = await client.query<{ id: number; balance: string }>(
        `select id, balance::text from ${DEFAULT_VIEW_SCHEMA}.accounts where id = any($1::int[])`,
        [[...expected.keys()]],
      );
      expect(new Map(rows.map((row) => [row.id, BigInt(row.balance)]))).toEqual(expected);
      return counts;
    } finally {
      client.release();
    }
  }

  it('leaves the next batch no key to read', async () => {
    expect(await twoBatches({ evictFirst: false })).toEqual({ singleReads: 0, batchReads: 0 });
  });

  it('never hands over a row the batch that read it was writing', async () => {
    // The accounts batch one wrote were not read ahead: batch two reads them itself, once.
    expect(await twoBatches({ evictFirst: true })).toEqual({ singleReads: 0, batchReads: 1 });
  });
});

describe('the runner over a view too large to load whole', () => {
  const ROWS = 25_000; // above the size loaded whole when a worker starts
  const bigAccounts = defineView({
    name: 'big_accounts',
    columns: { id: { type: 'integer' }, balance: { type: 'bigint', nullable: false } },
    primaryKey: ['id'],
  });
  const projection = defineProjection({
    name: 'big_accounts',
    version: 1,
    views: [bigAccounts],
    prefetch: (event) => [{ view: bigAccounts, key: { id: Number(event.data.account) } }],
    async handle(event, ctx) {
      const id = Number(event.data.account);
      const row = await ctx.get(bigAccounts, { id });
      await ctx.upsert(bigAccounts, {
        id,
        balance: String(BigInt(row?.balance ?? '0') + BigInt(Number(event.data.amount))),
      });
    },
  });

  it('reads each batch’s keys in one statement, sent while the batch before it commits', async () => {
    const setup = await pool.connect();
    try {
      await createViewTables(setup, [bigAccounts]);
      await setup.query(
        `insert into ${DEFAULT_VIEW_SCHEMA}.big_accounts select g, 1000 from generate_series(0, $1 - 1) g`,
        [ROWS],
      );
    } finally {
      setup.release();
    }
    // Every statement reaches the server through a pooled client; the rows read ahead go
    // through the pool's own `query`, on whichever connection is free.
    const isKeyRead = (text: unknown) => typeof text === 'string' && /= any\(\$1::integer\[\]\)/.test(text);
    const counts = { keyReads: 0, readAhead: 0 };
    const workerPool = createPool(db.url, { max: 4 });
    workerPool.on('connect', (client) => {
      const query = client.query.bind(client) as (...args: unknown[]) => unknown;
      client.query = ((...args: unknown[]) => {
        if (isKeyRead(args[0])) counts.keyReads++;
        return query(...args);
      }) as typeof client.query;
    });
    const poolQuery = workerPool.query.bind(workerPool) as (...args: unknown[]) => unknown;
    workerPool.query = ((...args: unknown[]) => {
      if (isKeyRead(args[0])) counts.readAhead++;
      return poolQuery(...args);
    }) as typeof workerPool.query;
    const last = envelopes.at(-1)!.position;
    let reached = false;
    const workers = startWorkers({
      url: db.url,
      pool: workerPool,
      projections: [projection],
      batchSize: BATCH,
      onCommit: ({ position }) => {
        if (position >= last) reached = true;
      },
    });
    try {
      await waitFor(() => reached, { timeoutMs: 30_000, what: 'the runner to fold every envelope' });
    } finally {
      await workers.stop();
      await workerPool.end();
    }
    const batches = EVENTS / BATCH;
    // The first batch reads its keys itself; every later one's were read ahead.
    expect(counts).toEqual({ keyReads: batches, readAhead: batches - 1 });
    expect(await rowsDifferingFromFold(pool, 'big_accounts', ROWS)).toBe(0);
  });
});

/**
 * Rows of the accounts view `table` that differ from the fold of the log in SQL (1000 plus
 * every deposit to the account), over accounts 0 to `accounts - 1`, missing and extra rows
 * included.
 */
async function rowsDifferingFromFold(db: Queryable, table: string, accounts: number): Promise<number> {
  const { rows } = await db.query<{ differing: number }>(
    `with expected as (
       select g as id, 1000 + coalesce(sum((e.data->>'amount')::bigint), 0) as balance
       from generate_series(0, $1 - 1) g
       left join tributary.events e on (e.data->>'account')::int = g
       group by g)
     select count(*)::int as differing
     from expected x full join ${DEFAULT_VIEW_SCHEMA}.${table} a using (id)
     where x.balance is distinct from a.balance`,
    [accounts],
  );
  return rows[0]!.differing;
}
