import { createPool, type Pool } from '../../db/index.js';
import { type Logger, silentLogger } from '../../logger.js';
import { appendToStream } from './appendToStream.js';
import { createNotifier } from './notifier.js';
import { readAll, readHead } from './readAll.js';
import { readStream } from './readStream.js';
import { subscribe } from './subscribe.js';
import type { EventStore } from './types.js';
import type { LimitOptions } from './validation.js';

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

  return {
    pool,
    append: (streamId, events, appendOptions) =>
      appendToStream(pool, streamId, events, appendOptions, options),
    readStream: (streamId, readOptions) => readStream(pool, streamId, readOptions),
    readAll: (from, readOptions) => readAll(pool, from, readOptions),
    head: () => readHead(pool),
    subscribe(from, subscribeOptions) {
      const subscription = subscribe(pool, notifier, from, subscribeOptions, logger);
      subscriptions.add(subscription);
      return subscription;
    },
    async close() {
      await Promise.all([...subscriptions].map((s) => s.close()));
      await notifier.close();
      if (ownsPool) await pool.end();
    },
  };
}
