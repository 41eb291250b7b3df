import pg from 'pg';
import { type Logger, silentLogger } from '../../logger.js';

export const EVENTS_CHANNEL = 'tributary_events';

/**
 * One LISTEN connection shared by every subscriber of a store. It reconnects with
 * backoff when the connection drops and wakes everyone on reconnect, since
 * notifications sent while it was away are lost (subscribers then re-read).
 */
export interface Notifier {
  /** Resolves at the next notification, after `timeoutMs`, or when `signal` aborts. */
  wait(timeoutMs: number, signal?: AbortSignal): Promise<void>;
  close(): Promise<void>;
}

export function createNotifier(
  connectionString: string,
  channel = EVENTS_CHANNEL,
  logger: Logger = silentLogger,
): Notifier {
  const waiters = new Set<() => void>();
  let client: pg.Client | undefined;
  let connecting: Promise<void> | undefined;
  let closed = false;
  let backoffMs = 100;

  const wakeAll = () => {
    for (const wake of [...waiters]) wake();
  };

  const connect = (): Promise<void> => {
    connecting ??= (async () => {
      while (!closed) {
        const next = new pg.Client({ connectionString, application_name: 'tributary-listen' });
        try {
          await next.connect();
          next.on('notification', wakeAll);
          next.on('error', (error) => {
            logger.warn('notification connection lost; reconnecting', { channel, error });
            drop(next);
          });
          next.on('end', () => drop(next));
          await next.query(`listen ${channel}`);
          client = next;
          backoffMs = 100;
          wakeAll();
          return;
        } catch (error) {
          next.removeAllListeners();
          await next.end().catch(() => {});
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

  return {
    wait(timeoutMs, signal) {
      if (!client && !connecting && !closed) void connect();
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
      const current = client;
      client = undefined;
      await connecting?.catch(() => {});
      if (current) {
        current.removeAllListeners();
        current.on('error', () => {});
        await current.end().catch(() => {});
      }
    },
  };
}
