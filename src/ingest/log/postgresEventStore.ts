import { closePool, createPool, type Pool } from '../../db/index.js';
import { type Logger, silentLogger } from '../../logger.js';
import { appendToStream } from './appendToStream.js';
import { createNotifier } from './notifier.js';
import { readAll, readHead } from './readAll.js';
import { readStream } from './readStream.js';
import { retryStreamOrder } from './streamOrder.js';
import { subscribe } from './subscribe.js';
import type { EventStore } from './types.js';
import type { LimitOptions } from './validation.js';
import { createWakeUp } from './wakeSubscribers.js';

export interface PostgresEventStoreOptions extends LimitOptions {
  connectionString: string;
  /** Use this pool instead of creating one (it is then not closed by `close()`). */
  pool?: Pool;
  /** @default 10 */
  poolSize?: number;
  logger?: Logger;
}

/** The log on PostgreSQL (tables from migrations/0001_log.sql). */
export function createPostgresEventStore(options: PostgresEventStoreOptions): EventStore & { pool: Pool } {
  const logger = options.logger ?? silentLogger;
  const ownsPool = options.pool === undefined;
  const pool =
    options.pool ??
    createPool(options.connectionString, {
      max: options.poolSize ?? 10,
      applicationName: 'tributary-log',
      logger,
    });
  const notifier = createNotifier(options.connectionString, undefined, logger);
  const subscriptions = new Set<{ close(): Promise<void> }>();
  // Its own connection: a wake-up never waits for, nor holds, a pooled connection appends need.
  const wakePool = createPool(options.connectionString, {
    max: 1,
    applicationName: 'tributary-notify',
    logger,
  });
  const wakeUp = createWakeUp(wakePool, logger);

  return {
    pool,
    async append(streamId, events, appendOptions) {
      // Each attempt is its own transaction, so a refusal by the stream-order rule is retried.
      const result = await retryStreamOrder(() =>
        appendToStream(pool, streamId, events, appendOptions, options, false),
      );
      if (result.appended) wakeUp();
      return result;
    },
    readStream: (streamId, readOptions) => readStream(pool, streamId, readOptions),
    readAll: (from, readOptions) => readAll(pool, from, readOptions),
    head: () => readHead(pool),
    subscribe(from, subscribeOptions) {
      const subscription = subscribe(pool, notifier, from, subscribeOptions, logger);
      subscriptions.add(subscription);
      const close = subscription.close;
      subscription.close = async () => {
        subscriptions.delete(subscription);
        await close();
      };
      return subscription;
    },
    async close() {
      await Promise.all([...subscriptions].map((s) => s.close()));
      await notifier.close();
      await wakeUp.idle();
      await closePool(wakePool);
      if (ownsPool) await closePool(pool);
    },
  };
}
