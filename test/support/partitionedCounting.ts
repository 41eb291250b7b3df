import type pg from 'pg';
import { defineProjection, defineView } from '../../src/projections/index.js';
import { applied } from './counting.js';

/** Per-stream count and sum of `Counted` events: keyed by the stream id, the default partition key. */
export const streamCounts = defineView({
  name: 'stream_counts',
  columns: {
    stream_id: { type: 'text' },
    count: { type: 'bigint', nullable: false },
    sum: { type: 'bigint', nullable: false },
    last_position: { type: 'text', nullable: false },
  },
  primaryKey: ['stream_id'],
});

/**
 * The partitioned projection of the scale-out tests: every row it writes belongs to one stream
 * (a stream's counts) or one event (`applied`, which counts applications of each event).
 */
export function streamCountingProjection(
  options: { name?: string; partitions?: number; version?: number; byKey?: boolean } = {},
) {
  return defineProjection({
    name: options.name ?? 'stream_counting',
    version: options.version ?? 1,
    views: [streamCounts, applied],
    filter: { types: ['Counted'] },
    ...(options.partitions !== undefined ? { partitions: options.partitions } : {}),
    // The same key as the default, through a function: the full-read path.
    ...(options.byKey ? { partitionBy: (event: { streamId: string }) => event.streamId } : {}),
    async handle(event, ctx) {
      const row = await ctx.get(streamCounts, { stream_id: event.streamId });
      await ctx.upsert(streamCounts, {
        stream_id: event.streamId,
        count: String(BigInt(row?.count ?? '0') + 1n),
        sum: String(BigInt(row?.sum ?? '0') + BigInt(Number(event.data.n))),
        last_position: event.position,
      });
      const seen = await ctx.get(applied, { position: event.position });
      await ctx.upsert(applied, { position: event.position, times: (seen?.times ?? 0) + 1 });
    },
  });
}

/** Appends `total` events (one in ten `Noise`) to streams `acct-0` … `acct-<streams-1>`, `perAppend` at a time. */
export async function appendToAccounts(
  pool: pg.Pool,
  total: number,
  {
    streams = 200,
    perAppend = 20,
    offset = 0,
  }: { streams?: number; perAppend?: number; offset?: number } = {},
) {
  for (let start = 0; start < total; start += perAppend) {
    const size = Math.min(perAppend, total - start);
    const ids = Array.from({ length: size }, (_, i) => offset + start + i);
    await pool.query(
      `select tributary.append_events($1, 'any', $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], false)`,
      [
        `acct-${Math.floor((offset + start) / perAppend) % streams}`,
        ids.map((i) => `e-${i}`),
        ids.map((i) => (i % 10 === 9 ? 'Noise' : 'Counted')),
        ids.map((i) => JSON.stringify({ n: i % 97 })),
        ids.map(() => '{}'),
        ids.map(() => null),
      ],
    );
  }
}

/** The view computed in plain SQL over the log. */
export async function foldStreamsInSql(pool: pg.Pool, schema = 'tributary_views') {
  const expected = await pool.query(
    `select stream_id, count(*)::text as count, sum((data->>'n')::bigint)::text as sum
     from tributary.events where type = 'Counted' group by 1 order by 1`,
  );
  const actual = await pool.query(
    `select stream_id, count::text, sum::text from ${schema}.stream_counts order by stream_id`,
  );
  return { expected: expected.rows, actual: actual.rows };
}
