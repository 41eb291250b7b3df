import type { Queryable } from '../../db/index.js';
import { type Logger, silentLogger } from '../../logger.js';
import { EVENTS_CHANNEL } from './notifier.js';

export interface WakeUp {
  /** Asks for a notification; returns at once. */
  (): void;
  /** Resolves when no notification is being sent. */
  idle(): Promise<void>;
}

/**
 * Sends the subscribers' wake-up after appends have committed, coalesced: at most one
 * NOTIFY in flight, and one more after it when appends committed meanwhile. Every
 * append that finished before a NOTIFY was sent is covered by it.
 */
export function createWakeUp(db: Queryable, logger: Logger = silentLogger, channel = EVENTS_CHANNEL): WakeUp {
  let inFlight: Promise<void> = Promise.resolve();
  let sending = false;
  let pending = false;
  const send = () => {
    pending = false;
    sending = true;
    inFlight = db
      .query('select pg_notify($1, $2)', [channel, ''])
      .then(
        () => {},
        // Subscribers still poll; a lost wake-up only delays them.
        (error: unknown) => logger.debug('could not notify subscribers', { error }),
      )
      .finally(() => {
        sending = false;
        if (pending) send();
      });
  };
  const wake = (() => {
    if (sending) pending = true;
    else send();
  }) as WakeUp;
  wake.idle = async () => {
    while (sending) await inFlight;
  };
  return wake;
}
