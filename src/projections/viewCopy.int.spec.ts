import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { committedHead } from '../../test/support/committedHead.js';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.js';
import { waitFor } from '../../test/support/waitFor.js';
import { createPostgresEventStore, type EventStore } from '../ingest/index.js';
import {
  defineProjection,
  defineView,
  getProjectionStatuses,
  listDeadLetters,
  startWorkers,
} from './index.js';

let db: TestDatabase;
let pool: pg.Pool;
let store: EventStore;

beforeAll(async () => {
  db = await createTestDatabase();
  pool = new pg.Pool({ connectionString: db.url, max: 4 });
  store = createPostgresEventStore({ connectionString: db.url });
});
afterAll(async () => {
  await store.close();
  await pool.end();
  await db.drop();
});

const notes = defineView({
  name: 'copied_notes',
  columns: {
    id: { type: 'text' },
    body: { type: 'text' },
    tags: { type: 'jsonb' },
    at: { type: 'timestamptz' },
    n: { type: 'numeric' },
    count: { type: 'integer' },
    big: { type: 'bigint' },
    ratio: { type: 'double' },
    ok: { type: 'boolean' },
  },
  primaryKey: ['id'],
});
const projection = defineProjection({
  name: 'copied_notes',
  version: 1,
  views: [notes],
  filter: { types: ['Noted'] },
  onError: 'dead-letter',
  retry: { maxAttempts: 3, initialDelayMs: 10 },
  handle: (event, ctx) =>
    ctx.upsert(notes, { ...(event.data as Record<string, unknown>), at: event.eventTime }),
});

it('writes new rows by COPY, exactly as the upsert would, and recovers when a row it thought new exists', async () => {
  const workers = startWorkers({ url: db.url, projections: [projection], pollIntervalMs: 50 });
  const caughtUp = async () => {
    const head = await committedHead(pool);
    const { rowCount } = await pool.query(
      'select 1 from tributary.projections where name = $1 and position >= $2',
      ['copied_notes', head],
    );
    return rowCount === 1;
  };
  try {
    await store.append('notes', [
      {
        type: 'Noted',
        data: {
          id: 'a',
          body: 'tab\there, new\nline, back\\slash',
          tags: { k: 'v\\"' },
          n: '1.50',
          count: -7,
          big: '9007199254740993',
          ratio: 0.1,
          ok: false,
        },
      },
      { type: 'Noted', data: { id: 'b', body: null, tags: [1, 'x'], n: '-0.001' } },
    ]);
    await waitFor(caughtUp, { what: 'the first notes', timeoutMs: 30_000 });
    // A row written behind the worker's back: its cache says 'c' does not exist, so the COPY
    // breaks the primary key; the batch is retried with the table read afresh, and upserts.
    await pool.query(`insert into tributary_views.copied_notes (id, body) values ('c', 'stale')`);
    await store.append('notes', [
      { type: 'Noted', data: { id: 'c', body: 'fresh', tags: null, n: '3' } },
      { type: 'Noted', data: { id: 'd', body: 'new', tags: null, n: '4' } },
    ]);
    await waitFor(caughtUp, { what: 'the later notes', timeoutMs: 30_000 });
  } finally {
    await workers.stop();
  }
  const { rows } = await pool.query(
    'select id, body, tags, n::text as n from tributary_views.copied_notes order by id',
  );
  // The other types as PostgreSQL prints them: what the upsert would have stored.
  const { rows: typed } = await pool.query(
    `select count::text, big::text, ratio::text, ok::text, at = $1::timestamptz as at
       from tributary_views.copied_notes where id = 'a'`,
    [
      (await pool.query(`select event_time from tributary.events where data->>'id' = 'a'`)).rows[0]
        .event_time,
    ],
  );
  expect(typed).toEqual([{ count: '-7', big: '9007199254740993', ratio: '0.1', ok: 'false', at: true }]);
  expect(rows).toEqual([
    { id: 'a', body: 'tab\there, new\nline, back\\slash', tags: { k: 'v\\"' }, n: '1.50' },
    { id: 'b', body: null, tags: [1, 'x'], n: '-0.001' },
    { id: 'c', body: 'fresh', tags: null, n: '3' },
    { id: 'd', body: 'new', tags: null, n: '4' },
  ]);
  expect(await listDeadLetters(pool, { projection: 'copied_notes' })).toEqual([]);
  const [status] = await getProjectionStatuses(pool, [projection]);
  expect(status?.state).toBe('running');
  // The changelog has a row per change: two inserts, then 'c' over the stale row, and 'd'.
  const { rows: changes } = await pool.query(
    `select key->>'id' as id, old->>'body' as old from tributary.view_change_entries where view = 'copied_notes' order by transaction_id, seq, entry`,
  );
  expect(changes).toEqual([
    { id: 'a', old: null },
    { id: 'b', old: null },
    { id: 'c', old: 'stale' },
    { id: 'd', old: null },
  ]);
});
