import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { committedHead } from '../../../test/support/committedHead.js';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.js';
import { waitFor } from '../../../test/support/waitFor.js';
import { ValidationError } from '../../errors.js';
import { createPostgresEventStore, type EventStore, START } from '../../ingest/index.js';
import { defineProjection, defineView, startWorkers, type Workers } from '../index.js';
import {
  appendChanges,
  assertResumableCursor,
  CHANGES_PER_ROW,
  changeEntry,
  isChangeCursor,
  packedChangeLines,
  parseChangeCursor,
  readChanges,
  type ViewChange,
} from './index.js';

let db: TestDatabase;
let pool: pg.Pool;
let store: EventStore;
let workers: Workers;

const counters = defineView({
  name: 'packed_counters',
  columns: { id: { type: 'text' }, n: { type: 'integer' } },
  primaryKey: ['id'],
});
const projection = defineProjection({
  name: 'packed_counters',
  version: 1,
  views: [counters],
  handle: async (event, ctx) => {
    const id = String(event.data.id);
    const row = await ctx.get(counters, { id });
    if (event.type === 'Removed') await ctx.delete(counters, { id });
    else await ctx.upsert(counters, { id, n: (row?.n ?? 0) + 1 });
  },
});

beforeAll(async () => {
  db = await createTestDatabase();
  pool = new pg.Pool({ connectionString: db.url, max: 4 });
  store = createPostgresEventStore({ connectionString: db.url });
  // 25 keys counted twice, 5 of them removed: one batch of 55 events, one packed row of 20 changes.
  const events = [
    ...Array.from({ length: 25 }, (_, i) => ({ type: 'Counted', data: { id: `k${i}` } })),
    ...Array.from({ length: 25 }, (_, i) => ({ type: 'Counted', data: { id: `k${i}` } })),
    ...Array.from({ length: 5 }, (_, i) => ({ type: 'Removed', data: { id: `k${i * 5}` } })),
  ];
  await store.append('counters-1', events);
  workers = startWorkers({ url: db.url, projections: [projection], pollIntervalMs: 50, batchSize: 100 });
  const head = await committedHead(pool);
  await waitFor(
    async () =>
      (
        await pool.query(`select 1 from tributary.projections where name = $1 and position >= $2`, [
          projection.name,
          head,
        ])
      ).rowCount === 1,
    { what: 'the projection to catch up', timeoutMs: 30_000 },
  );
});
afterAll(async () => {
  await workers?.stop();
  await store.close();
  await pool.end();
  await db.drop();
});

async function readAll(from: string): Promise<ViewChange[]> {
  const changes: ViewChange[] = [];
  let next = from;
  for (;;) {
    const read = await readChanges(pool, next, { view: counters.name, limit: 2 });
    changes.push(...read.changes);
    if (read.next === next) return changes;
    next = read.next;
  }
}

describe('packed changelog rows', () => {
  it('writes a batch’s changes to a view as one row and reads them back one by one, in order', async () => {
    const { rows } = await pool.query<{ op: string; entries: number }>(
      `select op, json_array_length(changes::json) as entries from tributary.view_changes where view = $1`,
      [counters.name],
    );
    expect(rows).toEqual([{ op: 'changes', entries: 20 }]);

    const changes = await readAll(START);
    // Net change per key: 20 keys counted twice, 5 created and removed within the batch (no change).
    expect(changes.map((change) => change.op)).toEqual(Array(20).fill('upsert'));
    expect(changes.map((change) => change.row)).toEqual(
      Array.from({ length: 25 }, (_, i) => ({ id: `k${i}`, n: 2 })).filter((_, i) => i % 5 !== 0),
    );
    const cursors = changes.map((change) => change.cursor);
    expect([...cursors].sort()).toEqual(cursors);
    expect(new Set(cursors).size).toBe(cursors.length);
    expect(cursors.every(isChangeCursor)).toBe(true);
    // The last change of the row has the row's own position, so readers that stop at a row's end
    // hold a plain position.
    const { rows: position } = await pool.query<{ cursor: string }>(
      `select lpad(to_hex(transaction_id::text::bigint), 16, '0') || '-' || lpad(to_hex(seq), 16, '0') as cursor
       from tributary.view_changes where view = $1`,
      [counters.name],
    );
    expect(cursors.at(-1)).toBe(position[0]!.cursor);
    // Every change of the row carries the row's sequence (the version sinks write with).
    expect(new Set(changes.map((change) => change.sequence)).size).toBe(1);
  });

  it('resumes after any change inside a packed row with exactly the changes after it', async () => {
    const changes = await readAll(START);
    for (let i = 0; i < changes.length; i++) {
      await assertResumableCursor(pool, changes[i]!.cursor);
      const rest = await readAll(changes[i]!.cursor);
      expect(rest.map((change) => change.cursor)).toEqual(
        changes.slice(i + 1).map((change) => change.cursor),
      );
    }
  });

  it('refuses a cursor that names no change, saying how to resume', async () => {
    const [change] = await readAll(START);
    const malformed = `${change!.cursor.slice(0, 33)}.zz`;
    expect(isChangeCursor(malformed)).toBe(false);
    await expect(assertResumableCursor(pool, malformed)).rejects.toBeInstanceOf(ValidationError);
    expect(() => parseChangeCursor('0000000000000001-0000000000000002.00000000000')).toThrow(ValidationError);
  });

  it('splits a large batch into rows of at most CHANGES_PER_ROW changes, readable as one sequence', async () => {
    const total = CHANGES_PER_ROW * 2 + 7;
    const entries = Array.from({ length: total }, (_, i) =>
      changeEntry('upsert', JSON.stringify({ id: `big${i}` }), JSON.stringify({ id: `big${i}`, n: i }), null),
    );
    const client = await pool.connect();
    try {
      await client.query('begin');
      await appendChanges(client, packedChangeLines('packed_big', entries, START));
      await client.query('commit');
    } finally {
      client.release();
    }
    const { rows } = await pool.query<{ entries: number }>(
      `select json_array_length(changes::json) as entries from tributary.view_changes where view = 'packed_big' order by seq`,
    );
    expect(rows.map((row) => row.entries)).toEqual([CHANGES_PER_ROW, CHANGES_PER_ROW, 7]);
    const read = await readChanges(pool, START, { view: 'packed_big', limit: 10 });
    expect(read.changes.map((change) => change.row)).toEqual(
      Array.from({ length: total }, (_, i) => ({ id: `big${i}`, n: i })),
    );
    // The SQL view of every change agrees.
    const { rows: entriesView } = await pool.query<{ n: number }>(
      `select count(*)::int as n from tributary.view_change_entries where view = 'packed_big'`,
    );
    expect(entriesView[0]!.n).toBe(total);
  });
});
