import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.js';
import { createPool, type Pool } from '../../db/index.js';
import { StreamOrderConflictError } from '../../errors.js';
import {
  appendToStream,
  appendToStreams,
  copyToStream,
  createPostgresEventStore,
  type EventStore,
  prepareEvents,
  START,
  type StreamEvent,
} from './index.js';

let db: TestDatabase;
let pool: Pool;
let store: EventStore;

beforeAll(async () => {
  db = await createTestDatabase();
  pool = createPool(db.url, { max: 20 });
  store = createPostgresEventStore({ connectionString: db.url, pool });
});

afterAll(async () => {
  await store.close();
  await pool.end();
  await db.drop();
});

/** Every event of the log in the order readers get it. */
async function readWholeLog() {
  const events = [];
  let from = START;
  for (;;) {
    const page = await store.readAll(from, { limit: 1000 });
    events.push(...page.events);
    if (page.events.length === 0) return events;
    from = page.next;
  }
}

/** Asserts that each stream's events reach readers in stream order: 1, 2, 3, … */
function expectStreamOrder(events: Awaited<ReturnType<typeof readWholeLog>>) {
  const seen = new Map<string, number[]>();
  for (const e of events) seen.set(e.streamId, [...(seen.get(e.streamId) ?? []), e.streamPosition]);
  for (const [streamId, positions] of seen) {
    expect(positions, streamId).toEqual(positions.map((_, i) => i + 1));
  }
}

/**
 * A transaction that takes its transaction id (by writing to another stream) before a second
 * transaction appends to `streamId` and commits, and then appends to `streamId` itself.
 */
async function appendBehindALaterTransaction(
  streamId: string,
  append: (client: import('pg').PoolClient) => Promise<unknown>,
) {
  const client = await pool.connect();
  try {
    await client.query('begin');
    await appendToStream(client, `${streamId}-elsewhere`, [{ type: 'First', data: {} }]);
    await store.append(streamId, [{ type: 'Committed', data: {} }]);
    return await append(client).finally(() => client.query('rollback'));
  } finally {
    client.release();
  }
}

describe('each stream reaches readers in stream order', () => {
  it('an append in a transaction that began writing earlier is refused with a typed, retryable error', async () => {
    const attempt = appendBehindALaterTransaction('order-single', (client) =>
      appendToStream(client, 'order-single', [{ type: 'Late', data: {} }]),
    );
    await expect(attempt).rejects.toBeInstanceOf(StreamOrderConflictError);
    await expect(attempt).rejects.toMatchObject({ code: 'STREAM_ORDER_CONFLICT', streamId: 'order-single' });
    // Nothing of it was written; the same append in a new transaction goes through.
    await store.append('order-single', [{ type: 'Late', data: {} }]);
    const events = await store.readStream('order-single');
    expect(events.map((e) => e.type)).toEqual(['Committed', 'Late']);
    expectStreamOrder(await readWholeLog());
  });

  it('multi-stream appends and COPY appends keep the same rule', async () => {
    const multi = appendBehindALaterTransaction('order-multi', (client) =>
      appendToStreams(
        client,
        prepareEvents([{ type: 'Late', data: {} }]).map(
          (e): StreamEvent => ({ ...e, streamId: 'order-multi' }),
        ),
      ),
    );
    await expect(multi).rejects.toMatchObject({ code: 'STREAM_ORDER_CONFLICT', streamId: 'order-multi' });
    const copied = appendBehindALaterTransaction('order-copy', (client) =>
      copyToStream(client, 'order-copy', [{ type: 'Late', data: {} }]),
    );
    await expect(copied).rejects.toBeInstanceOf(StreamOrderConflictError);
  });

  it("an append that is its transaction's first write is never refused, however contended its stream", async () => {
    const writer = async (w: number) => {
      for (let round = 0; round < 20; round++) {
        const client = await pool.connect();
        try {
          await client.query('begin');
          await appendToStream(client, `hot-${round % 2}`, [{ type: 'Step', data: { w, round } }]);
          await client.query('commit');
        } catch (error) {
          await client.query('rollback');
          throw error;
        } finally {
          client.release();
        }
      }
    };
    await Promise.all(Array.from({ length: 12 }, (_, w) => writer(w)));
    const events = (await readWholeLog()).filter((e) => e.streamId.startsWith('hot-'));
    expect(events).toHaveLength(12 * 20);
    expectStreamOrder(events);
  });

  it('under contending multi-stream transactions, every stream is read in stream order', async () => {
    const streams = ['c-a', 'c-b', 'c-c', 'c-d'];
    let refused = 0;
    const pick = (w: number, round: number) => streams.filter((_, i) => (i + w + round) % 3 !== 0);
    const writer = async (w: number) => {
      for (let round = 0; round < 25; round++) {
        const picked = pick(w, round);
        for (;;) {
          const client = await pool.connect();
          try {
            await client.query('begin');
            // Each stream in its own statement, so the transaction holds one lock while it
            // waits for the next, the shape in which ids and lock order disagree.
            for (const streamId of picked) {
              await appendToStream(client, streamId, [{ type: 'Step', data: { w, round } }]);
            }
            await client.query('commit');
            break;
          } catch (error) {
            await client.query('rollback');
            if (!(error instanceof StreamOrderConflictError)) throw error;
            refused++;
          } finally {
            client.release();
          }
        }
      }
    };
    await Promise.all(Array.from({ length: 6 }, (_, w) => writer(w)));
    const events = (await readWholeLog()).filter((e) => e.streamId.startsWith('c-'));
    let appended = 0;
    for (let w = 0; w < 6; w++) for (let round = 0; round < 25; round++) appended += pick(w, round).length;
    expect(events).toHaveLength(appended);
    expectStreamOrder(events);
    // The contention really produced the out-of-order shape the rule refuses.
    expect(refused).toBeGreaterThan(0);
  });
});
