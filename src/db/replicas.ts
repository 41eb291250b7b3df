import { type Logger, silentLogger } from '../logger.js';
import { closePool, createPool, isConnectionError, type Pool } from './pool.js';

/** Where reads may go besides the primary, and how far behind a replica may be. */
export interface ReplicaOptions {
  /** Hot-standby replicas (streaming replication from the primary). */
  urls: readonly string[];
  /** A replica more than this many bytes of WAL behind the primary is not used. @default 16 MiB */
  maxLagBytes?: number;
  /** How often each replica's lag is measured. @default 1000 */
  checkIntervalMs?: number;
  /**
   * A read-your-writes query waits this long for a replica to replay the commit it needs,
   * then reads the primary instead. @default 1000
   */
  waitMs?: number;
  /** @default 8 per replica */
  poolSize?: number;
  logger?: Logger;
}

export interface ReplicaStatus {
  url: string;
  healthy: boolean;
  /** Bytes of WAL the replica has yet to replay, at the last check. */
  lagBytes: number | null;
  /** Replay paused on the replica (pg_wal_replay_pause). */
  paused: boolean;
  lastError: string | null;
}

/**
 * Routes reads to hot-standby replicas, keeping read-your-writes: a read that must see a
 * commit waits until a replica has replayed past the primary's WAL position taken after that
 * commit (`pg_last_wal_replay_lsn()` on the replica), or falls back to the primary. A replica
 * that lags beyond the bound, or fails, is taken out of rotation until it is healthy again;
 * a read that fails on a replica with a connection error is run again on the primary.
 */
export interface ReadRouter {
  /**
   * Runs `read` on a replica when one is healthy (and, with `afterCommit`, has replayed
   * what it needs within the wait), else on the primary.
   */
  read<T>(read: (db: Pool) => Promise<T>, options?: { afterCommit?: () => Promise<void> }): Promise<T>;
  status(): ReplicaStatus[];
  close(): Promise<void>;
}

interface Replica extends ReplicaStatus {
  pool: Pool;
  replayed: bigint | null;
}

/** A router that always reads the primary: what an API without replicas uses. */
export function primaryOnly(primary: Pool): ReadRouter {
  return {
    read: async (read, options) => {
      await options?.afterCommit?.();
      return read(primary);
    },
    status: () => [],
    close: async () => {},
  };
}

/** The router reads go through: over the replicas when there are any, else `primaryOnly`. */
export function readRouterFor(primary: Pool, options: ReplicaOptions | undefined): ReadRouter {
  return options?.urls.length ? createReadRouter(primary, options) : primaryOnly(primary);
}

export function createReadRouter(primary: Pool, options: ReplicaOptions): ReadRouter {
  const logger = options.logger ?? silentLogger;
  const maxLagBytes = BigInt(options.maxLagBytes ?? 16 * 1024 * 1024);
  const waitMs = options.waitMs ?? 1000;
  const replicas: Replica[] = options.urls.map((url) => ({
    url,
    pool: createPool(url, { max: options.poolSize ?? 8, applicationName: 'tributary-replica-reads', logger }),
    healthy: false,
    lagBytes: null,
    paused: false,
    lastError: null,
    replayed: null,
  }));
  let next = 0;
  let closed = false;

  const check = async (replica: Replica, primaryLsn: bigint | undefined) => {
    try {
      const { rows } = await replica.pool.query<{
        standby: boolean;
        replayed: string | null;
        paused: boolean;
      }>(
        `select pg_is_in_recovery() as standby, pg_last_wal_replay_lsn()::text as replayed,
                case when pg_is_in_recovery() then pg_is_wal_replay_paused() else false end as paused`,
      );
      const row = rows[0]!;
      if (!row.standby || row.replayed === null) throw new Error('not a hot standby in recovery');
      replica.replayed = parseLsn(row.replayed);
      replica.paused = row.paused;
      const lag = primaryLsn === undefined ? null : primaryLsn - replica.replayed;
      replica.lagBytes = lag === null ? null : Number(lag > 0n ? lag : 0n);
      const healthy = lag !== null && lag <= maxLagBytes;
      if (healthy !== replica.healthy) {
        logger[healthy ? 'info' : 'warn'](
          healthy ? 'replica in rotation' : 'replica out of rotation: lagging',
          {
            replica: redact(replica.url),
            lagBytes: replica.lagBytes,
          },
        );
      }
      replica.healthy = healthy;
      replica.lastError = null;
    } catch (error) {
      fail(replica, error);
    }
  };
  const fail = (replica: Replica, error: unknown) => {
    if (replica.healthy) {
      logger.warn('replica out of rotation: it failed', { replica: redact(replica.url), error });
    }
    replica.healthy = false;
    replica.lastError = error instanceof Error ? error.message : String(error);
  };
  const checkAll = async () => {
    const primaryLsn = await currentLsn(primary).catch(() => undefined);
    await Promise.all(replicas.map((replica) => check(replica, primaryLsn)));
  };
  const timer = setInterval(() => {
    void checkAll();
  }, options.checkIntervalMs ?? 1000);
  timer.unref();
  const first = checkAll();

  const choose = (): Replica | undefined => {
    for (let i = 0; i < replicas.length; i++) {
      const replica = replicas[(next + i) % replicas.length]!;
      if (replica.healthy) {
        next = (next + i + 1) % replicas.length;
        return replica;
      }
    }
    return undefined;
  };

  /** Waits until the replica has replayed up to `lsn`, for at most waitMs; false if it did not. */
  const caughtUp = async (replica: Replica, lsn: bigint): Promise<boolean> => {
    const deadline = Date.now() + waitMs;
    let delay = 2;
    for (;;) {
      const { rows } = await replica.pool.query<{ replayed: string | null }>(
        'select pg_last_wal_replay_lsn()::text as replayed',
      );
      const replayed = rows[0]?.replayed;
      if (replayed && parseLsn(replayed) >= lsn) return true;
      if (Date.now() + delay > deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 50);
    }
  };

  return {
    async read(read, readOptions = {}) {
      await first;
      let lsn: bigint | undefined;
      if (readOptions.afterCommit) {
        // The commit is on the primary once this returns; the WAL position taken after it covers it.
        await readOptions.afterCommit();
        lsn = await currentLsn(primary);
      }
      const replica = closed ? undefined : choose();
      if (replica) {
        try {
          if (lsn === undefined || (await caughtUp(replica, lsn))) return await read(replica.pool);
        } catch (error) {
          if (!isConnectionError(error)) throw error;
          fail(replica, error);
        }
      }
      return read(primary);
    },
    status: () =>
      replicas.map(({ url, healthy, lagBytes, paused, lastError }) => ({
        url: redact(url),
        healthy,
        lagBytes,
        paused,
        lastError,
      })),
    async close() {
      closed = true;
      clearInterval(timer);
      await first.catch(() => {});
      await Promise.all(replicas.map((replica) => closePool(replica.pool).catch(() => {})));
    },
  };
}

async function currentLsn(db: Pool): Promise<bigint> {
  const { rows } = await db.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn');
  return parseLsn(rows[0]!.lsn);
}

/** `16/B374D848` → its 64-bit position. */
export function parseLsn(text: string): bigint {
  const [high, low] = text.split('/');
  return (BigInt(`0x${high}`) << 32n) | BigInt(`0x${low}`);
}

/** A connection string without its password, for logs and status. */
function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return 'replica';
  }
}
