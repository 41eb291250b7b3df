import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { committedHead } from '../../../test/support/committedHead.js';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.js';
import { waitFor } from '../../../test/support/waitFor.js';
import { createPool } from '../../db/index.js';
import { createPostgresEventStore, type EventStore, START } from '../../ingest/index.js';
import {
  createVirtualClock,
  rebuildProjection,
  replayProjection,
  startWorkers,
  type Workers,
} from '../index.js';
import {
  aggregates,
  defineWindowedAggregate,
  triggers,
  type WindowedAggregateOptions,
  watermarks,
  windows,
} from './index.js';

let db: TestDatabase;
let store: EventStore;
let client: pg.Client;
let workers: Workers | undefined;

beforeAll(async () => {
  db = await createTestDatabase();
  store = createPostgresEventStore({ connectionString: db.url });
  client = new pg.Client({ connectionString: db.url });
  await client.connect();
});

afterAll(async () => {
  await workers?.stop();
  await client.end();
  await store.close();
  await db.drop();
});

const T0 = Date.UTC(2026, 0, 1);

it('runs as a projection: panes, results and late views with changelog, timers firing without events', async () => {
  const clicks = defineWindowedAggregate({
    name: 'clicks_per_page',
    filter: { types: ['Clicked'] },
    key: (e) => String(e.data.page),
    value: (e) => e.data.n,
    window: windows.tumbling({ size: '1m' }),
    watermark: watermarks.boundedOutOfOrderness({ maxLag: '10s' }),
    allowedLateness: '1m',
    trigger: triggers.afterWatermark().withEarlyFirings(triggers.afterProcessingTime('30s')),
    aggregate: aggregates.sum(),
  });
  const clock = createVirtualClock(new Date(T0));
  workers = startWorkers({ url: db.url, projections: [clicks], clock, pollIntervalMs: 50 });
  const at = (ms: number) => new Date(T0 + ms).toISOString();
  const query = async (sql: string) => (await client.query(sql)).rows;
  const panes = () =>
    query(
      `select key, extract(epoch from window_start - timestamptz '${at(0)}')::int as start, pane_index, timing, is_final, value
         from tributary_views.clicks_per_page_panes order by window_start, key, pane_index`,
    );

  await store.append('pages', [
    { type: 'Clicked', data: { page: 'home', n: 2 }, eventTime: at(1_000) },
    { type: 'Clicked', data: { page: 'home', n: 3 }, eventTime: at(5_000) },
    { type: 'Ignored', data: { page: 'home', n: 100 }, eventTime: at(6_000) },
  ]);
  await waitFor(
    async () => (await query(`select 1 from tributary.window_state where timer_at is not null`)).length === 1,
    { timeoutMs: 30_000, what: 'the early-firing timer to be stored' },
  );
  expect(await panes()).toEqual([]);

  // No event arrives: the timer alone fires the EARLY pane.
  clock.advance(30_000);
  await waitFor(async () => (await panes()).length === 1, { timeoutMs: 30_000, what: 'the EARLY pane' });
  expect(await panes()).toEqual([
    { key: 'home', start: 0, pane_index: 0, timing: 'EARLY', is_final: false, value: 5 },
  ]);
  // The pane says when it fired (the runner's clock) and the watermark then (5s - 10s of lag).
  expect(
    await query(
      `select extract(epoch from fired_at - timestamptz '${at(0)}')::int as fired_at,
              extract(epoch from watermark - timestamptz '${at(0)}')::int as watermark
         from tributary_views.clicks_per_page_panes`,
    ),
  ).toEqual([{ fired_at: 30, watermark: -5 }]);

  // An event at 1m10s moves the watermark to 1m: the ON_TIME pane. Then one too late for the lateness.
  await store.append('pages', [{ type: 'Clicked', data: { page: 'home', n: 1 }, eventTime: at(70_000) }]);
  await store.append('pages', [{ type: 'Clicked', data: { page: 'docs', n: 7 }, eventTime: at(200_000) }]);
  await store.append('pages', [{ type: 'Clicked', data: { page: 'home', n: 50 }, eventTime: at(2_000) }]);
  await waitFor(
    async () => (await query('select 1 from tributary_views.clicks_per_page_late')).length === 1,
    { timeoutMs: 30_000, what: 'the dropped element in the late view' },
  );
  expect(await panes()).toEqual([
    { key: 'home', start: 0, pane_index: 0, timing: 'EARLY', is_final: false, value: 5 },
    // Without late firings the trigger finishes with the ON_TIME pane: it is final, the window closed.
    { key: 'home', start: 0, pane_index: 1, timing: 'ON_TIME', is_final: true, value: 5 },
    // The watermark jumped past this window's expiry at once: its ON_TIME pane is also its last.
    { key: 'home', start: 60, pane_index: 0, timing: 'ON_TIME', is_final: true, value: 1 },
  ]);
  expect(
    await query(
      `select key, value, element_count, pane_index, timing, is_final
         from tributary_views.clicks_per_page_results order by window_start, key`,
    ),
  ).toEqual([
    { key: 'home', value: 5, element_count: '2', pane_index: 1, timing: 'ON_TIME', is_final: true },
    { key: 'home', value: 1, element_count: '1', pane_index: 0, timing: 'ON_TIME', is_final: true },
  ]);
  expect(await query('select key, value from tributary_views.clicks_per_page_late')).toEqual([
    { key: 'home', value: 50 },
  ]);
  // Every view write went through the changelog, so GraphQL subscriptions see the panes.
  const changes = await query(
    `select view, count(*)::int as n from tributary.view_change_entries where view like 'clicks_per_page%' group by view order by view`,
  );
  expect(changes.map((c) => c.view)).toEqual([
    'clicks_per_page_late',
    'clicks_per_page_panes',
    'clicks_per_page_results',
  ]);
  expect(changes[1].n).toBe(3);
  expect(changes[2].n).toBeGreaterThanOrEqual(2);
});

it('rebuilds under a new version into its own state and swaps in the same views; refuses a same-version rebuild; ignores replays', async () => {
  const options: WindowedAggregateOptions = {
    name: 'visits',
    filter: { types: ['Visited'] },
    key: (e) => String(e.data.user),
    window: windows.sessions({ gap: '30s' }),
    allowedLateness: '1m',
    aggregate: aggregates.count(),
  };
  const v1 = defineWindowedAggregate(options);
  const events = Array.from({ length: 40 }, (_, i) => ({
    type: 'Visited',
    data: { user: `u${i % 3}` },
    eventTime: new Date(T0 + i * 7_000 - (i % 5 === 0 ? 40_000 : 0)).toISOString(),
  }));
  await store.append('visits', events);
  const pool = createPool(db.url, { max: 3 });
  const rows = async () =>
    (
      await client.query(
        `select key, window_start, window_end, pane_index, timing, is_final, value
           from tributary_views.visits_panes order by key, window_start, window_end, pane_index`,
      )
    ).rows;
  try {
    const live = startWorkers({ url: db.url, projections: [v1], pool, pollIntervalMs: 50 });
    const head = await committedHead(client);
    await waitFor(
      async () =>
        (
          await client.query(`select 1 from tributary.projections where name = 'visits' and position >= $1`, [
            head,
          ])
        ).rowCount === 1,
      { timeoutMs: 30_000, what: 'visits to catch up' },
    );
    await live.stop();
    const before = await rows();
    expect(before.length).toBeGreaterThan(5);

    await replayProjection({ pool, projection: v1, from: START });
    expect(await rows()).toEqual(before);

    await expect(rebuildProjection({ pool, projection: v1 })).rejects.toThrow(/would share its window state/);

    const v2 = defineWindowedAggregate({ ...options, version: 2 });
    await rebuildProjection({ pool, projection: v2 });
    expect(await rows()).toEqual(before);
    const { rows: keys } = await client.query(
      `select distinct aggregate from tributary.window_watermarks where aggregate like 'visits#%' order by 1`,
    );
    expect(keys.map((k) => k.aggregate)).toEqual(['visits#1', 'visits#2']);
  } finally {
    await pool.end();
  }
});

it('commit-time watermark: a catch-up over old history drops nothing, then follows the clock; a bad value is dead-lettered', async () => {
  const sales = defineWindowedAggregate({
    name: 'sales',
    filter: { types: ['Sold'] },
    key: (e) => String(e.data.shop),
    value: (e) => e.data.amount,
    window: windows.tumbling({ size: '1m' }),
    watermark: watermarks.commitTime({ idleTimeout: '10s' }),
    aggregate: aggregates.sum(),
    onError: 'dead-letter',
    retry: { maxAttempts: 1 },
  });
  const at = (ms: number) => new Date(T0 + ms).toISOString();
  await store.append('sales', [
    { type: 'Sold', data: { shop: 'a', amount: 1 }, eventTime: at(1_000) },
    { type: 'Sold', data: { shop: 'a', amount: 2 }, eventTime: at(2_000) },
    { type: 'Sold', data: { shop: 'a', amount: 'a lot' }, eventTime: at(3_000) },
    { type: 'Sold', data: { shop: 'a', amount: 4 }, eventTime: at(65_000) },
  ]);
  // The worker starts a day later: the history must not be taken for late data.
  const clock = createVirtualClock(new Date(T0 + 86_400_000));
  const worker = startWorkers({ url: db.url, projections: [sales], clock, pollIntervalMs: 50 });
  try {
    const panes = async () =>
      (
        await client.query(
          `select extract(epoch from window_start - timestamptz '${at(0)}')::int as start, timing, value
             from tributary_views.sales_panes order by window_start, pane_index`,
        )
      ).rows;
    // The 1m10s sale moves the watermark past the first window; then the source goes quiet.
    await waitFor(async () => (await panes()).length === 1, { timeoutMs: 30_000, what: 'the first window' });
    clock.advance(10_000);
    await waitFor(async () => (await panes()).length === 2, {
      timeoutMs: 30_000,
      what: 'both windows to fire',
    });
    expect(await panes()).toEqual([
      { start: 0, timing: 'ON_TIME', value: 3 },
      { start: 60, timing: 'ON_TIME', value: 4 },
    ]);
    expect((await client.query('select 1 from tributary_views.sales_late')).rowCount).toBe(0);
    const { rows: dead } = await client.query(
      `select envelope->'data'->>'amount' as amount from tributary.dead_letters where projection = 'sales'`,
    );
    expect(dead).toEqual([{ amount: 'a lot' }]);
  } finally {
    await worker.stop();
  }
});
