import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { committedHead } from '../../test/support/committedHead.js';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.js';
import {
  appendToAccounts,
  foldStreamsInSql,
  streamCountingProjection,
} from '../../test/support/partitionedCounting.js';
import { waitFor } from '../../test/support/waitFor.js';
import { ValidationError } from '../errors.js';
import { partitionIndexState, partitionOf } from '../ingest/index.js';
import { given } from '../testing/index.js';
import {
  defineProjection,
  defineView,
  ensureViewTables,
  getProjectionStatuses,
  NotPartitionableError,
  rebuildProjection,
  replayProjection,
  startWorkers,
} from './index.js';

let db: TestDatabase;
let pool: pg.Pool;

beforeAll(async () => {
  db = await createTestDatabase();
  pool = new pg.Pool({ connectionString: db.url, max: 8 });
  pool.on('error', () => {});
});
afterAll(async () => {
  await pool.end();
  await db.drop();
});

/** Every partition of `name` (or the projection, unpartitioned) has applied everything committed. */
const caughtUp = async (name: string) => {
  const head = await committedHead(pool);
  const { rows } = await pool.query<{ position: string }>(
    `select coalesce((select min(q.position) from tributary.projection_partitions q where q.name = p.name and p.partitions > 1),
                     p.position) as position
     from tributary.projections p where p.name = $1`,
    [name],
  );
  return rows[0] !== undefined && rows[0].position >= head;
};

const view = (schema: string) =>
  pool
    .query(`select stream_id, count::text, sum::text from ${schema}.stream_counts order by stream_id`)
    .then((result) => result.rows);

describe('defineProjection with partitions', () => {
  const counts = defineView({ name: 'pcounts', columns: { k: { type: 'text' } }, primaryKey: ['k'] });
  const base = { name: 'p', version: 1, views: [counts] };

  it('refuses definitions that cannot be split by key, saying why and what to do', () => {
    const batch = () => defineProjection({ ...base, partitions: 4, handleBatch: async () => {} });
    expect(batch).toThrow(NotPartitionableError);
    expect(batch).toThrow(/handleBatch/);
    expect(() =>
      defineProjection({ ...base, partitions: 4, handle: () => {}, onTimer: async () => undefined }),
    ).toThrow(/onTimer/);
    expect(() =>
      defineProjection({
        ...base,
        partitions: 2,
        sql: { view: counts, columns: { k: 'e.stream_id' } },
      }),
    ).toThrow(NotPartitionableError);
    for (const partitions of [0, 65, 2.5, Number.NaN]) {
      expect(() => defineProjection({ ...base, partitions, handle: () => {} })).toThrow(ValidationError);
    }
    expect(() => defineProjection({ ...base, partitionBy: (e) => e.streamId, handle: () => {} })).toThrow(
      /partitionBy but no partitions/,
    );
    // One partition is no partitioning: anything goes, as before.
    expect(defineProjection({ ...base, partitions: 1, handleBatch: async () => {} }).partitions).toBe(1);
    expect(defineProjection({ ...base, partitions: 64, handle: () => {} }).partitions).toBe(64);
  });
});

describe('partitioned projections in one process', () => {
  it('apply each event once by stream id; status shows every partition; the view equals the fold', async () => {
    await appendToAccounts(pool, 3000, { streams: 50 });
    // Appends pay for the partition index only once a partitioned projection has run.
    expect(await partitionIndexState(pool)).toBe('missing');
    const projection = streamCountingProjection({ partitions: 4 });
    const workers = startWorkers({ url: db.url, projections: [projection], leaseTimeoutMs: 2000 });
    try {
      await waitFor(() => caughtUp('stream_counting'), { what: 'catch up', timeoutMs: 60_000 });
      expect(await partitionIndexState(pool)).toBe('valid');
      // Each partition applied only the events of its own streams.
      const { rows } = await pool.query<{ partition: number; events_processed: string }>(
        `select partition, events_processed::text from tributary.projection_partitions
         where name = 'stream_counting' order by partition`,
      );
      const { rows: byStream } = await pool.query<{ stream_id: string; n: string }>(
        `select stream_id, count(*)::text as n from tributary.events where type = 'Counted' group by 1`,
      );
      const expected = [0, 0, 0, 0];
      for (const row of byStream) expected[partitionOf(row.stream_id, 4)]! += Number(row.n);
      expect(rows.map((row) => Number(row.events_processed))).toEqual(expected);
      const fold = await foldStreamsInSql(pool);
      expect(fold.actual).toEqual(fold.expected);

      const [status] = await waitFor(async () => {
        const statuses = await getProjectionStatuses(pool, [projection]);
        return statuses[0]?.partitions?.every((p) => p.leaseOwner === workers.workerId)
          ? statuses
          : undefined;
      });
      expect(status!.partitionCount).toBe(4);
      expect(status!.needsRebuild).toBe(false);
      expect(status!.partitions!.map((p) => p.partition)).toEqual([0, 1, 2, 3]);
      expect(status!.partitions!.every((p) => p.lagEvents === 0 && !p.lagEstimated)).toBe(true);
      expect(status!.eventsProcessed).toBe(expected.reduce((a, b) => a + b));
      expect(status!.position).toBe(
        status!.partitions!.map((p) => p.position).reduce((a, b) => (a < b ? a : b)),
      );
      expect(workers.status()[0]!.partitions!.map((p) => p.partition)).toEqual([0, 1, 2, 3]);

      // Lag per partition, counted over that partition's events only.
      await workers.stop();
      await appendToAccounts(pool, 400, { streams: 50, offset: 500_000 });
      const [behind] = await getProjectionStatuses(pool, [projection]);
      const { rows: fresh } = await pool.query<{ stream_id: string }>(
        `select stream_id from tributary.events where event_id like 'e-5%' and type = 'Counted' and global_position > (
           select max(global_position) - 400 from tributary.events)`,
      );
      const lag = [0, 0, 0, 0];
      for (const row of fresh) lag[partitionOf(row.stream_id, 4)]! += 1;
      expect(behind!.partitions!.map((p) => p.lagEvents)).toEqual(lag);
      expect(behind!.lagEvents).toBe(fresh.length);
    } finally {
      await workers.stop();
    }
  });

  it('a custom partitionBy reads the whole log and keeps its share: the same view', async () => {
    const projection = streamCountingProjection({ name: 'by_key', partitions: 3, byKey: true });
    const workers = startWorkers({
      url: db.url,
      projections: [projection],
      viewSchema: 'by_key_views',
      leaseTimeoutMs: 2000,
    });
    try {
      await waitFor(() => caughtUp('by_key'), { what: 'catch up', timeoutMs: 60_000 });
      expect(await view('by_key_views')).toEqual((await foldStreamsInSql(pool)).expected);
      const { rows } = await pool.query(
        'select count(*)::int as n from by_key_views.applied where times <> 1',
      );
      expect(rows[0].n).toBe(0);
      const [status] = await getProjectionStatuses(pool, [projection]);
      expect(status!.partitions!.every((p) => p.lagEstimated)).toBe(true);
    } finally {
      await workers.stop();
    }
  });

  it('refuses keyed state in a partitioned handler, halting with the typed error', async () => {
    const state = defineView({ name: 'state_user', columns: { k: { type: 'text' } }, primaryKey: ['k'] });
    const projection = defineProjection({
      name: 'state_user',
      version: 1,
      views: [state],
      partitions: 2,
      retry: { maxAttempts: 1 },
      async handle(event, ctx) {
        await ctx.state.set('seen', event.streamId, true);
      },
    });
    // The testing kit refuses it as the runner does.
    const error = await given([{ type: 'Seen', streamId: 's-1' }])
      .when(projection, { url: db.url })
      .rows(state)
      .catch((e: unknown) => e);
    expect(String((error as Error).message)).toMatch(/cannot be partitioned: its handler uses keyed state/);
    const workers = startWorkers({ url: db.url, projections: [projection], leaseTimeoutMs: 2000 });
    try {
      const [status] = await waitFor(
        async () => {
          const statuses = await getProjectionStatuses(pool, [projection]);
          return statuses[0]?.state === 'failed' ? statuses : undefined;
        },
        { what: 'the projection to halt', timeoutMs: 30_000 },
      );
      expect(status!.lastError?.message).toMatch(/cannot be partitioned: its handler uses keyed state/);
    } finally {
      await workers.stop();
    }
  });

  it('changing the number of partitions needs a rebuild, which builds blue/green and swaps every partition in', async () => {
    const four = streamCountingProjection({ partitions: 4 });
    const eight = streamCountingProjection({ partitions: 8 });
    expect((await ensureViewTables(pool, [eight])).get('stream_counting')).toBe('needs-rebuild');
    const [before] = await getProjectionStatuses(pool, [eight]);
    expect(before!.needsRebuild).toBe(true);
    expect(before!.partitionCount).toBe(4);
    expect(before!.configuredPartitions).toBe(8);

    // The old definition keeps serving while the new one is built.
    const old = startWorkers({ url: db.url, projections: [four], leaseTimeoutMs: 2000 });
    const fresh = startWorkers({ url: db.url, projections: [eight], leaseTimeoutMs: 2000 });
    try {
      expect(fresh.status()[0]!.state).not.toBe('running');
      await rebuildProjection({ pool, projection: eight, batchSize: 500 });
      const [after] = await getProjectionStatuses(pool, [eight]);
      expect(after!.partitionCount).toBe(8);
      expect(after!.needsRebuild).toBe(false);
      expect(after!.partitions).toHaveLength(8);
      // The old process lets go; the new one takes all eight partitions.
      await appendToAccounts(pool, 500, { streams: 50, offset: 600_000 });
      await waitFor(
        async () => {
          const { rows } = await pool.query(
            `select count(*)::int as n from tributary.projection_partitions
             where name = 'stream_counting' and lease_owner = $1 and lease_expires_at > now()`,
            [fresh.workerId],
          );
          return rows[0].n === 8;
        },
        { what: 'the new process to hold every partition', timeoutMs: 30_000 },
      );
      await waitFor(() => caughtUp('stream_counting'), { what: 'catch up', timeoutMs: 60_000 });
      const fold = await foldStreamsInSql(pool);
      expect(fold.actual).toEqual(fold.expected);
      const { rows } = await pool.query(
        'select count(*)::int as n from tributary_views.applied where times <> 1',
      );
      expect(rows[0].n).toBe(0);
    } finally {
      await old.stop();
      await fresh.stop();
    }
  });

  it('replays each partition up to its own checkpoint, taking every partition over', async () => {
    const projection = defineProjection({
      ...streamCountingProjection({ partitions: 8 }),
      replay: 'idempotent',
    });
    const before = await pool.query('select position, times from tributary_views.applied order by position');
    const result = await replayProjection({
      pool,
      projection,
      from: '0000000000000000-0000000000000000',
    });
    // Every event applied so far came again once: applied counts go up by one each.
    const after = await pool.query('select position, times from tributary_views.applied order by position');
    expect(after.rows).toEqual(before.rows.map((row) => ({ ...row, times: row.times + 1 })));
    expect(result.events).toBe(before.rows.length);
    const { rows: free } = await pool.query(
      `select count(*)::int as n from tributary.projection_partitions where name = 'stream_counting' and lease_owner like 'replay:%'`,
    );
    expect(free[0].n).toBe(0);
  });
});
