import type { EsdbFeed, EsdbRecordedEvent, EsdbSubscription, ServerFilter } from '../../src/ingest/index.js';
import { compareEsdbPositions } from '../../src/ingest/index.js';

/**
 * An in-memory `$all` for tests of the capture's own logic (mapping, batching, checkpoints,
 * exactly-once): it serves the events given, applies server filters as the server does, and
 * can fail a subscription to play a server that goes away. Not a stand-in for the contract
 * suite, which runs against a real server.
 */
export function createFakeFeed(initial: EsdbRecordedEvent[] = []) {
  const all = [...initial];
  const waiters = new Set<() => void>();
  let failNext: Error | undefined;
  const feed: EsdbFeed & {
    append(events: EsdbRecordedEvent[]): void;
    /** The next subscription read fails with this error (once). */
    breakSubscription(error: Error): void;
    /** Replaces the whole history (a wiped or restored server). */
    replace(events: EsdbRecordedEvent[]): void;
    subscriptions: number;
  } = {
    subscriptions: 0,
    async head() {
      return all.length === 0 ? null : all[all.length - 1]!.position;
    },
    async eventAt(position) {
      return all.find((e) => compareEsdbPositions(e.position, position) >= 0);
    },
    subscribe(from, filter) {
      feed.subscriptions++;
      let index = from === 'start' ? 0 : all.findIndex((e) => compareEsdbPositions(e.position, from) > 0);
      if (index < 0) index = all.length;
      const subscription: EsdbSubscription = {
        get caughtUp() {
          return index >= all.length;
        },
        async next(waitMs) {
          for (;;) {
            if (failNext !== undefined) {
              const error = failNext;
              failNext = undefined;
              throw error;
            }
            while (index < all.length) {
              const event = all[index++]!;
              if (passes(filter, event)) return event;
            }
            if (waitMs <= 0) return null;
            const arrived = await new Promise<boolean>((resolve) => {
              const wake = () => {
                clearTimeout(timer);
                waiters.delete(wake);
                resolve(true);
              };
              const timer = setTimeout(() => {
                waiters.delete(wake);
                resolve(false);
              }, waitMs);
              waiters.add(wake);
            });
            if (!arrived) return null;
          }
        },
        async close() {},
      };
      return subscription;
    },
    async close() {},
    append(events) {
      all.push(...events);
      for (const wake of [...waiters]) wake();
    },
    breakSubscription(error) {
      failNext = error;
      for (const wake of [...waiters]) wake();
    },
    replace(events) {
      all.splice(0, all.length, ...events);
    },
  };
  return feed;
}

function passes(filter: ServerFilter | null, event: EsdbRecordedEvent): boolean {
  if (filter === null) return true;
  const subject = filter.on === 'stream' ? event.streamId : event.type;
  if (filter.prefixes !== undefined) return filter.prefixes.some((p) => subject.startsWith(p));
  return new RegExp(filter.regex!).test(subject);
}

/** Event `n` of a deterministic history: streams `order-<n % streams>`, positions 100 apart. */
export function fakeEvent(
  n: number,
  overrides: Partial<EsdbRecordedEvent> = {},
  streams = 50,
): EsdbRecordedEvent {
  const position = BigInt(1000 + n * 100);
  return {
    streamId: `order-${n % streams}`,
    id: `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`,
    revision: BigInt(Math.floor(n / streams)),
    type: n % 3 === 0 ? 'OrderPlaced' : 'OrderPaid',
    created: new Date(Date.UTC(2026, 0, 1) + n * 1000),
    isJson: true,
    data: { n },
    metadata: { correlationId: `c-${n}` },
    position: { commit: position, prepare: position },
    ...overrides,
  };
}
