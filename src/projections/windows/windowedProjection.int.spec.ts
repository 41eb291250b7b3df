import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.js';
import { waitFor } from '../../../test/support/waitFor.js';
import { createPostgresEventStore, type EventStore } from '../../ingest/index.js';
import { createVirtualClock, startWorkers, type Workers } from '../index.js';
import { aggregates, defineWindowedAggregate, triggers, watermarks, windows } from './index.js';

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
    { key: 'home', start: 0, pane_index: 1, timing: 'ON_TIME', is_final: false, value: 5 },
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
    `select view, count(*)::int as n from tributary.view_changes where view like 'clicks_per_page%' group by view order by view`,
  );
  expect(changes.map((c) => c.view)).toEqual([
    'clicks_per_page_late',
    'clicks_per_page_panes',
    'clicks_per_page_results',
  ]);
  expect(changes[1].n).toBe(3);
  expect(changes[2].n).toBeGreaterThanOrEqual(2);
});
