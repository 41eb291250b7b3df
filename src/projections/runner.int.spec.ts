import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { committedHead } from '../../test/support/committedHead.js';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.js';
import { waitFor } from '../../test/support/waitFor.js';
import { createPostgresEventStore, type EventStore, type JsonObject } from '../ingest/index.js';
import {
  createVirtualClock,
  defineProjection,
  defineView,
  ensureViewTables,
  getProjectionStatuses,
  ProjectionDefinitionChangedError,
  startWorkers,
  VIEW_CHANGES_CHANNEL,
} from './index.js';

let db: TestDatabase;
let store: EventStore;
let pool: pg.Pool;

beforeAll(async () => {
  db = await createTestDatabase();
  store = createPostgresEventStore({ connectionString: db.url });
  pool = new pg.Pool({ connectionString: db.url, max: 4 });
});
afterAll(async () => {
  await store.close();
  await pool.end();
  await db.drop();
});

const totals = defineView({
  name: 'totals',
  columns: {
    account: { type: 'text' },
    count: { type: 'integer', nullable: false },
    sum: { type: 'bigint', nullable: false },
    tags: { type: 'text[]' },
    last_at: { type: 'timestamptz' },
  },
  primaryKey: ['account'],
  indexes: [{ columns: ['count'] }],
});

const totalsProjection = defineProjection({
  name: 'totals',
  version: 1,
  views: [totals],
  filter: { types: ['Deposited', 'Closed'] },
  async handle(event, ctx) {
    const account = String(event.data.account);
    if (event.type === 'Closed') {
      await ctx.delete(totals, { account });
      return;
    }
    const row = await ctx.get(totals, { account });
    await ctx.upsert(totals, {
      account,
      count: (row?.count ?? 0) + 1,
      sum: String(BigInt(row?.sum ?? '0') + BigInt(Number(event.data.amount))),
      tags: [...(row?.tags ?? []), String(event.data.amount)].slice(-3),
      last_at: event.eventTime,
    });
  },
});

const rows = async (table: string) =>
  (await pool.query(`select * from tributary_views.${table} order by 1`)).rows as Record<string, unknown>[];

describe('runner', () => {
  it('folds the log into the view, with a changelog row per key per batch, and reports status', async () => {
    for (let i = 0; i < 30; i++) {
      await store.append(`acct-${i % 3}`, [
        { type: 'Deposited', data: { account: `a${i % 3}`, amount: i } },
        { type: 'Ignored', data: {} },
      ]);
    }
    await store.append('acct-2', [{ type: 'Closed', data: { account: 'a2' } }]);
    const workers = startWorkers({ url: db.url, projections: [totalsProjection], batchSize: 7 });
    try {
      const head = await committedHead(pool);
      await waitFor(
        async () =>
          (
            await pool.query('select 1 from tributary.projections where name = $1 and position >= $2', [
              'totals',
              head,
            ])
          ).rowCount === 1,
        { what: 'projection to catch up', timeoutMs: 30_000 },
      );
      expect(await rows('totals')).toMatchObject([
        {
          account: 'a0',
          count: 10,
          sum: String([0, 3, 6, 9, 12, 15, 18, 21, 24, 27].reduce((a, b) => a + b)),
        },
        { account: 'a1', count: 10, sum: '145' },
      ]);
      // Replaying the changelog gives the view.
      const { rows: changes } = await pool.query(
        `select op, key, row, old from tributary.view_change_entries where view = 'totals' order by transaction_id, seq, entry`,
      );
      const replayed = new Map<string, unknown>();
      for (const change of changes) {
        const key = JSON.stringify(change.key);
        if (change.op === 'delete') {
          expect(replayed.get(key)).toEqual(change.old);
          replayed.delete(key);
        } else {
          expect(replayed.get(key) ?? null).toEqual(change.old);
          replayed.set(key, change.row);
        }
      }
      // Read back through the table's row type, the changelog rows are exactly the table rows.
      const { rows: fromLog } = await pool.query(
        `select (jsonb_populate_record(null::tributary_views.totals, r)).*
         from jsonb_array_elements($1::jsonb) r order by 1`,
        [JSON.stringify([...replayed.values()])],
      );
      expect(fromLog).toEqual(await rows('totals'));
      expect(changes.at(-1)!.key).toEqual({ account: 'a2' });

      const [status] = await getProjectionStatuses(pool, [totalsProjection]);
      expect(status).toMatchObject({
        name: 'totals',
        state: 'running',
        version: 1,
        lagEvents: 0,
        lagSeconds: 0,
      });
      expect(status!.leaseOwner).toBe(workers.workerId);
      expect(workers.status()).toMatchObject([{ projection: 'totals', state: 'running' }]);
    } finally {
      await workers.stop();
    }
    const { rows: leases } = await pool.query(
      `select lease_owner from tributary.projections where name = 'totals'`,
    );
    expect(leases[0].lease_owner).toBeNull();
  });

  it('writes any text to the view and the changelog unchanged (COPY escapes)', async () => {
    const notes = defineView({
      name: 'notes',
      columns: {
        id: { type: 'text' },
        body: { type: 'text' },
        tags: { type: 'text[]' },
        doc: { type: 'jsonb' },
      },
      primaryKey: ['id'],
    });
    const projection = defineProjection({
      name: 'notes',
      version: 1,
      views: [notes],
      filter: { types: ['Noted', 'Unnoted'] },
      async handle(event, ctx) {
        const id = String(event.data.id);
        if (event.type === 'Unnoted') await ctx.delete(notes, { id });
        else await ctx.upsert(notes, { id, ...(event.data.note as object) });
      },
    });
    const hostile = [
      'back\\slash',
      'tab\there',
      'new\nline',
      'cr\rret',
      '\\N',
      '\\.',
      'a\\tb',
      "quote\"s 'single'",
      'ünïcødé 🚀 \u2028',
      '\u0001ctrl',
    ];
    const note = (i: number) => ({
      body: hostile[i % hostile.length]!,
      tags: [hostile[(i + 1) % hostile.length]!, '{', '}', ','],
      doc: { s: hostile[(i + 2) % hostile.length]!, list: ['\\N', 1.5, null, { deep: '\\\\' }] },
    });
    const events: Array<{ type: string; data: JsonObject }> = [];
    for (let i = 0; i < hostile.length; i++)
      events.push({ type: 'Noted', data: { id: hostile[i]!, note: note(i) } });
    for (let i = 0; i < hostile.length; i++)
      events.push({ type: 'Noted', data: { id: hostile[i]!, note: note(i + 3) } });
    events.push({ type: 'Unnoted', data: { id: hostile[4]! } });
    // One event per append, one per batch: every key gets an upsert, an upsert with its old row, or a delete.
    for (const event of events) await store.append('notes-1', [event]);
    const workers = startWorkers({ url: db.url, projections: [projection], batchSize: 1 });
    try {
      const head = await committedHead(pool);
      await waitFor(
        async () =>
          (
            await pool.query(`select 1 from tributary.projections where name = 'notes' and position >= $1`, [
              head,
            ])
          ).rowCount === 1,
        { what: 'the notes projection to catch up', timeoutMs: 30_000 },
      );
    } finally {
      await workers.stop();
    }
    const expected = new Map<string, Record<string, unknown>>();
    const changes: unknown[] = [];
    for (const event of events) {
      const id = String(event.data.id);
      const old = expected.get(id) ?? null;
      if (event.type === 'Unnoted') {
        changes.push({ op: 'delete', key: { id }, row: null, old });
        expected.delete(id);
      } else {
        const row = { id, ...(event.data.note as object) };
        changes.push({ op: 'upsert', key: { id }, row, old });
        expected.set(id, row);
      }
    }
    const { rows: logged } = await pool.query(
      `select op, key, row, old from tributary.view_change_entries where view = 'notes' order by transaction_id, seq, entry`,
    );
    expect(logged).toEqual(changes);
    const byId = (a: Record<string, unknown>, b: Record<string, unknown>) =>
      (a.id as string) < (b.id as string) ? -1 : 1;
    expect((await rows('notes')).sort(byId)).toEqual([...expected.values()].sort(byId));
  });

  it('wakes changelog readers once the batch has committed', async () => {
    const woken = defineView({ name: 'woken', columns: { id: { type: 'text' } }, primaryKey: ['id'] });
    const projection = defineProjection({
      name: 'woken',
      version: 1,
      views: [woken],
      filter: { types: ['Woken'] },
      async handle(event, ctx) {
        await ctx.upsert(woken, { id: String(event.data.id) });
      },
    });
    const listener = new pg.Client({ connectionString: db.url });
    await listener.connect();
    // What a reader woken by each notification finds in the changelog.
    const found: number[] = [];
    listener.on('notification', (message) => {
      if (message.channel !== VIEW_CHANGES_CHANNEL) return;
      void pool
        .query(`select count(*)::int as n from tributary.view_change_entries where view = 'woken'`)
        .then(({ rows }) => found.push(rows[0].n));
    });
    await listener.query(`listen ${VIEW_CHANGES_CHANNEL}`);
    await store.append('woken-1', [{ type: 'Woken', data: { id: 'a' } }]);
    const workers = startWorkers({ url: db.url, projections: [projection] });
    try {
      await waitFor(() => found.some((n) => n > 0), {
        what: 'a wake-up after the commit',
        timeoutMs: 20_000,
      });
    } finally {
      await workers.stop();
      await listener.end();
    }
  });

  it('refuses a changed view definition without a version bump', async () => {
    const changed = defineProjection({
      ...totalsProjection,
      views: [defineView({ ...totals, columns: { ...totals.columns, extra: { type: 'text' } } })],
    });
    const error = await ensureViewTables(pool, [changed]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProjectionDefinitionChangedError);
    expect((error as ProjectionDefinitionChangedError).describe()).toMatch(
      /bump its version.*tributary rebuild totals/is,
    );
    await expect(ensureViewTables(pool, [{ ...changed, version: 2 }])).resolves.toEqual(
      new Map([['totals', 'needs-rebuild']]),
    );
  });

  it('runs timers under the lease with a virtual clock, even with no events', async () => {
    const ticks = defineView({
      name: 'ticks',
      columns: { id: { type: 'integer' }, at: { type: 'timestamptz', nullable: false } },
      primaryKey: ['id'],
    });
    const clock = createVirtualClock(new Date('2030-01-01T00:00:00Z'));
    let n = 0;
    const projection = defineProjection({
      name: 'ticker',
      version: 1,
      views: [ticks],
      filter: { types: ['Nothing'] },
      async handleBatch() {},
      async onTimer(now, tx) {
        n++;
        await tx.views.upsert(ticks, { id: n, at: now });
        await tx.client.query('select 1');
        return new Date(now.getTime() + 60_000);
      },
    });
    const workers = startWorkers({ url: db.url, projections: [projection], clock });
    try {
      await waitFor(async () => (await rows('ticks')).length === 1, { what: 'first timer' });
      clock.advance(30_000);
      clock.advance(30_000);
      await waitFor(async () => (await rows('ticks')).length === 2, { what: 'second timer' });
      expect((await rows('ticks'))[1]).toMatchObject({ id: 2, at: new Date('2030-01-01T00:01:00Z') });
    } finally {
      await workers.stop();
    }
  });

  it('a stop that times out abandons the running batch: it rolls back and the next worker redoes it', async () => {
    const slow = defineView({
      name: 'slow',
      columns: { id: { type: 'text' } },
      primaryKey: ['id'],
    });
    let release: () => void = () => {};
    const blocked = new Promise<void>((resolve) => {
      release = resolve;
    });
    let entered = false;
    const make = (block: boolean) =>
      defineProjection({
        name: 'slow',
        version: 1,
        views: [slow],
        filter: { streamPrefixes: ['slow-'] },
        async handle(event, ctx) {
          await ctx.upsert(slow, { id: event.eventId });
          if (block) {
            entered = true;
            await blocked;
          }
        },
      });
    await store.append('slow-1', [{ type: 'S', data: {} }]);
    const workers = startWorkers({ url: db.url, projections: [make(true)] });
    await waitFor(() => entered, { what: 'the handler to block' });
    const started = Date.now();
    await workers.stop({ timeoutMs: 300 });
    expect(Date.now() - started).toBeLessThan(5000);
    release();
    expect(await rows('slow')).toEqual([]);
    const { rows: checkpoint } = await pool.query(
      `select position from tributary.projections where name = 'slow'`,
    );
    expect(checkpoint[0].position).toBe('0000000000000000-0000000000000000');

    const again = startWorkers({ url: db.url, projections: [make(false)], leaseTimeoutMs: 1000 });
    try {
      await waitFor(async () => (await rows('slow')).length === 1, {
        what: 'the next worker',
        timeoutMs: 20_000,
      });
    } finally {
      await again.stop();
    }
  });

  it('delivers events appended while a batch runs by wake-up, not by the poll', async () => {
    const seen = defineView({
      name: 'seen',
      columns: { id: { type: 'text' } },
      primaryKey: ['id'],
    });
    let releaseFirst!: () => void;
    const firstBlocks = new Promise<void>((resolve) => {
      releaseFirst = resolve;
    });
    let firstEntered = false;
    const projection = defineProjection({
      name: 'seen',
      version: 1,
      views: [seen],
      filter: { types: ['Seen'] },
      async handle(event, ctx) {
        if (event.data.id === 'first') {
          firstEntered = true;
          await firstBlocks;
        }
        await ctx.upsert(seen, { id: String(event.data.id) });
      },
    });
    // The poll is far beyond the test's patience: only a wake-up can deliver the second event in time.
    const workers = startWorkers({ url: db.url, projections: [projection], pollIntervalMs: 120_000 });
    try {
      await waitFor(async () => (await getProjectionStatuses(pool, [projection]))[0]?.state === 'running', {
        what: 'the worker to start',
      });
      await store.append('seen-1', [{ type: 'Seen', data: { id: 'first' } }]);
      await waitFor(() => firstEntered, { what: 'the first batch to be running' });
      // Committed (and notified) while the first batch is still in its handler.
      await store.append('seen-2', [{ type: 'Seen', data: { id: 'second' } }]);
      releaseFirst();
      await waitFor(async () => (await rows('seen')).length === 2, {
        timeoutMs: 10_000,
        what: 'the second event',
      });
    } finally {
      releaseFirst();
      await workers.stop();
    }
  });
});
