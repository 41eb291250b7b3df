import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { committedHead } from '../../test/support/committedHead.js';
import { appendCounted, countingProjection, foldInSql } from '../../test/support/counting.js';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.js';
import { waitFor } from '../../test/support/waitFor.js';
import {
  type Progress,
  ReplayNotSafeError,
  rebuildProjection,
  replayProjection,
  startWorkers,
} from './index.js';

let db: TestDatabase;
let pool: pg.Pool;

beforeAll(async () => {
  db = await createTestDatabase();
  pool = new pg.Pool({ connectionString: db.url, max: 8 });
  // A client still held by a reader when the database is dropped must not crash the run.
  pool.on('error', () => {});
});
afterAll(async () => {
  await pool.end();
  await db.drop();
});

const caughtUp = async (name: string) => {
  const head = await committedHead(pool);
  return (
    (await pool.query('select 1 from tributary.projections where name = $1 and position >= $2', [name, head]))
      .rowCount === 1
  );
};

describe('rebuild', () => {
  it('builds v2 in shadow tables while writers append, swaps atomically, and equals a fresh run', async () => {
    const v1 = countingProjection({ version: 1 });
    const v2 = countingProjection({ version: 2 });
    await appendCounted(pool, 20_000, { keys: 500 });
    const workers = startWorkers({ url: db.url, projections: [v1], leaseTimeoutMs: 3000 });
    await waitFor(() => caughtUp('counting'), { what: 'v1 to catch up', timeoutMs: 60_000 });

    let writing = true;
    let appended = 20_000;
    const writer = (async () => {
      while (writing) {
        // About a thousand events a second: steady load the rebuild must overtake.
        await appendCounted(pool, 50, { keys: 500, chunk: 50, offset: appended });
        appended += 50;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
    // A reader polling throughout: the total never goes backwards and the table is never missing.
    let reading = true;
    const observed: number[] = [];
    const readerErrors: unknown[] = [];
    const reader = (async () => {
      while (reading) {
        try {
          const { rows } = await pool.query(
            'select coalesce(sum(count), 0)::bigint::text as total from tributary_views.counts',
          );
          observed.push(Number(rows[0].total));
        } catch (error) {
          readerErrors.push(error);
        }
      }
    })();

    const progress: Progress[] = [];
    const result = await rebuildProjection({
      pool,
      projection: v2,
      batchSize: 500,
      onProgress: (p) => progress.push(p),
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    reading = false;
    writing = false;
    await Promise.all([reader, writer]);
    await workers.stop();

    expect(readerErrors).toEqual([]);
    expect(observed.length).toBeGreaterThan(10);
    for (let i = 1; i < observed.length; i++) expect(observed[i]!).toBeGreaterThanOrEqual(observed[i - 1]!);
    expect(result.events).toBeGreaterThanOrEqual(18_000);
    expect(progress.at(-1)!.done).toBeGreaterThan(0);
    expect(progress.every((p) => p.done <= p.total)).toBe(true);

    const { rows } = await pool.query(
      `select version, generation::int from tributary.projections where name = 'counting'`,
    );
    expect(rows[0]).toMatchObject({ version: 2, generation: 1 });
    const resets = await pool.query(`select view, op from tributary.view_changes where op = 'reset'`);
    expect(resets.rows).toEqual([{ view: 'counts', op: 'reset' }]);
    expect((await pool.query('select count(*)::int as n from tributary.projection_rebuilds')).rows[0].n).toBe(
      0,
    );
    expect(
      (await pool.query(`select to_regclass('tributary_views_rebuild.counts') as t`)).rows[0].t,
    ).toBeNull();

    // v2 workers take it from the swap position; the result equals an independent fold and a fresh run.
    const v2workers = startWorkers({ url: db.url, projections: [v2] });
    await waitFor(() => caughtUp('counting'), { what: 'v2 to catch up', timeoutMs: 60_000 });
    await v2workers.stop();
    const fold = await foldInSql(pool);
    expect(fold.actual).toEqual(fold.expected);

    const fresh = countingProjection({ name: 'counting_fresh', version: 1 });
    const freshWorkers = startWorkers({ url: db.url, projections: [fresh], viewSchema: 'fresh_views' });
    await waitFor(() => caughtUp('counting_fresh'), { what: 'the fresh run', timeoutMs: 60_000 });
    await freshWorkers.stop();
    expect((await foldInSql(pool, 'fresh_views')).actual).toEqual(fold.actual);
  });

  it('continues an interrupted rebuild where it stopped', async () => {
    const v3 = countingProjection({ version: 3 });
    const abort = new AbortController();
    let seenProgress = 0;
    const interrupted = await rebuildProjection({
      pool,
      projection: v3,
      batchSize: 200,
      signal: abort.signal,
      onProgress: (p) => {
        seenProgress = p.done;
        if (p.done >= 2000) abort.abort();
      },
    }).catch((e: unknown) => e);
    expect(interrupted).toMatchObject({ code: 'PROJECTION_FAILED' });
    expect(seenProgress).toBeGreaterThanOrEqual(2000);
    const { rows } = await pool.query(
      `select done::int from tributary.projection_rebuilds where name = 'counting'`,
    );
    expect(rows[0].done).toBeGreaterThanOrEqual(2000);

    const progress: Progress[] = [];
    const result = await rebuildProjection({ pool, projection: v3, onProgress: (p) => progress.push(p) });
    expect(result.resumed).toBe(true);
    expect(progress[0]!.done).toBeGreaterThanOrEqual(2000);
    const fold = await foldInSql(pool);
    expect(fold.actual).toEqual(fold.expected);
  });

  it('rebuilds in place', async () => {
    const v4 = countingProjection({ version: 4 });
    const result = await rebuildProjection({ pool, projection: v4, inPlace: true });
    expect(result.events).toBeGreaterThan(18_000);
    const fold = await foldInSql(pool);
    expect(fold.actual).toEqual(fold.expected);
  });
});

describe('replay', () => {
  it('re-delivers events from a position up to the checkpoint to the live views', async () => {
    const v4 = countingProjection({ version: 4 });
    const { rows } = await pool.query<{ position: string }>(
      `select position from tributary.projections where name = 'counting'`,
    );
    const before = await foldInSql(pool);
    // Replaying into a non-idempotent counter double counts: that makes the re-delivery visible.
    const all = await pool.query(`select count(*)::int as n from tributary.events where type = 'Counted'`);
    const from = (
      await pool.query<{ xid: string; gp: string }>(
        `select transaction_id::text as xid, global_position::text as gp from tributary.events
         order by transaction_id, global_position offset 100 limit 1`,
      )
    ).rows[0]!;
    const fromPosition = `${BigInt(from.xid).toString(16).padStart(16, '0')}-${BigInt(from.gp).toString(16).padStart(16, '0')}`;
    // The counting projection does not declare replay: 'idempotent': refused, nothing written.
    const refused = await replayProjection({ pool, projection: v4, from: fromPosition }).catch((e) => e);
    expect(refused).toBeInstanceOf(ReplayNotSafeError);
    expect(refused.hint).toMatch(/tributary rebuild counting/);
    expect(await foldInSql(pool)).toEqual(before);
    const progress: Progress[] = [];
    const result = await replayProjection({
      pool,
      projection: v4,
      from: fromPosition,
      force: true,
      onProgress: (p) => progress.push(p),
    });
    const counted = await pool.query(
      `select count(*)::int as n from tributary.events where type = 'Counted' and (transaction_id, global_position) > ($1::xid8, $2::bigint)`,
      [from.xid, from.gp],
    );
    expect(result.events).toBe(counted.rows[0].n);
    expect(progress.at(-1)).toMatchObject({ done: result.events, total: result.events });
    const after = await pool.query(`select sum(count)::int as n from tributary_views.counts`);
    expect(after.rows[0].n).toBe(all.rows[0].n + result.events);
    expect(before.actual.length).toBeGreaterThan(0);
    // The checkpoint did not move.
    const { rows: now } = await pool.query(
      `select position from tributary.projections where name = 'counting'`,
    );
    expect(now[0].position).toBe(rows[0]!.position);
  });

  it('takes the projection over from its running worker at once, not after the lease timeout', async () => {
    const v4 = countingProjection({ version: 4 });
    // A long lease: waiting for it to expire would take 30 s.
    const workers = startWorkers({
      url: db.url,
      projections: [v4],
      leaseTimeoutMs: 30_000,
      workerId: 'w-replay',
    });
    try {
      await waitFor(
        async () =>
          (
            await pool.query(
              `select 1 from tributary.projections where name = 'counting' and lease_owner = 'w-replay'`,
            )
          ).rowCount === 1,
        { what: 'the worker to hold the lease' },
      );
      const started = Date.now();
      // From the head: nothing is re-delivered, which is all this test needs (the lease).
      const result = await replayProjection({
        pool,
        projection: v4,
        from: await committedHead(pool),
        leaseTimeoutMs: 30_000,
        force: true,
      });
      expect(Date.now() - started).toBeLessThan(5000);
      expect(result.tookOverFrom).toBe('w-replay');
      // The worker takes its projection back once the replay released it.
      await waitFor(
        async () =>
          (
            await pool.query(
              `select 1 from tributary.projections where name = 'counting' and lease_owner = 'w-replay'`,
            )
          ).rowCount === 1,
        { what: 'the worker to take the lease back', timeoutMs: 30_000 },
      );
    } finally {
      await workers.stop();
    }
  });
});
