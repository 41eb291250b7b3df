import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.js';
import { waitFor } from '../../../test/support/waitFor.js';
import { createPool, type Pool, type Queryable } from '../../db/index.js';
import {
  appendToStream,
  createNotifier,
  createPostgresEventStore,
  type Envelope,
  type EventStore,
  readHead,
  START,
  type Subscription,
  subscribe,
} from './index.js';

let db: TestDatabase;
let store: EventStore;
/** Writes through its own pool, which the connection killer below leaves alone. */
let writer: Pool;

beforeAll(async () => {
  db = await createTestDatabase();
  store = createPostgresEventStore({ connectionString: db.url });
  writer = createPool(db.url, { applicationName: 'test-writer' });
});

afterAll(async () => {
  await store.close();
  await writer.end();
  await db.drop();
});

/** Consumes a subscription in the background into `received`. */
function drain(subscription: Subscription) {
  const received: Envelope[] = [];
  const done = (async () => {
    for await (const event of subscription) received.push(event);
  })();
  return { received, done };
}

const append = (streamId: string, n: number, prefix = streamId) =>
  appendToStream(
    writer,
    streamId,
    Array.from({ length: n }, (_, i) => ({ id: `${prefix}-${i}`, type: 'Tick', data: { i } })),
  );

describe('subscribe', () => {
  it('catches up in bounded batches, then goes live', async () => {
    const from = await readHead(writer);
    await append('catch', 23);
    const subscription = store.subscribe(from, { batchSize: 5, filter: { streamPrefixes: ['catch'] } });
    const { received, done } = drain(subscription);
    await waitFor(() => received.length === 23, { what: 'catch-up' });
    await append('catch-live', 4);
    await waitFor(() => received.length === 27, { what: 'live events' });
    await subscription.close();
    await done;
    expect(received.map((e) => e.eventId)).toEqual([
      ...Array.from({ length: 23 }, (_, i) => `catch-${i}`),
      ...Array.from({ length: 4 }, (_, i) => `catch-live-${i}`),
    ]);
    // At or past the last event: past it when the read reached the visibility bound.
    expect(subscription.position >= received.at(-1)!.position).toBe(true);
  });

  it('delivers live events on NOTIFY, long before the poll interval', async () => {
    const subscription = store.subscribe(await readHead(writer), {
      pollIntervalMs: 120_000,
      filter: { streamPrefixes: ['notify'] },
    });
    const { received, done } = drain(subscription);
    for (let i = 0; i < 6; i++) {
      // Both ways of notifying: the store's coalesced NOTIFY after commit, and NOTIFY at commit.
      if (i % 2 === 0) await store.append(`notify-${i}`, [{ type: 'Tick', data: {} }]);
      else await append(`notify-${i}`, 1);
      // Polling alone would take two minutes; the test times out long before.
      await waitFor(() => received.length === i + 1, { timeoutMs: 15_000, what: `live event ${i}` });
    }
    await subscription.close();
    await done;
  });

  it('reads nothing more while the consumer does not pull (bounded memory)', async () => {
    let reads = 0;
    const counting: Queryable = {
      query: ((...args: Parameters<Pool['query']>) => {
        reads++;
        return (writer.query as (...a: unknown[]) => unknown)(...args);
      }) as Queryable['query'],
    };
    const notifier = createNotifier(db.url);
    const from = await readHead(writer);
    await append('slow', 50);
    const subscription = subscribe(counting, notifier, from, {
      batchSize: 10,
      pollIntervalMs: 20,
      filter: { streamPrefixes: ['slow'] },
    });
    const iterator = subscription[Symbol.asyncIterator]();
    const first: Envelope[] = [];
    for (let i = 0; i < 15; i++) first.push((await iterator.next()).value as Envelope);
    expect(reads).toBe(2); // two batches of 10 cover 15 events
    // The consumer stops pulling. New events notify, polls would fire every 20 ms: still no read.
    const generation = notifier.generation;
    await append('slow-more', 30);
    await waitFor(() => notifier.generation > generation, { what: 'the notification' });
    const quietUntil = Date.now() + 500;
    await waitFor(() => Date.now() > quietUntil, { what: '25 poll intervals' });
    expect(reads).toBe(2);
    // Pulling again resumes where it stopped, in order.
    const rest: Envelope[] = [];
    while (rest.length < 65) rest.push((await iterator.next()).value as Envelope);
    expect([...first, ...rest].map((e) => e.eventId)).toEqual([
      ...Array.from({ length: 50 }, (_, i) => `slow-${i}`),
      ...Array.from({ length: 30 }, (_, i) => `slow-more-${i}`),
    ]);
    await subscription.close();
    await notifier.close();
  });

  it('survives its connections being killed mid-stream, including the LISTEN one, losing and repeating nothing', async () => {
    const from = await readHead(writer);
    // Only notifications (or a reconnecting LISTEN) can deliver within the test's time.
    const subscription = store.subscribe(from, {
      batchSize: 7,
      pollIntervalMs: 120_000,
      filter: { streamPrefixes: ['kill-'] },
    });
    const { received, done } = drain(subscription);
    const admin = new pg.Client({ connectionString: db.adminUrl });
    await admin.connect();
    const kill = async () => {
      const { rows } = await admin.query<{ app: string }>(
        `select application_name as app, pg_terminate_backend(pid) from pg_stat_activity
         where datname = $1 and application_name in ('tributary-log', 'tributary-listen')`,
        [db.name],
      );
      return rows.map((r) => r.app);
    };
    try {
      const expected: string[] = [];
      let killedListen = 0;
      for (let round = 0; round < 8; round++) {
        await append(`kill-${round}`, 20);
        expected.push(...Array.from({ length: 20 }, (_, i) => `kill-${round}-${i}`));
        const killed = await kill();
        if (killed.includes('tributary-listen')) killedListen++;
        await waitFor(() => received.length === expected.length, {
          timeoutMs: 20_000,
          what: `round ${round} delivered after killing ${killed.join(', ') || 'nothing'}`,
        });
      }
      expect(killedListen).toBeGreaterThan(0);
      // Live again after the last kill: the LISTEN connection came back.
      await append('kill-final', 3);
      expected.push('kill-final-0', 'kill-final-1', 'kill-final-2');
      await waitFor(() => received.length === expected.length, {
        timeoutMs: 20_000,
        what: 'live after kills',
      });
      expect(received.map((e) => e.eventId)).toEqual(expected);
    } finally {
      await admin.end();
      await subscription.close();
      await done;
    }
  });

  it('delivers events held back by an older open transaction soon after it commits, without a notification', async () => {
    const subscription = store.subscribe(await readHead(writer), {
      pollIntervalMs: 120_000,
      filter: { streamPrefixes: ['held'] },
    });
    const { received, done } = drain(subscription);
    const old = new pg.Client({ connectionString: db.url });
    await old.connect();
    try {
      await old.query('begin');
      await old.query('select pg_current_xact_id()'); // an xid older than the append below, no NOTIFY ever
      await append('held', 3);
      // The committed events are there but held back, and the subscriber is not fooled.
      await waitFor(async () => (await store.readAll(await readHead(writer))).held, { what: 'held events' });
      const quietUntil = Date.now() + 300;
      await waitFor(() => Date.now() > quietUntil, { what: 'a few fast polls' });
      expect(received).toHaveLength(0);
      await old.query('commit');
      await waitFor(() => received.length === 3, { timeoutMs: 10_000, what: 'held events after the commit' });
      expect(received.map((e) => e.eventId)).toEqual(['held-0', 'held-1', 'held-2']);
    } finally {
      await old.end();
      await subscription.close();
      await done;
    }
  });

  it('applies filters by type, type prefix and stream prefix, and stops on close or abort', async () => {
    const from = await readHead(writer);
    await appendToStream(writer, 'f-orders-1', [
      { type: 'OrderPlaced', data: {} },
      { type: 'OrderPaid', data: {} },
    ]);
    await appendToStream(writer, 'f-users-1', [{ type: 'UserJoined', data: {} }]);
    await appendToStream(writer, 'g-orders-2', [{ type: 'OrderPlaced', data: {} }]);

    const collect = async (filter: Parameters<EventStore['subscribe']>[1]) => {
      const controller = new AbortController();
      const subscription = store.subscribe(from, { ...filter, signal: controller.signal });
      const { received, done } = drain(subscription);
      await waitFor(async () => subscription.position >= (await readHead(writer)), { what: 'the head' });
      controller.abort();
      await done;
      return received.map((e) => `${e.streamId}:${e.type}`);
    };
    expect(await collect({ filter: { types: ['OrderPlaced'] } })).toEqual([
      'f-orders-1:OrderPlaced',
      'g-orders-2:OrderPlaced',
    ]);
    expect(await collect({ filter: { typePrefixes: ['Order'], streamPrefixes: ['f-'] } })).toEqual([
      'f-orders-1:OrderPlaced',
      'f-orders-1:OrderPaid',
    ]);
    expect(await collect({ filter: { streamPrefixes: ['f-users'] } })).toEqual(['f-users-1:UserJoined']);
    expect(START < from).toBe(true);
  });

  it('refuses a bad position or batch size at once, and an aborted signal ends it before any read', async () => {
    expect(() => store.subscribe('nope' as never)).toThrow(/not a Tributary log position/);
    expect(() => store.subscribe(START, { batchSize: 0 })).toThrow(/limit must be an integer/);
    const subscription = store.subscribe(START, { signal: AbortSignal.abort() });
    const { received, done } = drain(subscription);
    await done;
    expect(received).toEqual([]);
  });
});
