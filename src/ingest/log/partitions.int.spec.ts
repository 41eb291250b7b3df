import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.js';
import { createPool, type Pool } from '../../db/index.js';
import { type Logger, silentLogger } from '../../logger.js';
import {
  appendToStream,
  ensurePartitionIndex,
  partitionBucket,
  partitionIndexState,
  partitionOf,
  readAll,
  readPartition,
  START,
} from './index.js';

let db: TestDatabase;
let pool: Pool;

beforeAll(async () => {
  db = await createTestDatabase();
  pool = createPool(db.url, { max: 4, applicationName: 'log-partitions' });
});

afterAll(async () => {
  await pool.end();
  await db.drop();
});

describe('log partitions', () => {
  it('computes the same bucket in the process as tributary.partition_bucket in SQL', async () => {
    const keys = [
      '',
      'a',
      'order-1',
      'ünïcødé-стрим-流',
      'emoji-🙂',
      ...Array.from({ length: 500 }, (_, i) => `stream-${i}-${(i * 7919).toString(36)}`),
    ];
    const { rows } = await pool.query<{ key: string; bucket: number }>(
      'select k as key, tributary.partition_bucket(k) as bucket from unnest($1::text[]) k',
      [keys],
    );
    expect(rows.map((row) => [row.key, row.bucket])).toEqual(keys.map((key) => [key, partitionBucket(key)]));
    // Every bucket is used: the hash spreads keys.
    expect(new Set(rows.map((row) => row.bucket)).size).toBe(64);
  });

  it('reads each partition’s slice in position order; together they are the log', async () => {
    const streams = Array.from({ length: 40 }, (_, i) => `part-${i}`);
    for (let round = 0; round < 5; round++) {
      for (const stream of streams) await appendToStream(pool, stream, [{ type: 't', data: { round } }]);
    }
    const all = (await readAll(pool, START, { limit: 10_000 })).events;
    for (const count of [1, 2, 3, 8]) {
      const union: string[] = [];
      for (let index = 0; index < count; index++) {
        const slice: string[] = [];
        let from = START;
        for (;;) {
          // Small pages: resuming from `next` must neither skip nor repeat.
          const page = await readPartition(pool, from, { limit: 7, partition: { index, count } });
          for (const event of page.events) {
            expect(partitionOf(event.streamId, count)).toBe(index);
            slice.push(event.position);
          }
          if (page.events.length < 7) break;
          from = page.next;
        }
        expect(slice).toEqual([...slice].sort());
        union.push(...slice);
      }
      expect(union.sort()).toEqual(all.map((event) => event.position));
    }
  });

  it('builds the partition index on first use, once, while appends go on; an invalid leftover is rebuilt', async () => {
    // Migrations leave it out: a log without partitioned projections does not pay for it.
    expect(await partitionIndexState(pool)).toBe('missing');
    // A concurrent build that died leaves an invalid index under the name: a unique index on
    // stream ids fails, since a stream has many events.
    await appendToStream(pool, 'leftover', [
      { type: 't', data: {} },
      { type: 't', data: {} },
    ]);
    await expect(
      pool.query('create unique index concurrently events_partition_idx on tributary.events (stream_id)'),
    ).rejects.toThrow(/could not create unique index/);
    expect(await partitionIndexState(pool)).toBe('invalid');

    const other = createPool(db.url, { max: 2, applicationName: 'log-partitions-other' });
    const logged: string[] = [];
    const logger = {
      ...silentLogger,
      info: (message: string) => logged.push(message),
      warn: (message: string) => logged.push(message),
      child: () => logger,
    } as unknown as Logger;
    try {
      // Two processes at once, and an append meanwhile: one builds, the other waits for it.
      const [first, second] = await Promise.all([
        ensurePartitionIndex(pool, { logger, pollMs: 20 }),
        ensurePartitionIndex(other, { logger, pollMs: 20 }),
        appendToStream(other, 'during-build', [{ type: 't', data: {} }]),
      ]);
      expect([first, second]).toEqual([true, true]);
    } finally {
      await other.end();
    }
    expect(await partitionIndexState(pool)).toBe('valid');
    const { rows } = await pool.query<{ definition: string }>(
      `select pg_get_indexdef('tributary.events_partition_idx'::regclass) as definition`,
    );
    expect(rows[0]!.definition).toMatch(/partition_bucket\(stream_id\), transaction_id, global_position/);
    expect(logged.filter((message) => message.startsWith('dropping an invalid'))).toHaveLength(1);
    expect(logged.filter((message) => message === 'log partition index built')).toHaveLength(1);
    // Built once: a later call finds it.
    expect(await ensurePartitionIndex(pool)).toBe(true);
  });

  it('reads a partition through the bucket index, merged in position order, without a sort', async () => {
    await ensurePartitionIndex(pool);
    // A log large enough that the planner's choice is the one a real log gets.
    await pool.query(
      `insert into tributary.events (stream_id, stream_position, event_id, type, data, metadata, event_time)
       select 'bulk-' || (i % 5000), i / 5000 + 1, 'e' || i, 't', '{}', '{}', now()
       from generate_series(0, 199999) i`,
    );
    await pool.query('analyze tributary.events');
    // The statement readPartition sends, explained with its parameters.
    let statement: { text: string; values: unknown[] } | undefined;
    const recorder = {
      query: async (config: { text: string; values: unknown[] }) => {
        statement = { text: config.text, values: config.values };
        return { rows: [{ bound: '1', held: false, xid: null }], rowCount: 1 };
      },
    } as unknown as Pool;
    await readPartition(recorder, START, { limit: 1000, partition: { index: 1, count: 8 } });
    const { rows } = await pool.query<{ 'QUERY PLAN': string }>(
      `explain ${statement!.text}`,
      statement!.values,
    );
    // The statement is prepared once per connection: its generic plan must be as good.
    const client = await pool.connect();
    try {
      await client.query('set plan_cache_mode = force_generic_plan');
      await client.query(`prepare page as ${statement!.text}`);
      const literals = statement!.values.map((value) => `'${String(value)}'`).join(', ');
      const generic = await client.query<{ 'QUERY PLAN': string }>(`explain execute page(${literals})`);
      await client.query('deallocate page; reset plan_cache_mode');
      for (const explained of [rows, generic.rows]) {
        const plan = explained.map((row) => row['QUERY PLAN']).join('\n');
        expect(plan).toMatch(/Merge Append/);
        expect(plan).toMatch(/events_partition_idx/);
        expect(plan).not.toMatch(/-> {2}Sort\b/);
      }
    } finally {
      client.release();
    }
  });
});
