import {
  type AllStreamResolvedEvent,
  BACKWARDS,
  END,
  EVENT_TYPE,
  EventStoreDBClient,
  type Filter,
  FORWARDS,
  START,
  STREAM_NAME,
} from '@eventstore/db-client';
import type { EsdbFeed, EsdbRecordedEvent, EsdbSubscription, ServerFilter } from './feed.js';

/** Events queued from the subscription before it is paused (gRPC then holds the rest back). */
const HIGH_WATER = 2000;
const LOW_WATER = 200;

/** An EsdbFeed over `@eventstore/db-client` (EventStoreDB 20.6.1 and later, KurrentDB). */
export function createClientFeed(url: string): EsdbFeed {
  const client = EventStoreDBClient.connectionString(url);
  return {
    async head() {
      for await (const resolved of client.readAll({ direction: BACKWARDS, fromPosition: END, maxCount: 1 })) {
        const event = toRecorded(resolved);
        if (event !== undefined) return event.position;
      }
      return null;
    },
    async eventAt(position) {
      for await (const resolved of client.readAll({
        direction: FORWARDS,
        fromPosition: position,
        maxCount: 1,
      })) {
        return toRecorded(resolved);
      }
      return undefined;
    },
    subscribe(from, filter) {
      const subscription = client.subscribeToAll({
        fromPosition: from === 'start' ? START : from,
        resolveLinkTos: false,
        ...(filter === null ? {} : { filter: toClientFilter(filter) }),
      });
      const queue: EsdbRecordedEvent[] = [];
      let head = 0;
      let failure: unknown;
      let ended = false;
      let caughtUp = false;
      let wake: (() => void) | undefined;
      let paused = false;
      subscription.on('data', (resolved: AllStreamResolvedEvent) => {
        const event = toRecorded(resolved);
        if (event === undefined) return;
        queue.push(event);
        if (!paused && queue.length - head >= HIGH_WATER) {
          paused = true;
          subscription.pause();
        }
        wake?.();
      });
      subscription.on('caughtUp', () => {
        caughtUp = true;
        wake?.();
      });
      subscription.on('fellBehind', () => {
        caughtUp = false;
      });
      subscription.on('error', (error: unknown) => {
        failure ??= error;
        wake?.();
      });
      subscription.on('end', () => {
        ended = true;
        wake?.();
      });
      const feed: EsdbSubscription = {
        get caughtUp() {
          return caughtUp && queue.length === head;
        },
        async next(waitMs) {
          if (queue.length === head && failure === undefined && !ended && waitMs > 0) {
            await new Promise<void>((resolve) => {
              const timer = setTimeout(resolve, waitMs);
              wake = () => {
                clearTimeout(timer);
                resolve();
              };
            });
            wake = undefined;
          }
          if (queue.length > head) {
            const event = queue[head++]!;
            if (head > 1024 && head * 2 > queue.length) {
              queue.splice(0, head);
              head = 0;
            }
            if (paused && queue.length - head <= LOW_WATER) {
              paused = false;
              subscription.resume();
            }
            return event;
          }
          if (failure !== undefined) throw failure;
          if (ended) throw new Error('the server ended the subscription');
          return null;
        },
        async close() {
          await subscription.unsubscribe().catch(() => {});
        },
      };
      return feed;
    },
    async close() {
      await client.dispose().catch(() => {});
    },
  };
}

function toClientFilter(filter: ServerFilter): Filter {
  const filterOn = filter.on === 'stream' ? STREAM_NAME : EVENT_TYPE;
  // checkpointReached is not used: positions are taken from the events themselves.
  return filter.prefixes !== undefined
    ? { filterOn, prefixes: [...filter.prefixes], checkpointInterval: 1000 }
    : { filterOn, regex: filter.regex!, checkpointInterval: 1000 };
}

function toRecorded(resolved: AllStreamResolvedEvent): EsdbRecordedEvent | undefined {
  const event = resolved.event;
  if (event === undefined) return undefined;
  return {
    streamId: event.streamId,
    id: event.id,
    revision: event.revision,
    type: event.type,
    created: event.created,
    isJson: event.isJson,
    data: event.data,
    metadata: event.metadata,
    position: event.position,
  };
}
