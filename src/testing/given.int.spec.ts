import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.js';
import { waitFor } from '../../test/support/waitFor.js';
import { createPool } from '../db/index.js';
import { createPostgresEventStore } from '../ingest/index.js';
import {
  canonicalSelectList,
  createVirtualClock,
  defineProjection,
  defineView,
  startWorkers,
} from '../projections/index.js';
import { cdcChange, given } from './index.js';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db.drop();
});

const balances = defineView({
  name: 'balances',
  columns: { account: { type: 'text' }, balance: { type: 'bigint', nullable: false } },
  primaryKey: ['account'],
});
const balanceProjection = defineProjection({
  name: 'balances',
  version: 1,
  views: [balances],
  filter: { types: ['Deposited', 'Withdrawn'] },
  async handle(event, ctx) {
    const account = String(event.data.account);
    const row = await ctx.get(balances, { account });
    const delta = BigInt(Number(event.data.amount)) * (event.type === 'Withdrawn' ? -1n : 1n);
    await ctx.upsert(balances, { account, balance: String(BigInt(row?.balance ?? '0') + delta) });
  },
});

const products = defineView({
  name: 'products',
  columns: { id: { type: 'integer' }, name: { type: 'text' }, price: { type: 'numeric' } },
  primaryKey: ['id'],
});
const catalog = defineProjection({
  name: 'catalog',
  version: 1,
  views: [products],
  filter: { typePrefixes: ['public.products.'] },
  async handle(event, ctx) {
    const { key, after } = event.data as { key: { id: number }; after: Record<string, never> | null };
    if (event.type.endsWith('.delete')) await ctx.delete(products, { id: key.id });
    else await ctx.upsert(products, { ...after, id: key.id });
  },
});

describe('given / when / then', () => {
  it('checks the rows a projection writes for the given events', async () => {
    await given([
      { type: 'Deposited', data: { account: 'a1', amount: 10 } },
      { type: 'Deposited', data: { account: 'a2', amount: 3 } },
      { type: 'Ignored', data: { account: 'a3', amount: 99 } },
      { type: 'Withdrawn', data: { account: 'a1', amount: 4 } },
    ])
      .when(balanceProjection, { url: db.url })
      .then(balances, [
        { account: 'a1', balance: 6 },
        { account: 'a2', balance: '3' },
      ]);
  });

  it('runs a SQL projection over the given events, filter, where and last-wins included', async () => {
    const latest = defineView({
      name: 'latest_deposits',
      columns: {
        account: { type: 'text' },
        amount: { type: 'numeric', nullable: false },
        at: { type: 'timestamptz' },
      },
      primaryKey: ['account'],
    });
    const projection = defineProjection({
      name: 'latest_deposits',
      version: 1,
      views: [latest],
      filter: { types: ['Deposited'] },
      sql: {
        view: latest,
        columns: { account: "e.data->>'account'", amount: "e.data->>'amount'", at: 'e.event_time' },
        where: "(e.data->>'amount')::numeric > 0",
      },
    });
    const when = given([
      { type: 'Deposited', data: { account: 'a1', amount: '10.50' } },
      { type: 'Deposited', data: { account: 'a2', amount: '3' }, eventTime: '2026-01-02T03:04:05.123456Z' },
      { type: 'Withdrawn', data: { account: 'a1', amount: '99' } },
      { type: 'Deposited', data: { account: 'a1', amount: '0.25' } },
      { type: 'Deposited', data: { account: 'a2', amount: '-1' } },
    ]).when(projection, { url: db.url, batchSize: 2 });
    await when.then(latest, [
      { account: 'a1', amount: '0.25' },
      { account: 'a2', amount: '3' },
    ]);
    expect((await when.rows(latest))[1]!.at).toBe('2026-01-02T03:04:05.123000Z');
  });

  it('fails with a readable diff when the rows differ', async () => {
    const failure = await given([{ type: 'Deposited', data: { account: 'a1', amount: 10 } }])
      .when(balanceProjection, { url: db.url })
      .then(balances, [{ account: 'a1', balance: 11 }])
      .catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(Error);
    expect(String((failure as Error).message)).toMatch(/Rows of view 'balances' differ/);
  });

  it('takes CDC changes, and leaves nothing behind', async () => {
    const when = given([
      cdcChange('public.products', 'insert', {
        key: { id: 1 },
        after: { id: 1, name: 'Pen', price: '1.50' },
      }),
      cdcChange('public.products', 'insert', { key: { id: 2 }, after: { id: 2, name: 'Ink', price: '7' } }),
      cdcChange('public.products', 'update', {
        key: { id: 1 },
        after: { id: 1, name: 'Pen', price: '1.75' },
      }),
      cdcChange('public.products', 'delete', { key: { id: 2 }, before: { id: 2 } }),
    ]).when(catalog, { url: db.url });
    await when.then(products, [{ id: 1, name: 'Pen', price: '1.75' }]);
    expect(await when.rows(products)).toEqual([{ id: 1, name: 'Pen', price: '1.75' }]);
    const pg = await import('pg');
    const client = new pg.default.Client({ connectionString: db.url });
    await client.connect();
    const { rows } = await client.query(
      `select count(*)::int as n from pg_namespace where nspname like 'tributary_test_%'`,
    );
    await client.end();
    expect(rows[0].n).toBe(0);
  });

  it('patch and find see the batch’s own earlier writes', async () => {
    const tasks = defineView({
      name: 'tasks',
      columns: {
        id: { type: 'text' },
        owner: { type: 'text', nullable: false },
        done: { type: 'boolean', nullable: false },
        meta: { type: 'jsonb' },
      },
      primaryKey: ['id'],
      indexes: [{ columns: ['owner'] }],
    });
    const summary = defineView({
      name: 'owners',
      columns: { owner: { type: 'text' }, open: { type: 'integer', nullable: false } },
      primaryKey: ['owner'],
    });
    const projection = defineProjection({
      name: 'tasks',
      version: 1,
      views: [tasks, summary],
      async handle(event, ctx) {
        const id = String(event.data.id);
        if (event.type === 'Created') {
          await ctx.upsert(tasks, { id, owner: String(event.data.owner), done: false, meta: { n: 1 } });
        } else if (event.type === 'Done') {
          const row = await ctx.patch(tasks, { id }, { done: true });
          if (!row) throw new Error(`no task ${id}`);
        } else if (event.type === 'Removed') {
          expect(await ctx.delete(tasks, { id })).toBe(true);
          expect(await ctx.delete(tasks, { id })).toBe(false);
        }
        const owner = String(event.data.owner);
        const open = await ctx.find(tasks, { owner, done: false });
        await ctx.upsert(summary, { owner, open: open.length });
      },
    });
    const when = given([
      { type: 'Created', data: { id: 't1', owner: 'ann' } },
      { type: 'Created', data: { id: 't2', owner: 'ann' } },
      { type: 'Created', data: { id: 't3', owner: 'bob' } },
      { type: 'Done', data: { id: 't1', owner: 'ann' } },
      { type: 'Removed', data: { id: 't3', owner: 'bob' } },
    ]).when(projection, { url: db.url });
    await when.then(tasks, [
      { id: 't1', done: true, meta: { n: 1 } },
      { id: 't2', done: false },
    ]);
    await when.then(summary, [
      { owner: 'ann', open: 1 },
      { owner: 'bob', open: 0 },
    ]);
  });
});

/**
 * A projection with timers: visits open a session per user; a timer 30 minutes after the
 * last visit (event time) closes it, and onTimer reports when the next session expires.
 */
const sessions = defineView({
  name: 'sessions',
  columns: {
    user_id: { type: 'text' },
    visits: { type: 'integer', nullable: false },
    last_at: { type: 'timestamptz', nullable: false },
    open: { type: 'boolean', nullable: false },
    closed_at: { type: 'timestamptz' },
  },
  primaryKey: ['user_id'],
});
const SESSION_MS = 30 * 60_000;
const sessionProjection = defineProjection({
  name: 'sessions',
  version: 1,
  views: [sessions],
  filter: { types: ['Visited'] },
  async handleBatch(envelopes, tx) {
    for (const envelope of envelopes) {
      const user = String(envelope.data.user);
      const row = await tx.views.get(sessions, { user_id: user });
      const at = envelope.eventTime;
      await tx.views.upsert(sessions, {
        user_id: user,
        visits: (row?.open ? row.visits : 0) + 1,
        last_at: at,
        open: true,
        closed_at: null,
      });
      tx.scheduleTimer(new Date(at.getTime() + SESSION_MS));
    }
  },
  async onTimer(now, tx) {
    let next: Date | undefined;
    for (const row of await tx.views.find(sessions, { open: true })) {
      const expires = new Date(Date.parse(row.last_at) + SESSION_MS);
      if (expires <= now)
        await tx.views.patch(sessions, { user_id: row.user_id }, { open: false, closed_at: now });
      else if (!next || expires < next) next = expires;
    }
    return next;
  },
});

describe('timers', () => {
  it('run under the kit exactly as under the runner: the same views for the same events and clock', async () => {
    const at = (minutes: number) => new Date(Date.UTC(2026, 0, 1, 12, minutes)).toISOString();
    const visits = [
      { user: 'ann', at: at(0) },
      { user: 'bob', at: at(5) },
      { user: 'ann', at: at(20) },
      { user: 'cy', at: at(50) },
      { user: 'bob', at: at(70) },
    ];
    // By then ann's and the first bob session have expired; cy's and bob's second have not.
    const now = new Date(Date.UTC(2026, 0, 1, 13, 25));
    const events = visits.map((v) => ({ type: 'Visited', data: { user: v.user }, eventTime: v.at }));

    const kit = await given(events)
      .when(sessionProjection, { url: db.url, now, batchSize: 2 })
      .rows(sessions);
    expect(kit.filter((row) => row.open === false).map((row) => row.user_id)).toEqual(['ann', 'cy']);

    const store = createPostgresEventStore({ connectionString: db.url });
    const pool = createPool(db.url, { max: 2 });
    const workers = startWorkers({
      url: db.url,
      projections: [sessionProjection],
      clock: createVirtualClock(now),
      batchSize: 2,
    });
    try {
      for (const event of events) await store.append(`visits-${event.data.user}`, [event]);
      const read = async () =>
        (
          await pool.query(
            `select ${canonicalSelectList(sessions.columns)} from tributary_views.sessions order by user_id`,
          )
        ).rows;
      await waitFor(async () => JSON.stringify(await read()) === JSON.stringify(kit), {
        what: `the runner's views to equal the kit's ${JSON.stringify(kit)}`,
        timeoutMs: 30_000,
      });
      expect(await read()).toEqual(kit);
    } finally {
      await workers.stop();
      await store.close();
      await pool.end();
    }
  });
});
