import { isConnectionError, type Pool } from '../db/index.js';
import { createNotifier, formatPosition, type Position } from '../ingest/index.js';
import { type Logger, silentLogger } from '../logger.js';
import { VIEW_CHANGES_CHANNEL } from '../projections/index.js';
import { sleep } from '../sleep.js';
import { readChanges, type ViewChange } from './readChanges.js';

export { VIEW_CHANGES_CHANNEL };

export type ChangeListener = (changes: readonly ViewChange[], next: Position) => void;

/**
 * One reader of the changelog per process, shared by every subscription: woken by the
 * NOTIFY of migration 0005 (with a polling fallback), it reads each new batch once and
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
    let failures = 0;
    let heldDelayMs = 2;
    while (!abort.signal.aborted) {
      // Registered before the read, so a notification that arrives during it is not lost.
      const woken = notifier.wait(pollIntervalMs, abort.signal);
      let batch: Awaited<ReturnType<typeof readChanges>>;
      try {
        batch = await readChanges(options.pool, position, { limit: batchSize });
        failures = 0;
      } catch (error) {
        if (abort.signal.aborted) return;
        const delay = Math.min(100 * 2 ** failures++, 5000);
        logger[isConnectionError(error) ? 'warn' : 'error']('changelog read failed; retrying', {
          error,
          retryInMs: delay,
        });
        await sleep(delay, abort.signal);
        continue;
      }
      position = batch.next;
      if (batch.changes.length > 0 || listeners.size > 0) {
        for (const listener of [...listeners]) {
          try {
            listener(batch.changes, batch.next);
          } catch (error) {
            logger.error('change listener failed', { error });
          }
        }
      }
      if (batch.changes.length === batchSize) continue;
      if (batch.held) {
        await sleep(heldDelayMs, abort.signal);
        heldDelayMs = Math.min(heldDelayMs * 2, pollIntervalMs);
        continue;
      }
      heldDelayMs = 2;
      await woken;
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
