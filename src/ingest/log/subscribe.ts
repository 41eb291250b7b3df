import { isConnectionError, type Queryable } from '../../db/index.js';
import { ValidationError } from '../../errors.js';
import { type Logger, silentLogger } from '../../logger.js';
import type { Notifier } from './notifier.js';
import { type Position, parsePosition, START } from './position.js';
import { readAll } from './readAll.js';
import { validateLimit } from './readStream.js';
import type { Envelope, SubscribeOptions, Subscription } from './types.js';
import { tailVisible } from './visible.js';

/**
 * Catch-up, then live. Pull-based: a batch is read only when the consumer has taken
 * the previous one, so a slow consumer never makes the store buffer more than one
 * batch. A lost connection is retried with backoff from the subscription's own
 * position, so nothing is skipped or repeated.
 */
export function subscribe(
  db: Queryable,
  notifier: Notifier,
  from: Position = START,
  options: SubscribeOptions = {},
  logger: Logger = silentLogger,
): Subscription {
  // Bad arguments fail here, not at the first pull.
  parsePosition(from);
  const batchSize = validateLimit(options.batchSize ?? 500);
  const pollIntervalMs = options.pollIntervalMs ?? 1000;
  if (!(pollIntervalMs > 0)) {
    throw new ValidationError(`pollIntervalMs must be a positive number, got ${pollIntervalMs}.`, {
      field: 'pollIntervalMs',
    });
  }
  // While an older transaction holds committed events back, its commit may notify nobody.
  const heldPollMaxMs = Math.min(pollIntervalMs, options.heldPollIntervalMs ?? 100);
  const abort = new AbortController();
  if (options.signal?.aborted) abort.abort();
  else options.signal?.addEventListener('abort', () => abort.abort(), { once: true });
  let position = from;
  notifier.start();

  async function* events(): AsyncGenerator<Envelope> {
    const batches = tailVisible({
      read: async (after) => {
        const batch = await readAll(db, after, { limit: batchSize, filter: options.filter });
        return { items: batch.events, next: batch.next, held: batch.held };
      },
      from: position,
      batchSize,
      notifier,
      pollIntervalMs,
      heldPollMaxMs,
      signal: abort.signal,
      retry: isConnectionError,
      onRetry: (error, at, retryInMs) =>
        logger.warn('log read failed; retrying from the last position', { position: at, error, retryInMs }),
    });
    for await (const batch of batches) {
      for (const event of batch.items) {
        if (abort.signal.aborted) return;
        position = event.position;
        yield event;
      }
      position = batch.next;
    }
  }

  const iterator = events();
  return {
    get position() {
      return position;
    },
    [Symbol.asyncIterator]: () => iterator,
    async close() {
      abort.abort();
      await iterator.return(undefined);
    },
  };
}
