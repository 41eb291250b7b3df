import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { committedHead } from '../../test/support/committedHead.js';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.js';
import { waitFor } from '../../test/support/waitFor.js';
import { ValidationError } from '../errors.js';
import { createPostgresEventStore, type EventStore, START } from '../ingest/index.js';
import { readChanges, type ViewChange } from './changelog/index.js';
import {
  canonicalSelectList,
  defineProjection,
  defineView,
  getProjectionStatuses,
  type Projection,
  rebuildProjection,
  replayProjection,
  startWorkers,
} from './index.js';

let db: TestDatabase;
let pool: pg.Pool;
let store: EventStore;

beforeAll(async () => {
  db = await createTestDatabase();
  pool = new pg.Pool({ connectionString: db.url, max: 6 });
  store = createPostgresEventStore({ connectionString: db.url });
});
afterAll(async () => {
  await store.close();
  await pool.end();
  await db.drop();
});

/** The same view twice: one folded by a handler, one by SQL. */
const ordersView = (name: string) =>
  defineView({
    name,
    columns: {
      id: { type: 'text' },
      total: { type: 'numeric', nullable: false },
      customer: { type: 'text' },
      placed_at: { type: 'timestamptz' },
      items: { type: 'jsonb' },
      note: { type: 'text' },
    },
    primaryKey: ['id'],
  });
const handled = ordersView('orders_handled');
const folded = ordersView('orders_sql');
const filter = { types: ['OrderPlaced', 'OrderRevised'] };

const byHandler = defineProjection({
  name: 'orders_handled',
  version: 1,
  views: [handled],
  filter,
  async handle(event, ctx) {
    if (Number(event.data.total) < 0) return;
    await ctx.upsert(handled, {
      id: String(event.data.id),
      total: String(event.data.total),
      customer: String(event.data.customer),
      placed_at: event.eventTime,
      items: event.data.items as never,
      note: null,
    });
  },
});
const bySql = defineProjection({
  name: 'orders_sql',
  version: 1,
  views: [folded],
  filter,
  sql: {
    view: folded,
    columns: {
      id: "e.data->>'id'",
      total: "e.data->>'total'",
      customer: "e.data->>'customer'",
      placed_at: 'e.event_time',
      items: "e.data->'items'",
    },
    where: "(e.data->>'total')::numeric >= 0",
  },
});

const rows = async (view: string) =>
  (await pool.query(`select to_jsonb(v) as row from tributary_views.${view} v order by id`)).rows.map(
    (r) => r.row,
  );

async function changesOf(view: string): Promise<ViewChange[]> {
  const changes: ViewChange[] = [];
  let next = START;
  for (;;) {
    const read = await readChanges(pool, next, { view, limit: 37 });
    changes.push(...read.changes);
    if (read.next === next) return changes;
    next = read.next;
  }
}

async function caughtUp(projections: readonly Projection[]): Promise<void> {
  const head = await committedHead(pool);
  await waitFor(
    async () =>
      (
        await pool.query(
          `select count(*)::int as n from tributary.projections where name = any($1) and position >= $2`,
          [projections.map((p) => p.name), head],
        )
      ).rows[0].n === projections.length,
    { what: 'the projections to catch up', timeoutMs: 30_000 },
  ).catch(async (error: unknown) => {
    // Say why: a halted projection shows its error.
    const statuses = await getProjectionStatuses(pool, projections);
    throw new Error(
      `${String(error)}: ${JSON.stringify(statuses.map((s) => [s.name, s.state, s.lastError]))}`,
    );
  });
}

describe('SQL projections', () => {
  it('fold the log under concurrent appends into the same rows and changes as a handler', async () => {
    const workers = startWorkers({
      url: db.url,
      projections: [byHandler, bySql],
      pollIntervalMs: 20,
      batchSize: 40,
    });
    try {
      // Four writers, 60 orders revised again and again (within and across batches), some of
      // them with negative totals the `where` leaves out, and other event types in between.
      await Promise.all(
        [0, 1, 2, 3].map(async (writer) => {
          for (let round = 0; round < 25; round++) {
            const events = Array.from({ length: 8 }, (_, i) => {
              const id = `o${(writer * 13 + round * 7 + i) % 60}`;
              const cents = (writer * 1000 + round * 10 + i) * (i === 3 ? -1 : 1);
              return {
                type: round === 0 ? 'OrderPlaced' : i % 4 === 1 ? 'OrderNoted' : 'OrderRevised',
                data: {
                  id,
                  total: `${Math.trunc(cents / 100)}.${String(Math.abs(cents) % 100).padStart(2, '0')}`,
                  customer: `c${writer}`,
                  items: { skus: [`s${i}`, 1e21, 0.1], qty: 12345678901234567890n.toString() },
                },
                eventTime: new Date(Date.UTC(2026, 0, 1, 12, round, i, writer)),
              };
            });
            await store.append(`orders-${writer}`, events);
          }
        }),
      );
      await caughtUp([byHandler, bySql]);
    } finally {
      await workers.stop();
    }

    const expected = await rows(handled.name);
    expect(expected.length).toBe(60);
    expect(await rows(folded.name)).toEqual(expected);

    // The changelog: every key's changes chain (each change's `old` is the row before it) and
    // end at the row the view holds, with the same canonical JSON as the handler's changelog.
    const changes = await changesOf(folded.name);
    const handlerChanges = await changesOf(handled.name);
    const lastOf = (list: ViewChange[]) => new Map(list.map((change) => [change.key.id, change.row]));
    expect(lastOf(changes)).toEqual(lastOf(handlerChanges));
    const current = new Map<unknown, unknown>();
    for (const change of changes) {
      expect(change.op).toBe('upsert');
      expect(change.old).toEqual(current.get(change.key.id) ?? null);
      current.set(change.key.id, change.row);
    }
    expect(current.size).toBe(60);
    const cursors = changes.map((change) => change.cursor);
    expect([...cursors].sort()).toEqual(cursors);
    // One packed changelog row per batch that wrote rows, not one per row.
    const { rows: logged } = await pool.query(
      `select count(*)::int as n from tributary.view_changes where view = $1`,
      [folded.name],
    );
    expect(logged[0].n).toBeLessThan(changes.length);
  });

  it('pack a large batch’s changes into rows of at most 1000, read back in order', async () => {
    const wide = defineView({
      name: 'sql_wide',
      columns: { id: { type: 'text' }, n: { type: 'integer', nullable: false } },
      primaryKey: ['id'],
    });
    const projection = defineProjection({
      name: 'sql_wide',
      version: 1,
      views: [wide],
      filter: { streamPrefixes: ['wide-'] },
      sql: { view: wide, columns: { id: "e.data->>'id'", n: "(e.data->>'n')::integer" }, batchSize: 3000 },
    });
    await store.append(
      'wide-1',
      Array.from({ length: 2500 }, (_, n) => ({
        type: 'W',
        data: { id: `w${String(n).padStart(4, '0')}`, n },
      })),
    );
    const workers = startWorkers({ url: db.url, projections: [projection], pollIntervalMs: 20 });
    try {
      await caughtUp([projection]);
    } finally {
      await workers.stop();
    }
    const { rows: packed } = await pool.query(
      `select json_array_length(changes::json) as entries from tributary.view_changes where view = $1 order by transaction_id, seq`,
      [wide.name],
    );
    expect(packed.map((row) => row.entries)).toEqual([1000, 1000, 500]);
    const changes = await changesOf(wide.name);
    expect(changes.map((change) => change.row)).toEqual(
      Array.from({ length: 2500 }, (_, n) => ({ id: `w${String(n).padStart(4, '0')}`, n })),
    );
  });

  it('write every column type with the exact values a handler writes, in the view and the changelog', async () => {
    const columns = {
      id: { type: 'text' },
      i: { type: 'integer' },
      b: { type: 'bigint' },
      n: { type: 'numeric' },
      d: { type: 'double' },
      f: { type: 'boolean' },
      ts: { type: 'timestamptz' },
      j: { type: 'jsonb' },
      a: { type: 'text[]' },
    } as const;
    const byHandlerView = defineView({ name: 'exact_handled', columns, primaryKey: ['id'] });
    const bySqlView = defineView({ name: 'exact_sql', columns, primaryKey: ['id'] });
    const exactFilter = { streamPrefixes: ['exact-'] };
    const handler = defineProjection({
      name: 'exact_handled',
      version: 1,
      views: [byHandlerView],
      filter: exactFilter,
      async handle(event, ctx) {
        const data = event.data as Record<string, never>;
        await ctx.upsert(byHandlerView, {
          id: data.id,
          i: data.i,
          b: data.b,
          n: data.n,
          d: data.d === null ? null : Number(data.d),
          f: data.f,
          ts: data.ts,
          j: data.j,
          a: data.a,
        });
      },
    });
    const sql = defineProjection({
      name: 'exact_sql',
      version: 1,
      views: [bySqlView],
      filter: exactFilter,
      sql: {
        view: bySqlView,
        columns: {
          id: "e.data->>'id'",
          i: "e.data->>'i'",
          b: "e.data->>'b'",
          n: "e.data->>'n'",
          d: "e.data->>'d'",
          f: "e.data->>'f'",
          ts: "e.data->>'ts'",
          j: "e.data->'j'",
          a: "case when jsonb_typeof(e.data->'a') = 'array' then array(select jsonb_array_elements_text(e.data->'a')) end",
        },
      },
    });
    const values = [
      {
        i: 2147483647,
        b: '9223372036854775807',
        n: '12345678901234567890.123456789',
        d: '1e21',
        f: true,
        ts: '2026-11-30T21:14:05.123456Z',
        j: { big: 9007199254740993n.toString(), list: [1.5, null, 'x'], nested: { '😀': 'tab\tquote"' } },
        a: ['', 'NULL', '{braces}, commas', 'émoji 😀'],
      },
      {
        i: -2147483648,
        b: '-9',
        n: '80.00',
        d: '5e-324',
        f: false,
        ts: '0001-01-01T00:00:00.000000Z',
        j: [],
        a: [],
      },
      {
        i: 0,
        b: '0',
        n: 'NaN',
        d: '0.30000000000000004',
        f: null,
        ts: '9999-12-31T23:59:59.999999Z',
        j: 'text',
        a: null,
      },
      { i: null, b: null, n: '-0.000', d: '-1.7976931348623157e308', f: true, ts: null, j: null, a: ['x'] },
    ];
    await store.append(
      'exact-1',
      values.map((v, k) => ({ type: 'Exact', data: { id: `x${k}`, ...v } as never })),
    );
    // A second version of one row, so a change carries an old row too.
    await store.append('exact-1', [{ type: 'Exact', data: { id: 'x1', ...values[0]! } as never }]);
    const workers = startWorkers({ url: db.url, projections: [handler, sql], pollIntervalMs: 20 });
    try {
      await caughtUp([handler, sql]);
    } finally {
      await workers.stop();
    }
    const canonical = async (view: string) =>
      (await pool.query(`select ${canonicalSelectList(columns)} from tributary_views.${view} order by id`))
        .rows;
    const expected = await canonical(byHandlerView.name);
    expect(expected).toHaveLength(4);
    expect(await canonical(bySqlView.name)).toEqual(expected);
    const text = (changes: ViewChange[]) =>
      changes.map((change) => JSON.stringify([change.op, change.key, change.row, change.old]));
    const handled = text(await changesOf(byHandlerView.name));
    const folded = text(await changesOf(bySqlView.name));
    // The same final version of every key, and the same old row for the key written twice.
    expect(new Set(folded)).toEqual(new Set(handled.filter((change) => folded.includes(change))));
    expect(folded.length).toBeGreaterThanOrEqual(4);
    const last = (changes: string[]) => new Map(changes.map((change) => [JSON.parse(change)[1].id, change]));
    expect(last(folded)).toEqual(last(handled));
  });

  it('rebuilds blue/green to the same rows', async () => {
    const before = await rows(folded.name);
    const v2 = { ...bySql, version: 2 };
    const result = await rebuildProjection({ pool, projection: v2, batchSize: 70 });
    expect(result.events).toBeGreaterThan(0);
    expect(await rows(folded.name)).toEqual(before);
  });

  it('halt at the event whose SQL fails, after retries, with the events before it applied', async () => {
    const counts = defineView({
      name: 'sql_numbers',
      columns: { id: { type: 'text' }, n: { type: 'integer', nullable: false } },
      primaryKey: ['id'],
    });
    const numbers = defineProjection({
      name: 'sql_numbers',
      version: 1,
      views: [counts],
      filter: { streamPrefixes: ['numbers-'] },
      retry: { maxAttempts: 2, initialDelayMs: 10 },
      sql: { view: counts, columns: { id: "e.data->>'id'", n: "(e.data->>'n')::integer" } },
    });
    await store.append(
      'numbers-1',
      ['1', '2', 'three', '4'].map((n, i) => ({ type: 'N', data: { id: `k${i}`, n } })),
    );
    const poison = (await store.readStream('numbers-1'))[2]!;
    const workers = startWorkers({ url: db.url, projections: [numbers], pollIntervalMs: 20 });
    try {
      const [status] = await waitFor(
        async () => {
          const statuses = await getProjectionStatuses(pool, [numbers]);
          return statuses[0]?.state === 'failed' ? statuses : undefined;
        },
        { what: 'the SQL projection to halt', timeoutMs: 20_000 },
      );
      expect(status!.lastError).toMatchObject({
        message: expect.stringContaining('invalid input syntax for type integer: "three"'),
        position: poison.position,
        eventType: 'N',
      });
      expect(status!.lagEvents).toBe(2);
      expect(await rows(counts.name)).toEqual([
        { id: 'k0', n: 1 },
        { id: 'k1', n: 2 },
      ]);
    } finally {
      await workers.stop();
    }
  });

  it('refuse definitions that cannot run, and replay, with a hint', () => {
    const view = ordersView('orders_refused');
    const base = { name: 'refused', version: 1, views: [view] };
    const columns = { id: "e.data->>'id'", total: "e.data->>'total'" };
    const refusals: Array<[string, () => unknown]> = [
      ['not one of its views', () => defineProjection({ ...base, sql: { view: 'other', columns } })],
      [
        "names 'totl'",
        () => defineProjection({ ...base, sql: { view, columns: { ...columns, totl: '1' } } }),
      ],
      ["lacks 'total'", () => defineProjection({ ...base, sql: { view, columns: { id: 'e.stream_id' } } })],
      [
        'not a SQL expression',
        () => defineProjection({ ...base, sql: { view, columns: { ...columns, note: ' ' } } }),
      ],
      [
        'exactly one of handle, handleBatch or sql',
        () => defineProjection({ ...base, sql: { view, columns }, handle: async () => {} }),
      ],
      ['dead-letter', () => defineProjection({ ...base, sql: { view, columns }, onError: 'dead-letter' })],
    ];
    for (const [message, define] of refusals) {
      expect(define).toThrow(ValidationError);
      expect(define).toThrow(message);
    }
  });

  it('refuse a replay, pointing to rebuild', async () => {
    const refused = await replayProjection({ pool, projection: bySql, from: START, force: true }).catch(
      (error: unknown) => error,
    );
    expect(refused).toBeInstanceOf(ValidationError);
    expect(refused).toMatchObject({
      message: expect.stringContaining('written in SQL'),
      hint: expect.stringContaining('tributary rebuild orders_sql'),
    });
  });
});
