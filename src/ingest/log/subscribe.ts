import { isConnectionError, type Queryable } from '../../db/index.js';
import { ValidationError } from '../../errors.js';
import { type Logger, silentLogger } from '../../logger.js';
import { sleep } from '../../sleep.js';
import type { Notifier } from './notifier.js';
import { type Position, parsePosition, START } from './position.js';
import { readAll } from './readAll.js';
import { validateLimit } from './readStream.js';
import type { Envelope, SubscribeOptions, Subscription } from './types.js';

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
    let failures = 0;
    let heldDelayMs = 2;
    while (!abort.signal.aborted) {
      let batch: Awaited<ReturnType<typeof readAll>>;
      // Taken before the read: a notification arriving during it makes the wait below return at once.
      const generation = notifier.generation;
      try {
        batch = await readAll(db, position, { limit: batchSize, filter: options.filter });
        failures = 0;
      } catch (error) {
        if (!isConnectionError(error)) throw error;
        const delay = Math.min(100 * 2 ** failures++, 5000);
        logger.warn('log read failed; retrying from the last position', {
          position,
          error,
          retryInMs: delay,
        });
        await sleep(delay, abort.signal);
        continue;
      }
      for (const event of batch.events) {
        if (abort.signal.aborted) return;
        position = event.position;
        yield event;
      }
      position = batch.next;
      if (batch.events.length === batchSize) continue;
      if (batch.held) {
        // Committed events wait on an older open transaction, which may never notify: poll soon.
        await sleep(heldDelayMs, abort.signal);
        heldDelayMs = Math.min(heldDelayMs * 2, heldPollMaxMs);
        continue;
      }
      heldDelayMs = 2;
      await notifier.wait(pollIntervalMs, abort.signal, generation);
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
