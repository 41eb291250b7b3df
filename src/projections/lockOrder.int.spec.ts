import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { committedHead } from '../../test/support/committedHead.js';
import { appendCounted, countingProjection, foldInSql } from '../../test/support/counting.js';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.js';
import { waitFor } from '../../test/support/waitFor.js';
import { rebuildProjection, startWorkers } from './index.js';

// A database of its own: its deadlock counter counts this test only.
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db.drop();
});

/**
 * Deadlocks PostgreSQL detected in this database. A backend reports its counters when it
 * exits (or after a while idle): this waits until every other connection to it is gone.
 */
async function deadlocks(): Promise<number> {
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    await waitFor(
      async () =>
        (
          await client.query(
            'select 1 from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()',
          )
        ).rowCount === 0,
      { what: 'the other connections to end', timeoutMs: 30_000 },
    );
    await client.query('select pg_stat_clear_snapshot()');
    const { rows } = await client.query(
      'select deadlocks::int as n from pg_stat_database where datname = current_database()',
    );
    return rows[0].n;
  } finally {
    await client.end();
  }
}

it('rebuilds again and again while the worker, writers and readers run, without a deadlock', async () => {
  const before = await deadlocks();
  const pool = new pg.Pool({ connectionString: db.url, max: 8 });
  pool.on('error', () => {});
  const projection = countingProjection({ version: 1 });
  await appendCounted(pool, 3000, { keys: 200 });
  // Small batches: the worker is nearly always inside one, holding its view tables, when a swap comes.
  const workers = startWorkers({
    url: db.url,
    projections: [projection],
    leaseTimeoutMs: 2000,
    batchSize: 20,
  });
  const caughtUp = async () =>
    (
      await pool.query('select 1 from tributary.projections where name = $1 and position >= $2', [
        'counting',
        await committedHead(pool),
      ])
    ).rowCount === 1;
  await waitFor(caughtUp, { what: 'the worker to catch up', timeoutMs: 60_000 });
  let running = true;
  let appended = 3000;
  const writer = (async () => {
    while (running) {
      await appendCounted(pool, 20, { keys: 200, chunk: 20, offset: appended });
      appended += 20;
      await new Promise((resolve) => setTimeout(resolve, 40));
    }
  })();
  const readerErrors: unknown[] = [];
  const reader = (async () => {
    while (running) {
      try {
        // What the API does: one statement per field, outside any transaction.
        await pool.query('select key, count, sum from tributary_views.counts order by count desc limit 50');
        await pool.query('select count(*) from tributary_views.counts');
      } catch (error) {
        readerErrors.push(error);
      }
    }
  })();

  const failures: unknown[] = [];
  try {
    for (let i = 0; i < 25; i++) {
      await rebuildProjection({ pool, projection, batchSize: 500, leaseTimeoutMs: 2000 }).catch(
        (error: unknown) => failures.push(error),
      );
    }
  } finally {
    running = false;
    await Promise.all([writer, reader]);
  }
  await waitFor(caughtUp, { what: 'the worker to catch up', timeoutMs: 60_000 });
  await workers.stop();
  const fold = await foldInSql(pool);
  // Every backend that ran the work exits here and reports its counters.
  await pool.end();

  expect({ deadlocks: (await deadlocks()) - before, failures, readerErrors }).toEqual({
    deadlocks: 0,
    failures: [],
    readerErrors: [],
  });
  expect(fold.actual).toEqual(fold.expected);
}, 240_000);
