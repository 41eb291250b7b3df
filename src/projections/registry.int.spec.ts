import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.js';
import { waitFor } from '../../test/support/waitFor.js';
import { createLogger } from '../logger.js';
import { defineProjection, defineView, ensureViewTables, startWorkers } from './index.js';

let db: TestDatabase;
let pool: pg.Pool;

beforeAll(async () => {
  db = await createTestDatabase();
  pool = new pg.Pool({ connectionString: db.url, max: 12 });
});
afterAll(async () => {
  await pool.end();
  await db.drop();
});

function projectionWithView(name: string) {
  const view = defineView({
    name,
    columns: { id: { type: 'text' }, n: { type: 'integer' } },
    primaryKey: ['id'],
  });
  return defineProjection({
    name,
    version: 1,
    views: [view],
    filter: { types: ['Counted'] },
    async handle(event, ctx) {
      await ctx.upsert(view, { id: String(event.data.id), n: 1 });
    },
  });
}

describe('first start', () => {
  it('registers projections at once into a view schema that does not exist yet, without a failure', async () => {
    // Every round starts from a schema nobody created: the window the race needs.
    for (let round = 0; round < 5; round++) {
      const schema = `first_start_${round}`;
      const projections = Array.from({ length: 8 }, (_, i) => projectionWithView(`r${round}_p${i}`));
      const results = await Promise.allSettled(
        projections.map((projection) => ensureViewTables(pool, [projection], { schema })),
      );
      const failures = results.flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : []));
      expect(failures).toEqual([]);
      const { rows } = await pool.query<{ n: string }>(
        'select count(*) as n from pg_tables where schemaname = $1',
        [schema],
      );
      expect(Number(rows[0]!.n)).toBe(8);
    }
  });

  it('two worker processes starting two projections on a fresh log database log no error and run both', async () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'warn', format: 'json', write: (line) => lines.push(line) });
    const projections = [projectionWithView('twin_a'), projectionWithView('twin_b')];
    const options = { url: db.url, projections, logger, viewSchema: 'twin_views', leaseTimeoutMs: 2000 };
    const first = startWorkers(options);
    const second = startWorkers(options);
    try {
      await waitFor(
        () => {
          const running = [...first.status(), ...second.status()].filter((s) => s.state === 'running');
          return new Set(running.map((s) => s.projection)).size === 2;
        },
        { timeoutMs: 20_000, what: 'both projections running' },
      );
      expect(lines.filter((line) => /duplicate key|pg_namespace|worker error/.test(line))).toEqual([]);
    } finally {
      await first.stop();
      await second.stop();
    }
  });
});
