import pg from 'pg';
import { type Logger, silentLogger } from '../../logger.js';

export const EVENTS_CHANNEL = 'tributary_events';

/**
 * One LISTEN connection shared by every subscriber of a store. It reconnects with
 * backoff when the connection drops and wakes everyone on reconnect, since
 * notifications sent while it was away are lost (subscribers then re-read).
 *
 * Wake-ups are counted, so none is lost between a subscriber's read and its wait:
 * a subscriber takes `generation` before reading and waits for it to change.
 */
export interface Notifier {
  /** Count of notifications (and reconnects) so far. */
  readonly generation: number;
  /**
   * Resolves at the next notification, after `timeoutMs`, or when `signal` aborts. With
   * `since` (a `generation` taken earlier), resolves at once if a notification came since.
   * Starts listening if not yet done.
   */
  wait(timeoutMs: number, signal?: AbortSignal, since?: number): Promise<void>;
  /** Starts listening now, so that a first wait does not miss what happens meanwhile. */
  start(): void;
  close(): Promise<void>;
}

export function createNotifier(
  connectionString: string,
  channel = EVENTS_CHANNEL,
  logger: Logger = silentLogger,
): Notifier {
  const waiters = new Set<() => void>();
  let generation = 0;
  let client: pg.Client | undefined;
  let connecting: Promise<void> | undefined;
  let closed = false;
  let backoffMs = 100;

  const wakeAll = () => {
    generation++;
    for (const wake of [...waiters]) wake();
  };

  const connect = (): Promise<void> => {
    connecting ??= (async () => {
      while (!closed) {
        const next = new pg.Client({
          connectionString,
          application_name: 'tributary-listen',
          keepAlive: true,
        });
        let lost = false;
        next.on('error', (error) => {
          lost = true;
          logger.warn('notification connection lost; reconnecting', { channel, error });
          drop(next);
        });
        next.on('end', () => {
          lost = true;
          drop(next);
        });
        try {
          await next.connect();
          next.on('notification', wakeAll);
          await next.query(`listen ${channel}`);
          if (lost) throw new Error('notification connection ended while starting');
          if (closed) {
            await next.end().catch(() => {});
            return;
          }
          client = next;
          backoffMs = 100;
          // Whatever was notified while no connection listened is lost: everyone re-reads.
          wakeAll();
          return;
        } catch (error) {
          next.removeAllListeners();
          next.on('error', () => {});
          await next.end().catch(() => {});
          if (closed) return;
          logger.warn('cannot listen for notifications yet; subscribers poll meanwhile', {
            channel,
            error,
            retryInMs: backoffMs,
          });
          await new Promise((resolve) => setTimeout(resolve, backoffMs).unref());
          backoffMs = Math.min(backoffMs * 2, 5000);
        }
      }
    })().finally(() => {
      connecting = undefined;
    });
    return connecting;
  };

  const drop = (dead: pg.Client) => {
    if (client !== dead) return;
    client = undefined;
    dead.removeAllListeners();
    dead.on('error', () => {});
    void dead.end().catch(() => {});
    if (!closed) void connect();
  };

  const start = () => {
    if (!client && !connecting && !closed) void connect();
  };

  return {
    get generation() {
      return generation;
    },
    start,
    wait(timeoutMs, signal, since) {
      start();
      if ((since !== undefined && generation !== since) || closed || signal?.aborted)
        return Promise.resolve();
      return new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          waiters.delete(done);
          signal?.removeEventListener('abort', done);
          resolve();
        };
        const timer = setTimeout(done, timeoutMs);
        waiters.add(done);
        signal?.addEventListener('abort', done, { once: true });
      });
    },
    async close() {
      closed = true;
      wakeAll();
      await connecting?.catch(() => {});
      const current = client;
      client = undefined;
      if (current) {
        current.removeAllListeners();
        current.on('error', () => {});
        await current.end().catch(() => {});
      }
    },
  };
}
