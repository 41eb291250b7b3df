import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.js';
import { isConnectionError } from '../../db/index.js';
import { ConcurrencyError } from '../../errors.js';
import { createPostgresEventStore, type EventStore } from './index.js';

let db: TestDatabase;
let store: EventStore;

beforeAll(async () => {
  db = await createTestDatabase();
  store = createPostgresEventStore({ connectionString: db.url, poolSize: 20 });
});

afterAll(async () => {
  await store.close();
  await db.drop();
});

describe('optimistic concurrency under races', () => {
  it('K writers with the same expected version: exactly one wins each round, the others learn the actual version', async () => {
    const writers = 8;
    const rounds = 12;
    // Warm the pool so that the writers really start together.
    await Promise.all(Array.from({ length: writers }, () => store.readStream('warm')));
    for (let round = 0; round < rounds; round++) {
      const expectedVersion = round === 0 ? ('no_stream' as const) : round;
      const results = await Promise.allSettled(
        Array.from({ length: writers }, (_, w) =>
          store.append('contended', [{ type: 'Claimed', data: { round, writer: w } }], { expectedVersion }),
        ),
      );
      const winners = results.filter((r) => r.status === 'fulfilled');
      expect(winners, `round ${round}`).toHaveLength(1);
      expect(winners[0]!.value.nextExpectedVersion).toBe(round + 1);
      for (const loser of results.filter((r) => r.status === 'rejected')) {
        expect(loser.reason).toBeInstanceOf(ConcurrencyError);
        expect(loser.reason).toMatchObject({
          streamId: 'contended',
          expected: expectedVersion,
          actual: round + 1,
        });
      }
    }
    const events = await store.readStream('contended');
    expect(events.map((e) => [e.streamPosition, e.data.round])).toEqual(
      Array.from({ length: rounds }, (_, round) => [round + 1, round]),
    );
  });

  it('with expectedVersion any, concurrent appends to one stream all land with contiguous versions', async () => {
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, w) =>
        store.append('free-for-all', [
          { type: 'A', data: { w } },
          { type: 'B', data: { w } },
        ]),
      ),
    );
    expect(results.map((r) => r.nextExpectedVersion).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 10 }, (_, i) => 2 * (i + 1)),
    );
    const events = await store.readStream('free-for-all');
    expect(events.map((e) => e.streamPosition)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    // A batch is atomic: both events of one append are adjacent.
    for (let i = 0; i < 20; i += 2) expect(events[i]!.data.w).toBe(events[i + 1]!.data.w);
  });
});

/**
 * A TCP proxy in front of PostgreSQL. Once armed, it forwards the next request whole
 * and then cuts the client off at the first byte of the reply: the server has already
 * received the statement and its Sync, so it commits; the client only sees the
 * connection drop, as when a network fails just before the acknowledgement.
 */
async function startAckDroppingProxy(target: URL) {
  let armed = false;
  let cuts = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = tcpConnect(Number(target.port), target.hostname);
    sockets.add(client).add(upstream);
    let cutting = false;
    client.on('data', (chunk) => {
      if (armed && chunk.includes('append_events')) {
        armed = false;
        cutting = true;
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (!cutting) {
        client.write(chunk);
        return;
      }
      cuts++;
      client.destroy();
      // Half-close: the server still finishes what it has read (up to the commit), then sees EOF.
      upstream.end();
    });
    const close = () => {
      client.destroy();
      if (!cutting) upstream.destroy();
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as { port: number };
  const url = new URL(target);
  url.hostname = '127.0.0.1';
  url.port = String(address.port);
  return {
    url: url.toString(),
    arm: () => {
      armed = true;
    },
    cuts: () => cuts,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe('idempotent retries', () => {
  it('an append whose acknowledgement is lost commits once; the retry returns the first result', async () => {
    const proxy = await startAckDroppingProxy(new URL(db.url));
    const flaky = createPostgresEventStore({ connectionString: proxy.url });
    try {
      const events = [
        { id: 'order-9-placed', type: 'Placed', data: { total: 12 } },
        { id: 'order-9-paid', type: 'Paid', data: { total: 12 } },
      ];
      await flaky.append('order-9', [{ id: 'order-9-created', type: 'Created', data: {} }], {
        expectedVersion: 'no_stream',
      });
      proxy.arm();
      const lost = await flaky.append('order-9', events, { expectedVersion: 1 }).catch((error) => error);
      expect(proxy.cuts()).toBe(1);
      expect(isConnectionError(lost), String(lost)).toBe(true);

      // The append did commit, although its caller never heard so.
      const committed = await store.readStream('order-9');
      expect(committed.map((e) => e.eventId)).toEqual(['order-9-created', 'order-9-placed', 'order-9-paid']);

      // The retry (same ids, same expected version) is a no-op returning what the first append produced.
      const retried = await flaky.append('order-9', events, { expectedVersion: 1 });
      expect(retried).toEqual({ nextExpectedVersion: 3, position: committed[2]!.position, appended: false });
      expect(await store.readStream('order-9')).toHaveLength(3);
      // The stream moves on from there.
      await expect(
        flaky.append('order-9', [{ type: 'Shipped', data: {} }], {
          expectedVersion: retried.nextExpectedVersion,
        }),
      ).resolves.toMatchObject({ nextExpectedVersion: 4, appended: true });
    } finally {
      await flaky.close();
      await proxy.close();
    }
  });

  it('identical appends at the same time write once and both succeed with the same result', async () => {
    for (let round = 0; round < 10; round++) {
      const streamId = `twin-${round}`;
      const batch = [
        { id: `${streamId}-a`, type: 'A', data: { round } },
        { id: `${streamId}-b`, type: 'B', data: { round } },
      ];
      const results = await Promise.all(
        Array.from({ length: 4 }, () => store.append(streamId, batch, { expectedVersion: 'no_stream' })),
      );
      expect(results.filter((r) => r.appended)).toHaveLength(1);
      const { appended: _, ...first } = results.find((r) => r.appended)!;
      for (const result of results) expect(result).toMatchObject(first);
      expect(await store.readStream(streamId)).toHaveLength(2);
    }
  });
});
