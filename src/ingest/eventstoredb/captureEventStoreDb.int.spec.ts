import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.js';
import { createFakeFeed, fakeEvent } from '../../../test/support/fakeEsdbFeed.js';
import { waitFor } from '../../../test/support/waitFor.js';
import { createPool, type Pool } from '../../db/index.js';
import { createLogger } from '../../logger.js';
import { type Capture, startCapture } from '../cdc/index.js';
import { readStream } from '../log/index.js';
import { EsdbCheckpointError } from './errors.js';
import { eventStoreDbStatus } from './eventStoreDbStatus.js';
import type { EventStoreDbSourceConfig } from './types.js';

let db: TestDatabase;
let pool: Pool;
const captures: Capture[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  pool = createPool(db.url);
});

afterAll(async () => {
  for (const capture of captures) await capture.stop();
  await pool.end();
  await db.drop();
});

type Feed = ReturnType<typeof createFakeFeed>;

function capture(name: string, feed: Feed, config: Partial<EventStoreDbSourceConfig> = {}) {
  const running = startCapture({
    sources: { [name]: { kind: 'eventstoredb', url: 'esdb://fake:2113?tls=false', ...config } },
    pool,
    eventStoreDbFeed: () => feed,
    ...(process.env.CDC_DEBUG ? { logger: createLogger({ level: 'debug', format: 'pretty' }) } : {}),
  });
  captures.push(running);
  return running;
}

async function logged(source: string) {
  const { rows } = await pool.query<{ events: string }>(
    'select events from tributary.esdb_checkpoints where source = $1',
    [source],
  );
  return Number(rows[0]?.events ?? 0);
}

describe('an EventStoreDB source (over an in-memory $all)', () => {
  it('catches up, then follows live, each event once in $all order, and shows where it stands', async () => {
    const feed = createFakeFeed(Array.from({ length: 2500 }, (_, n) => fakeEvent(n, {}, 5)));
    const running = capture('shop', feed, { batchSize: 300, streamPrefix: 'es-' });
    await waitFor(async () => (await logged('shop')) === 2500, { timeoutMs: 30_000, what: 'catch-up' });
    await waitFor(() => running.eventStoreDb()[0]!.state === 'live', { what: 'live' });
    // A system event is filtered out by the server: it is neither read nor counted.
    feed.append([fakeEvent(2500, { type: '$statsCollected' }, 5), fakeEvent(2501, {}, 5)]);
    await waitFor(async () => (await logged('shop')) === 2501, { what: 'the live events' });
    const stream = await readStream(pool, 'es-order-0', { limit: 1000 });
    expect(stream.map((e) => e.data.n)).toEqual(Array.from({ length: 500 }, (_, i) => i * 5));
    expect((await readStream(pool, 'es-order-1', { limit: 1000 })).at(-1)!.data.n).toBe(2501);
    expect(stream[0]).toMatchObject({
      eventId: fakeEvent(0).id,
      type: 'OrderPlaced',
      metadata: { source: 'shop' },
    });
    const [status] = await eventStoreDbStatus({
      sources: { shop: { kind: 'eventstoredb', url: 'esdb://fake:2113?tls=false' } },
      db: pool,
      feed: () => feed,
    });
    expect(status).toMatchObject({
      kind: 'eventstoredb',
      source: 'shop',
      server: 'esdb://fake:2113',
      state: 'live',
      running: true,
      events: 2501,
      position: { commit: String(1000 + 2501 * 100) },
      lagBytes: 0,
      lagSeconds: 0,
    });
  });

  it('reconnects when the server goes away, and resumes after its checkpoint: nothing lost, nothing twice', async () => {
    const feed = createFakeFeed(Array.from({ length: 400 }, (_, n) => fakeEvent(n)));
    const running = capture('away', feed, { batchSize: 50 });
    await waitFor(async () => (await logged('away')) === 400, { what: 'catch-up' });
    feed.breakSubscription(
      Object.assign(new Error('14 UNAVAILABLE: No connection established'), { type: 'unavailable' }),
    );
    await waitFor(() => running.eventStoreDb()[0]!.state === 'reconnecting', { what: 'reconnecting' });
    feed.append(Array.from({ length: 100 }, (_, i) => fakeEvent(400 + i)));
    await waitFor(async () => (await logged('away')) === 500, {
      timeoutMs: 20_000,
      what: 'the events after',
    });
    expect(feed.subscriptions).toBe(2);
    const { rows } = await pool.query<{ n: number }>(
      `select (data->>'n')::int as n from tributary.events where metadata->>'source' = 'away'
        order by transaction_id, global_position`,
    );
    expect(rows.map((r) => r.n)).toEqual(Array.from({ length: 500 }, (_, n) => n));
    expect(running.eventStoreDb()[0]!.lastError).toMatch(/UNAVAILABLE/);
  });

  it('stops, saying why, when the server does not hold its checkpoint: wiped, or another history at that position', async () => {
    const feed = createFakeFeed(Array.from({ length: 100 }, (_, n) => fakeEvent(n)));
    const first = capture('gone', feed);
    await waitFor(async () => (await logged('gone')) === 100, { what: 'catch-up' });
    await first.stop();
    feed.replace(Array.from({ length: 10 }, (_, n) => fakeEvent(n)));
    const wiped = await capture('gone', feed).failure;
    expect(wiped).toBeInstanceOf(EsdbCheckpointError);
    expect(wiped.message).toMatch(
      /the server's \$all ends at C:1900\/P:1900, before this log's checkpoint C:10900\/P:10900/,
    );
    expect(wiped.hint).toMatch(/tributary cdc drop gone --yes/);
    feed.replace(
      Array.from({ length: 200 }, (_, n) =>
        fakeEvent(n, n === 99 ? { id: '00000000-0000-4000-8000-ffffffffffff' } : {}),
      ),
    );
    const other = await capture('gone', feed).failure;
    expect(other.message).toMatch(
      /holds event 00000000-0000-4000-8000-ffffffffffff \(stream 'order-49'\) at this log's checkpoint/,
    );
  });

  it("starts at the end of $all with from: 'end', and marks deleted and truncated streams in their log streams", async () => {
    const feed = createFakeFeed(Array.from({ length: 50 }, (_, n) => fakeEvent(n)));
    const running = capture('fresh', feed, { from: 'end', streamPrefix: 'f-' });
    await waitFor(() => running.eventStoreDb()[0]!.state === 'live', { what: 'live' });
    feed.append([
      fakeEvent(50, { streamId: 'order-50' }),
      fakeEvent(51, { streamId: '$$order-0', type: '$metadata', data: { $tb: 1 } }),
      fakeEvent(52, { streamId: 'order-0', type: '$streamDeleted', data: {} }),
    ]);
    await waitFor(async () => (await logged('fresh')) === 3, { what: 'the new events' });
    expect((await readStream(pool, 'f-order-50')).map((e) => e.data.n)).toEqual([50]);
    expect((await readStream(pool, 'f-order-0')).map((e) => [e.type, e.data])).toEqual([
      ['$streamTruncated', { stream: 'order-0', truncateBefore: 1 }],
      ['$streamDeleted', { stream: 'order-0', hard: true }],
    ]);
  });

  it('through the real client, an unreachable server leaves the source reconnecting with the error, not failed', async () => {
    const running = startCapture({
      sources: { nowhere: { kind: 'eventstoredb', url: 'esdb://127.0.0.1:1?tls=false' } },
      pool,
    });
    captures.push(running);
    await waitFor(() => running.eventStoreDb()[0]!.lastError !== null, {
      timeoutMs: 30_000,
      what: 'an error',
    });
    expect(running.eventStoreDb()[0]).toMatchObject({
      state: 'reconnecting',
      lastError: expect.stringMatching(/navailable|connect/i),
    });
    const [status] = await eventStoreDbStatus({
      sources: { nowhere: { kind: 'eventstoredb', url: 'esdb://127.0.0.1:1?tls=false' } },
      db: pool,
    });
    expect(status!.head).toBeNull();
    expect(status!.warnings[0]).toMatch(/The server did not answer/);
  });
});
