import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.js';
import { waitFor } from '../../test/support/waitFor.js';
import { createPostgresEventStore, type EventStore } from '../ingest/index.js';
import {
  defineProjection,
  defineView,
  getProjectionStatuses,
  listDeadLetters,
  retryDeadLetters,
  startWorkers,
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

const seen = defineView({
  name: 'seen',
  columns: { id: { type: 'text' }, n: { type: 'integer', nullable: false } },
  primaryKey: ['id'],
});

/** Fails on events whose data says `poison`, while `healed` is false. */
function poisonable(
  name: string,
  onError: 'stop' | 'dead-letter',
  state: { healed: boolean; calls: number },
) {
  return defineProjection({
    name,
    version: 1,
    views: [{ ...seen, name: `${name}_seen` }],
    filter: { streamPrefixes: [`${name}-`] },
    onError,
    retry: { maxAttempts: 3, initialDelayMs: 10 },
    async handle(event, ctx) {
      // Written before the throw: must not survive the failed attempt.
      await ctx.upsert(`${name}_seen`, { id: `${event.eventId}-partial`, n: 0 });
      if (event.data.poison === true) {
        state.calls++;
        if (!state.healed) throw new Error(`poisoned event ${event.data.n}`);
      }
      await ctx.delete(`${name}_seen`, { id: `${event.eventId}-partial` });
      await ctx.upsert(`${name}_seen`, { id: String(event.data.n), n: Number(event.data.n) });
    },
  });
}

const ids = async (table: string) =>
  (await pool.query(`select id from tributary_views.${table} order by n`)).rows.map((r) => r.id);

describe('failure policies', () => {
  it('stop: retries with backoff, then halts at the poison event with its error and position visible', async () => {
    const state = { healed: false, calls: 0 };
    const projection = poisonable('halting', 'stop', state);
    await store.append(
      'halting-1',
      [1, 2, 3, 4, 5].map((n) => ({ type: 'E', data: { n, poison: n === 3 } })),
    );
    const poison = (await store.readStream('halting-1'))[2]!;
    const workers = startWorkers({ url: db.url, projections: [projection], leaseTimeoutMs: 2000 });
    try {
      const [status] = await waitFor(
        async () => {
          const statuses = await getProjectionStatuses(pool, [projection]);
          return statuses[0]?.state === 'failed' ? statuses : undefined;
        },
        { what: 'the projection to halt', timeoutMs: 20_000 },
      );
      expect(state.calls).toBe(3);
      expect(status!.lastError).toMatchObject({
        message: 'poisoned event 3',
        position: poison.position,
        eventType: 'E',
      });
      expect(status!.lagEvents).toBe(3);
      expect(await ids('halting_seen')).toEqual(['1', '2']);
      expect(workers.status()[0]).toMatchObject({ state: 'failed', lastError: 'poisoned event 3' });
    } finally {
      await workers.stop();
    }
    // A restart after the fix resumes from the poison event.
    state.healed = true;
    const again = startWorkers({ url: db.url, projections: [projection], leaseTimeoutMs: 2000 });
    try {
      await waitFor(async () => (await ids('halting_seen')).length === 5, { what: 'resume after the fix' });
      expect(await ids('halting_seen')).toEqual(['1', '2', '3', '4', '5']);
      const [status] = await getProjectionStatuses(pool, [projection]);
      expect(status).toMatchObject({ state: 'running', lastError: undefined });
    } finally {
      await again.stop();
    }
  });

  it('dead-letter: records the envelope and error, goes on, and a retry after the fix applies it', async () => {
    const state = { healed: false, calls: 0 };
    const projection = poisonable('lettering', 'dead-letter', state);
    await store.append(
      'lettering-1',
      [1, 2, 3, 4, 5].map((n) => ({ type: 'E', data: { n, poison: n === 2 || n === 4 } })),
    );
    const workers = startWorkers({ url: db.url, projections: [projection], leaseTimeoutMs: 2000 });
    try {
      await waitFor(async () => (await ids('lettering_seen')).length === 3, { what: 'the healthy events' });
      expect(await ids('lettering_seen')).toEqual(['1', '3', '5']);
      const letters = await listDeadLetters(pool as never, { projection: 'lettering' });
      expect(letters.map((d) => [d.envelope.data.n, d.attempts, d.error.message])).toEqual([
        [2, 3, 'poisoned event 2'],
        [4, 3, 'poisoned event 4'],
      ]);
      expect(letters[0]!.envelope.eventTime).toBeInstanceOf(Date);
      const [status] = await getProjectionStatuses(pool, [projection]);
      expect(status).toMatchObject({ state: 'running', deadLetters: 2, lagEvents: 0 });

      // Still failing: kept, with one more attempt.
      const failed = await retryDeadLetters(pool as never, [projection], [letters[0]!.id]);
      expect(failed).toEqual([{ id: letters[0]!.id, ok: false, error: 'poisoned event 2' }]);
      state.healed = true;
      const outcomes = await retryDeadLetters(
        pool as never,
        [projection],
        letters.map((d) => d.id),
      );
      expect(outcomes.every((o) => o.ok)).toBe(true);
      expect(await ids('lettering_seen')).toEqual(['1', '2', '3', '4', '5']);
      expect(await listDeadLetters(pool as never, { projection: 'lettering' })).toEqual([]);

      // The running worker notices the foreign write (generation) and keeps going from fresh rows.
      await store.append('lettering-1', [{ type: 'E', data: { n: 6 } }]);
      await waitFor(async () => (await ids('lettering_seen')).length === 6, { what: 'the worker to go on' });
    } finally {
      await workers.stop();
    }
  });

  it('a batch that breaks a view constraint is narrowed down to the event, which gets the policy', async () => {
    const users = defineView({
      name: 'users',
      columns: { id: { type: 'text' }, email: { type: 'text', nullable: false } },
      primaryKey: ['id'],
      indexes: [{ columns: ['email'], unique: true }],
    });
    const projection = defineProjection({
      name: 'users',
      version: 1,
      views: [users],
      filter: { streamPrefixes: ['user-'] },
      onError: 'dead-letter',
      retry: { maxAttempts: 2, initialDelayMs: 10 },
      async handle(event, ctx) {
        await ctx.upsert(users, { id: event.streamId, email: String(event.data.email) });
      },
    });
    for (const [id, email] of [
      ['user-1', 'a@x'],
      ['user-2', 'b@x'],
      ['user-3', 'a@x'],
      ['user-4', 'c@x'],
    ]) {
      await store.append(id!, [{ type: 'Registered', data: { email: email! } }]);
    }
    const workers = startWorkers({ url: db.url, projections: [projection] });
    try {
      await waitFor(
        async () => (await pool.query('select id from tributary_views.users order by id')).rows.length === 3,
        { what: 'the other users', timeoutMs: 20_000 },
      );
      const { rows } = await pool.query('select id from tributary_views.users order by id');
      expect(rows.map((r) => r.id)).toEqual(['user-1', 'user-2', 'user-4']);
      const letters = await listDeadLetters(pool as never, { projection: 'users' });
      expect(letters.map((d) => [d.envelope.streamId, d.error.message])).toEqual([
        ['user-3', expect.stringMatching(/duplicate key value violates unique constraint/)],
      ]);
    } finally {
      await workers.stop();
    }
  });
});
