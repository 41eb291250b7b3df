import pg from 'pg';
import type { Logger } from '../logger.js';

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;
export type Queryable = Pick<pg.ClientBase, 'query'>;

export interface PoolOptions {
  /** @default 10 */
  max?: number;
  /** Name shown in pg_stat_activity. @default 'tributary' */
  applicationName?: string;
  logger?: Logger;
}

/**
 * A connection pool. bigint and numeric stay strings (pg's default), so no value
 * loses precision on its way through Tributary.
 */
export function createPool(connectionString: string, options: PoolOptions = {}): Pool {
  const pool = new pg.Pool({
    connectionString,
    max: options.max ?? 10,
    application_name: options.applicationName ?? 'tributary',
    idleTimeoutMillis: 30_000,
    // Notices a connection that died silently (no RST) instead of waiting on it forever.
    keepAlive: true,
  });
  // An idle client losing its connection must not crash the process; the next checkout reconnects.
  pool.on('error', (error) => options.logger?.warn('idle database connection lost', { error }));
  // Its connections, for closePool to wait on.
  const open = new Set<pg.PoolClient>();
  openConnections.set(pool, open);
  pool.on('connect', (client) => {
    // Nor may a checked-out client that loses its connection between two queries (a terminated
    // backend, a restart): its next query fails, and the pool drops it when it is released.
    client.on('error', (error) => options.logger?.debug('database connection lost', { error }));
    open.add(client);
    client.once('end', () => open.delete(client));
  });
  return pool;
}

/** The connections of each pool made by `createPool`, from connected until their socket closed. */
const openConnections = new WeakMap<pg.Pool, Set<pg.PoolClient>>();

/**
 * Ends `pool` and resolves once every one of its connections has closed, not merely been
 * asked to. `pool.end()` resolves as soon as its clients are told to end, while their
 * backends may still be connected: a database dropped or a server stopped right after would
 * see them, and a pool without an error listener would crash its process on the termination.
 * Waits at most `timeoutMs` for connections that do not close (a server gone silent). A pool
 * not made by `createPool` is only ended.
 */
export async function closePool(pool: pg.Pool, { timeoutMs = 5000 } = {}): Promise<void> {
  if (pool.ending) return;
  // Resolves once checked-out clients are released and connection attempts have settled, so
  // every connection the pool made is in `open` by then (attempts that failed never are).
  await pool.end();
  const open = openConnections.get(pool);
  if (!open || open.size === 0) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.all([...open].map((client) => new Promise((resolve) => client.once('end', resolve)))),
    new Promise((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    }),
  ]);
  clearTimeout(timer);
}

/** Pooled clients that already have the error listener `connectGuarded` adds. */
const guarded = new WeakSet<pg.PoolClient>();

/**
 * A client from `pool` that a lost connection cannot crash the process through: the running
 * query fails instead. The listener is added once per pooled client, not per checkout (a
 * client checked out again and again would pile them up, past Node's warning at eleven).
 */
export async function connectGuarded(pool: Pool): Promise<PoolClient> {
  const client = await pool.connect();
  if (!guarded.has(client)) {
    guarded.add(client);
    client.on('error', () => {});
  }
  return client;
}

/** Runs `fn` in a transaction on a pooled client: COMMIT on success, ROLLBACK on any error. */
export async function withTransaction<T>(pool: Pool, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query('begin');
    const result = await fn(client);
    await client.query('commit');
    return result;
  } catch (error) {
    // A client whose rollback fails is in an unknown state: destroy it rather than pool it.
    await client.query('rollback').catch((rollbackError: Error) => {
      broken = rollbackError;
    });
    throw error;
  } finally {
    client.release(broken);
  }
}

/** True for errors that mean the connection (not the statement) failed, so a retry may succeed. */
export function isConnectionError(error: unknown): boolean {
  const code = (error as { code?: string } | null)?.code;
  if (typeof code === 'string') {
    // 08: connection exception; 57P01-57P03: admin shutdown, crash shutdown, cannot connect now
    if (code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03') return true;
    if (['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH'].includes(code))
      return true;
  }
  const message = error instanceof Error ? error.message : '';
  return /Connection terminated|connection is closed|Client has encountered a connection error|not queryable/i.test(
    message,
  );
}
