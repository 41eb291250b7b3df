import type pg from 'pg';
import { defineProjection, defineView } from '../../src/projections/index.js';

/** Per-key count and sum of `Counted` events: the projection of the crash, worker and rebuild tests. */
export const counts = defineView({
  name: 'counts',
  columns: {
    key: { type: 'text' },
    count: { type: 'bigint', nullable: false },
    sum: { type: 'bigint', nullable: false },
    last_position: { type: 'text', nullable: false },
  },
  primaryKey: ['key'],
});

/** One row per applied event with how many times it was applied: any value above 1 is a double application. */
export const applied = defineView({
  name: 'applied',
  columns: { position: { type: 'text' }, times: { type: 'integer', nullable: false } },
  primaryKey: ['position'],
});

export function countingProjection(options: { name?: string; version?: number; track?: boolean } = {}) {
  const views = options.track ? [counts, applied] : [counts];
  return defineProjection({
    name: options.name ?? 'counting',
    version: options.version ?? 1,
    views,
    filter: { types: ['Counted'] },
    async handle(event, ctx) {
      const key = String(event.data.key);
      const row = await ctx.get(counts, { key });
      await ctx.upsert(counts, {
        key,
        count: String(BigInt(row?.count ?? '0') + 1n),
        sum: String(BigInt(row?.sum ?? '0') + BigInt(Number(event.data.n))),
        last_position: event.position,
      });
      if (options.track) {
        const seen = await ctx.get(applied, { position: event.position });
        await ctx.upsert(applied, { position: event.position, times: (seen?.times ?? 0) + 1 });
      }
    },
  });
}

/** Appends `total` Counted events over `keys` keys in appends of `chunk`, plus noise the filter drops. */
export async function appendCounted(
  pool: pg.Pool,
  total: number,
  { keys = 100, chunk = 500, offset = 0 }: { keys?: number; chunk?: number; offset?: number } = {},
) {
  for (let start = 0; start < total; start += chunk) {
    const size = Math.min(chunk, total - start);
    const ids = Array.from({ length: size }, (_, i) => offset + start + i);
    await pool.query(
      `select tributary.append_events($1, 'any', $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], false)`,
      [
        `counter-${(offset + start) % 7}`,
        ids.map((i) => `e-${i}`),
        ids.map((i) => (i % 10 === 9 ? 'Noise' : 'Counted')),
        ids.map((i) => JSON.stringify({ key: `k${i % keys}`, n: i % 97 })),
        ids.map(() => '{}'),
        ids.map(() => null),
      ],
    );
  }
}

/** The same view computed independently, in plain SQL over the log. */
export async function foldInSql(pool: pg.Pool, schema = 'tributary_views') {
  const expected = await pool.query(
    `select data->>'key' as key, count(*)::text as count, sum((data->>'n')::bigint)::text as sum
     from tributary.events where type = 'Counted' group by 1 order by 1`,
  );
  const actual = await pool.query(`select key, count::text, sum::text from ${schema}.counts order by key`);
  return { expected: expected.rows, actual: actual.rows };
}
