import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CUSTOMER_ORDERS_SQL,
  customerOrders,
  customerOrdersJoin,
  joinScript,
  WAITING_SQL,
} from '../../test/fixtures/joinCrash.js';
import { committedHead } from '../../test/support/committedHead.js';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.js';
import { waitFor } from '../../test/support/waitFor.js';
import { createPostgresEventStore, type EventStore } from '../ingest/index.js';
import { given } from '../testing/index.js';
import { defineProjection, defineView, listDeadLetters, rebuildProjection, startWorkers } from './index.js';

let db: TestDatabase;
let pool: pg.Pool;
let store: EventStore;

beforeAll(async () => {
  db = await createTestDatabase();
  pool = new pg.Pool({ connectionString: db.url, max: 6 });
  pool.on('error', () => {});
  store = createPostgresEventStore({ connectionString: db.url });
});
afterAll(async () => {
  await store.close();
  await pool.end();
  await db.drop();
});

const caughtUp = async (name: string) => {
  const head = await committedHead(pool);
  const { rowCount } = await pool.query(
    'select 1 from tributary.projections where name = $1 and position >= $2',
    [name, head],
  );
  return rowCount === 1;
};

const stateOf = async (projection: string, namespace: string) =>
  (
    await pool.query(
      `select scope, key, value from tributary.projection_state
        where projection = $1 and namespace = $2 order by scope, key`,
      [projection, namespace],
    )
  ).rows;

describe('keyed state', () => {
  it('joins through given(...), whatever side arrives first', async () => {
    await given([
      { type: 'Order', data: { customer: 'c1', amount: 5 } },
      { type: 'Order', data: { customer: 'c1', amount: 7 } },
      { type: 'Customer', data: { id: 'c1', name: 'Ada' } },
      { type: 'Order', data: { customer: 'c1', amount: 1 } },
      { type: 'Order', data: { customer: 'c2', amount: 3 } },
    ])
      .when(customerOrdersJoin, { url: db.url })
      .then(customerOrders, [{ customer: 'c1', name: 'Ada', orders: 3, total: '13' }]);
    // given(...) runs in a transaction that is rolled back: nothing stays behind.
    expect(await stateOf('customer_orders', 'waiting')).toEqual([]);
  });

  it('commits with the checkpoint: a failing event’s state writes are undone with its view writes', async () => {
    const tally = defineView({
      name: 'tally',
      columns: { id: { type: 'text' }, n: { type: 'integer', nullable: false } },
      primaryKey: ['id'],
    });
    const projection = defineProjection({
      name: 'tally',
      version: 1,
      views: [tally],
      filter: { types: ['Tick'] },
      onError: 'dead-letter',
      retry: { maxAttempts: 1 },
      async handle(event, ctx) {
        const n = ((await ctx.state.get<number>('seen', 'ticks')) ?? 0) + 1;
        await ctx.state.set('seen', 'ticks', n);
        await ctx.state.set('by-event', String(event.data.i), n);
        if (event.data.fail) throw new Error('this tick fails after writing state');
        await ctx.upsert(tally, { id: 'ticks', n });
      },
    });
    await store.append('ticks', [
      { type: 'Tick', data: { i: 1 } },
      { type: 'Tick', data: { i: 2, fail: true } },
      { type: 'Tick', data: { i: 3 } },
    ]);
    const workers = startWorkers({ url: db.url, projections: [projection], pollIntervalMs: 50 });
    try {
      await waitFor(() => caughtUp('tally'), { what: 'the tally to catch up', timeoutMs: 30_000 });
    } finally {
      await workers.stop();
    }
    expect((await listDeadLetters(pool, { projection: 'tally' })).map((d) => d.envelope.data.i)).toEqual([2]);
    expect((await pool.query('select id, n from tributary_views.tally')).rows).toEqual([
      { id: 'ticks', n: 2 },
    ]);
    expect(await stateOf('tally', 'seen')).toEqual([{ scope: 'tributary_views', key: 'ticks', value: 2 }]);
    expect((await stateOf('tally', 'by-event')).map((row) => [row.key, row.value])).toEqual([
      ['1', 1],
      ['3', 2],
    ]);
  });

  it('a rebuild builds the state of the new version apart, and swaps it in with the views', async () => {
    for (const [index, phase] of joinScript(4, 30).entries()) await store.append(`shop-${index}`, phase);
    const workers = startWorkers({ url: db.url, projections: [customerOrdersJoin], pollIntervalMs: 50 });
    try {
      await waitFor(() => caughtUp('customer_orders'), { what: 'the join to catch up', timeoutMs: 30_000 });
    } finally {
      await workers.stop();
    }
    const expected = (await pool.query(CUSTOMER_ORDERS_SQL)).rows;
    const waiting = (await pool.query(WAITING_SQL)).rows;
    const view = async () =>
      (
        await pool.query(
          'select customer, name, orders, total from tributary_views.customer_orders order by 1',
        )
      ).rows;
    expect(await view()).toEqual(expected);
    // Stale state in the shadow scope (an earlier abandoned rebuild) must not leak into the new one.
    await pool.query(
      `insert into tributary.projection_state (projection, scope, namespace, key, value)
       values ('customer_orders', 'tributary_views_rebuild', 'customer', 'c999', '"Ghost"')`,
    );
    const v2 = { ...customerOrdersJoin, version: 2 };
    await rebuildProjection({ pool, projection: v2, batchSize: 7 });
    expect(await view()).toEqual(expected);
    const scopes = await pool.query(
      `select distinct scope from tributary.projection_state where projection = 'customer_orders'`,
    );
    expect(scopes.rows).toEqual([{ scope: 'tributary_views' }]);
    expect(
      (await stateOf('customer_orders', 'waiting')).map((row) => ({
        customer: row.key,
        orders: row.value.orders,
        total: row.value.total,
      })),
    ).toEqual(waiting);
    expect((await stateOf('customer_orders', 'customer')).map((row) => row.key)).not.toContain('c999');

    // In place: the live state is reset with the tables, then rebuilt.
    await rebuildProjection({ pool, projection: v2, inPlace: true });
    expect(await view()).toEqual(expected);
    expect((await stateOf('customer_orders', 'customer')).length).toBe(expected.length);
  });

  it('clear drops a whole namespace, and later writes in the same batch survive it', async () => {
    const last = defineView({
      name: 'last_window',
      columns: { id: { type: 'text' }, members: { type: 'jsonb' } },
      primaryKey: ['id'],
    });
    const windowed = defineProjection({
      name: 'windowed_members',
      version: 1,
      views: [last],
      filter: { types: ['Member'] },
      async handle(event, ctx) {
        const window = String(event.data.window);
        const current = await ctx.state.get<string>('meta', 'window');
        if (current !== undefined && current !== window) await ctx.state.clear(`w:${current}`);
        await ctx.state.set('meta', 'window', window);
        await ctx.state.set(`w:${window}`, String(event.data.who), true);
        await ctx.upsert(last, { id: 'current', members: window });
      },
    });
    await given([
      { type: 'Member', data: { window: '1', who: 'a' } },
      { type: 'Member', data: { window: '1', who: 'b' } },
      { type: 'Member', data: { window: '2', who: 'c' } },
    ])
      .when(windowed, { url: db.url })
      .then(last, [{ id: 'current', members: '2' }]);

    await store.append('members', [
      { type: 'Member', data: { window: '1', who: 'a' } },
      { type: 'Member', data: { window: '1', who: 'b' } },
      { type: 'Member', data: { window: '2', who: 'c' } },
      { type: 'Member', data: { window: '3', who: 'd' } },
    ]);
    const workers = startWorkers({ url: db.url, projections: [windowed], batchSize: 2, pollIntervalMs: 50 });
    try {
      await waitFor(() => caughtUp('windowed_members'), {
        what: 'the projection to catch up',
        timeoutMs: 30_000,
      });
    } finally {
      await workers.stop();
    }
    const rows = await pool.query(
      `select namespace, key from tributary.projection_state where projection = 'windowed_members' order by 1, 2`,
    );
    expect(rows.rows).toEqual([
      { namespace: 'meta', key: 'window' },
      { namespace: 'w:3', key: 'd' },
    ]);
  });
});
