import { isConnectionError, type Pool } from '../../db/index.js';
import { createNotifier, formatPosition, type Position, tailVisible } from '../../ingest/index.js';
import { type Logger, silentLogger } from '../../logger.js';
import { VIEW_CHANGES_CHANNEL } from './channel.js';
import { readChanges, type ViewChange } from './readChanges.js';

export type ChangeListener = (changes: readonly ViewChange[], next: Position) => void;

/**
 * One reader of the changelog per process, shared by every subscription: woken by the
 * notification sent after each batch commits (with a polling fallback), it reads each new batch once and
 * hands it to every listener synchronously, together with the position it reached. A
 * listener attached in the same tick as it read `position` therefore misses nothing.
 */
export interface ChangeTailer {
  /** Everything before this has been dispatched (or predates the tailer). */
  readonly position: Position;
  listen(listener: ChangeListener): () => void;
  readonly listeners: number;
  /** Resolves once the first position is known. */
  ready: Promise<void>;
  close(): Promise<void>;
}

export interface ChangeTailerOptions {
  pool: Pool;
  connectionString: string;
  /** @default 1000 */
  pollIntervalMs?: number;
  /** @default 1000 */
  batchSize?: number;
  logger?: Logger;
}

export function createChangeTailer(options: ChangeTailerOptions): ChangeTailer {
  const logger = options.logger ?? silentLogger;
  const pollIntervalMs = options.pollIntervalMs ?? 1000;
  const batchSize = options.batchSize ?? 1000;
  const notifier = createNotifier(options.connectionString, VIEW_CHANGES_CHANNEL, logger);
  const listeners = new Set<ChangeListener>();
  const abort = new AbortController();
  let position: Position = formatPosition(0n, 0n);

  const ready = (async () => {
    const { rows } = await options.pool.query<{ xmin: string }>(
      'select pg_snapshot_xmin(pg_current_snapshot())::text as xmin',
    );
    position = formatPosition(rows[0]!.xmin, 0n);
  })();

  const loop = (async () => {
    await ready;
    const batches = tailVisible({
      read: async (after) => {
        const batch = await readChanges(options.pool, after, { limit: batchSize });
        return { items: batch.changes, next: batch.next, held: batch.held };
      },
      from: position,
      batchSize,
      notifier,
      pollIntervalMs,
      heldPollMaxMs: pollIntervalMs,
      signal: abort.signal,
      // One reader serves every subscriber: it keeps trying, whatever failed.
      retry: () => true,
      onRetry: (error, _at, retryInMs) =>
        logger[isConnectionError(error) ? 'warn' : 'error']('changelog read failed; retrying', {
          error,
          retryInMs,
        }),
    });
    for await (const batch of batches) {
      position = batch.next;
      if (batch.items.length === 0 && listeners.size === 0) continue;
      for (const listener of [...listeners]) {
        try {
          listener(batch.items, batch.next);
        } catch (error) {
          logger.error('change listener failed', { error });
        }
      }
    }
  })();
  loop.catch((error: unknown) => logger.error('changelog tailer stopped', { error }));

  return {
    get position() {
      return position;
    },
    get listeners() {
      return listeners.size;
    },
    ready,
    listen(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async close() {
      abort.abort();
      await loop.catch(() => {});
      await notifier.close();
      listeners.clear();
    },
  };
}
