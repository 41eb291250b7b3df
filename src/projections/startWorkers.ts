import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import {
  closePool,
  connectGuarded,
  createPool,
  isConnectionError,
  type Pool,
  type PoolClient,
} from '../db/index.js';
import { createNotifier, createWakeUp, type Notifier, type Position, type WakeUp } from '../ingest/index.js';
import { type Logger, silentLogger } from '../logger.js';
import type { Metrics } from '../observability/index.js';
import { createRate } from '../rate.js';
import { sleep } from '../sleep.js';
import { VIEW_CHANGES_CHANNEL } from './changelog/index.js';
import { type Clock, systemClock } from './clock.js';
import { type Projection, partitionCount, validateProjections } from './defineProjection.js';
import { acquireLease, releaseLease } from './leases.js';
import { observeBatch } from './observeBatch.js';
import { runPartitioned } from './partitions.js';
import { ensureViewTables } from './registry.js';
import { DEFAULT_CACHE_BYTES } from './rowCache.js';
import {
  type BatchResult,
  type CheckpointTarget,
  runBatch,
  runTimerBatch,
  type WorkerMemory,
} from './runBatch.js';
import { DEFAULT_VIEW_SCHEMA } from './view.js';

export interface RunnerOptions {
  /** Events per batch transaction, at most. @default 1000 */
  batchSize?: number;
  /** Time spent handling one batch before it commits, at most. @default 500 */
  batchMaxMs?: number;
  /** A lease not renewed for this long may be taken over by another process. @default 10000 */
  leaseTimeoutMs?: number;
  /** Polling fallback when no notification arrives. @default 1000 */
  pollIntervalMs?: number;
  /** Schema of the view tables. @default 'tributary_views' */
  viewSchema?: string;
  /**
   * Memory each projection's row cache may use, in bytes; the least recently used rows go
   * first past it. A partitioned projection's partitions each get 1/N of it.
   * @default 268435456 (256 MiB)
   */
  cacheBytes?: number;
  /**
   * Partitions of partitioned projections this process holds at most, all projections together
   * (each one held takes a connection, and another while it reads ahead).
   * @default what the pool leaves: (max connections - 2 - 2 per unpartitioned projection) / 2, at least 1
   */
  maxPartitions?: number;
}

export interface StartWorkersOptions extends RunnerOptions {
  /** PostgreSQL connection string (also used for LISTEN). */
  url: string;
  projections: readonly Projection[];
  /** Use this pool instead of creating one (it is then not closed by `stop()`). */
  pool?: Pool;
  logger?: Logger;
  /** Processing time for timers. @default systemClock */
  clock?: Clock;
  /** Identifies this process in leases. @default `<host>:<pid>:<random>` */
  workerId?: string;
  /** Records batch and commit durations, events applied and the pool's usage (`tributary_projection_*`). */
  metrics?: Metrics;
  /** Called after each committed batch that applied events (metrics, latency measurements). */
  onCommit?: (info: { projection: string; position: Position; events: number }) => void;
  /**
   * Clear the 'failed' state of these projections on start (a restart after fixing
   * the handler resumes them). @default true
   */
  resumeFailed?: boolean;
}

export type WorkerState =
  | 'starting'
  | 'running'
  | 'standby'
  | 'failed'
  | 'needs-rebuild'
  | 'outdated'
  | 'stopped';

export interface WorkerStatus {
  projection: string;
  state: WorkerState;
  position?: Position;
  lastError?: string;
  /** A partitioned projection: the partitions this process runs, with their checkpoints. */
  partitions?: Array<{ partition: number; position?: Position }>;
}

export interface Workers {
  readonly workerId: string;
  /** What each projection is doing in this process. */
  status(): WorkerStatus[];
  /**
   * Finishes each running batch and releases the leases. A batch still running after
   * `timeoutMs` is abandoned: its connection is closed, so it rolls back.
   * @default timeoutMs 30000
   */
  stop(options?: { timeoutMs?: number }): Promise<void>;
}

/**
 * Runs the projections in this process. Each one runs here only while this process
 * holds its lease; otherwise it stands by and takes over when the lease expires.
 */
export function startWorkers(options: StartWorkersOptions): Workers {
  validateProjections(options.projections);
  const logger = options.logger ?? silentLogger;
  const ownsPool = options.pool === undefined;
  const pool =
    options.pool ??
    createPool(options.url, {
      // Two connections per running unit (a projection, or a partition), while they fit.
      max: Math.min(
        2 * options.projections.reduce((sum, projection) => sum + partitionCount(projection), 0) + 2,
        30,
      ),
      applicationName: 'tributary-projections',
      logger,
    });
  const notifier = createNotifier(options.url, undefined, logger);
  // Changelog readers are woken after each commit, coalesced, outside the batch transactions.
  const wakeChanges = createWakeUp(pool, logger, VIEW_CHANGES_CHANNEL);
  const untrackPool = options.metrics?.trackPool('projections', pool);
  const workerId = options.workerId ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const abort = new AbortController();
  const active = new Set<PoolClient>();
  const statuses = new Map<string, WorkerStatus>();
  for (const projection of options.projections) {
    statuses.set(projection.name, { projection: projection.name, state: 'starting' });
  }
  const partitioned = options.projections.filter((projection) => partitionCount(projection) > 1);
  const unpartitioned = options.projections.length - partitioned.length;
  const budget = {
    held: 0,
    max:
      options.maxPartitions ??
      Math.max(1, Math.floor(((pool.options.max ?? 10) - 2 - 2 * unpartitioned) / 2)),
  };
  const loops = options.projections.map((projection) => {
    const loopOptions: LoopOptions = {
      ...options,
      pool,
      notifier,
      wakeChanges,
      logger: logger.child({ projection: projection.name }),
      workerId,
      signal: abort.signal,
      active,
      status: statuses.get(projection.name)!,
    };
    return partitionCount(projection) > 1
      ? runPartitioned(projection, loopOptions, budget)
      : runProjection(projection, loopOptions);
  });
  const done = Promise.allSettled(loops);
  let stopping: Promise<void> | undefined;

  return {
    workerId,
    status: () => [...statuses.values()].map((status) => ({ ...status })),
    stop({ timeoutMs = 30_000 } = {}) {
      stopping ??= (async () => {
        abort.abort();
        let timer: NodeJS.Timeout | undefined;
        const timedOut = await Promise.race([
          done.then(() => false),
          new Promise<boolean>((resolve) => {
            timer = setTimeout(() => resolve(true), timeoutMs);
          }),
        ]);
        clearTimeout(timer);
        if (timedOut) {
          // Closing the connections rolls the open transactions back. A handler that never
          // returns cannot be interrupted: it is left behind, and fails on its dead connection.
          logger.warn('abandoning running batches', { timeoutMs });
          for (const client of active) client.release(new Error('worker stopping'));
          active.clear();
          await Promise.race([done, new Promise((resolve) => setTimeout(resolve, 1000).unref())]);
          // Their connections are gone, so they can commit nothing more: free the leases now.
          await pool
            .query(
              'update tributary.projections set lease_owner = null, lease_expires_at = null where lease_owner = $1',
              [workerId],
            )
            .catch((error: unknown) => logger.warn('could not release the leases', { error }));
          await pool
            .query(
              'update tributary.projection_partitions set lease_owner = null, lease_expires_at = null where lease_owner = $1',
              [workerId],
            )
            .catch((error: unknown) => logger.warn('could not release the partitions', { error }));
        }
        // Abandoned loops could not leave their projections' worker lists: leave them here.
        if (partitioned.length > 0) {
          await pool
            .query('delete from tributary.projection_workers where worker_id = $1', [workerId])
            .catch(() => {});
        }
        await notifier.close();
        await wakeChanges.idle();
        untrackPool?.();
        if (ownsPool) await closePool(pool);
      })();
      return stopping;
    },
  };
}

export interface LoopOptions extends StartWorkersOptions {
  pool: Pool;
  notifier: Notifier;
  wakeChanges: WakeUp;
  logger: Logger;
  workerId: string;
  signal: AbortSignal;
  active: Set<PoolClient>;
  status: WorkerStatus;
}

/**
 * Creates the projection's views and registers it, or reports (status, log) why it cannot run
 * here and waits a while: true when it is ready to run.
 */
export async function register(
  projection: Projection,
  options: LoopOptions,
  retryMs: number,
): Promise<boolean> {
  const { pool, logger, status, signal } = options;
  const result = await ensureViewTables(pool, [projection], {
    schema: options.viewSchema ?? DEFAULT_VIEW_SCHEMA,
  });
  const registration = result.get(projection.name);
  if (registration !== 'ready') {
    if (status.state !== registration) {
      logger.warn(
        registration === 'needs-rebuild'
          ? `projection '${projection.name}' is at an older version (or another number of partitions) in the database; run \`tributary rebuild ${projection.name}\``
          : `the database holds a newer version of projection '${projection.name}'; this process leaves it alone`,
        { version: projection.version },
      );
    }
    status.state = registration ?? 'failed';
    await sleep(Math.max(retryMs, 1000), signal);
    return false;
  }
  if (options.resumeFailed !== false) {
    await pool.query(
      `update tributary.projections set state = 'running' where name = $1 and state = 'failed'`,
      [projection.name],
    );
    await pool.query(
      `update tributary.projection_partitions set state = 'running' where name = $1 and state = 'failed'`,
      [projection.name],
    );
  }
  return true;
}

/** The wait before the next try of a worker loop after its `failures`-th failure in a row. */
export function workerRetryDelay(failures: number): number {
  return Math.min(100 * 2 ** failures, 5000);
}

/**
 * After a failed round of a worker loop: logs the error (a lost database is a warning; anything
 * else is recorded for status, and a changed definition fails the projection), then waits.
 */
export async function backOff(
  error: unknown,
  failures: number,
  options: Pick<LoopOptions, 'logger' | 'signal' | 'status'>,
  message: string,
): Promise<void> {
  const { logger, status } = options;
  const delay = workerRetryDelay(failures);
  if (isConnectionError(error)) {
    logger.warn('database unavailable; retrying', { error, retryInMs: delay });
  } else {
    status.lastError = error instanceof Error ? error.message : String(error);
    logger.error(message, { error, retryInMs: delay });
    if ((error as { code?: string }).code === 'PROJECTION_DEFINITION_CHANGED') status.state = 'failed';
  }
  await sleep(delay, options.signal);
}

async function runProjection(projection: Projection, options: LoopOptions): Promise<void> {
  const { pool, logger, signal, status } = options;
  const leaseTimeoutMs = options.leaseTimeoutMs ?? 10_000;
  const retryMs = Math.max(50, Math.floor(leaseTimeoutMs / 4));
  let registered = false;
  let failures = 0;
  while (!signal.aborted) {
    try {
      if (!registered) {
        registered = await register(projection, options, retryMs);
        if (!registered) continue;
      }
      const acquired = await acquireLease(pool, 'live', projection.name, options.workerId, leaseTimeoutMs, {
        version: projection.version,
      });
      if (!acquired) {
        const { rows } = await pool.query<{
          state: string;
          version: number;
          last_error: { message?: string } | null;
        }>('select state, version, last_error from tributary.projections where name = $1', [projection.name]);
        const row = rows[0];
        if (row && row.version !== projection.version) {
          registered = false; // a rebuild moved it to another version
          continue;
        }
        status.state = row?.state === 'failed' ? 'failed' : 'standby';
        if (row?.last_error?.message) status.lastError = row.last_error.message;
        await sleep(retryMs, signal);
        continue;
      }
      logger.info('projection lease acquired', { workerId: options.workerId });
      status.state = 'running';
      const outcome = await holdProjection(projection, options, leaseTimeoutMs);
      failures = 0;
      if (outcome === 'halted') {
        status.state = 'failed';
        logger.error('projection halted by its failure policy', { lastError: status.lastError });
      } else if (outcome === 'lost') {
        logger.info('projection lease lost or projection changed; standing by');
        status.state = 'standby';
        registered = false;
      }
    } catch (error) {
      failures++;
      await backOff(error, failures, options, 'projection worker error; retrying');
    }
  }
  await releaseLease(pool, 'live', projection.name, options.workerId).catch(() => {});
  status.state = 'stopped';
}

/** What one running unit (a projection, or one partition of it) reports while it runs. */
export interface UnitStatus {
  position?: Position;
  lastError?: string | undefined;
}

/**
 * Runs the projection (or one partition of it: `partition`) while this process holds its
 * lease, until the lease is lost, the failure policy halts it, or `signal` stops it.
 */
export async function holdProjection(
  projection: Projection,
  options: LoopOptions,
  leaseTimeoutMs: number,
  unit: { signal: AbortSignal; status: UnitStatus; partition?: number } = {
    signal: options.signal,
    status: options.status,
  },
): Promise<'lost' | 'halted' | 'stopped'> {
  const { pool, notifier } = options;
  const { signal, status } = unit;
  const clock = options.clock ?? systemClock;
  const pollIntervalMs = Math.min(options.pollIntervalMs ?? 1000, Math.floor(leaseTimeoutMs / 3));
  const target: CheckpointTarget = {
    kind: 'live',
    projection,
    owner: options.workerId,
    schema: options.viewSchema ?? DEFAULT_VIEW_SCHEMA,
    leaseTimeoutMs,
    ...(unit.partition !== undefined
      ? { partition: { index: unit.partition, count: partitionCount(projection) } }
      : {}),
  };
  const memory: WorkerMemory = {
    cache: new Map(),
    failures: new Map(),
    // A partition's cache gets its share of the projection's, so N partitions in one process
    // use no more memory than the projection would.
    ...(unit.partition !== undefined
      ? { cacheBytes: Math.floor((options.cacheBytes ?? DEFAULT_CACHE_BYTES) / partitionCount(projection)) }
      : options.cacheBytes !== undefined
        ? { cacheBytes: options.cacheBytes }
        : {}),
    ...(projection.onTimer ? { nextTimer: clock.now() } : {}),
  };
  const client = await connectGuarded(pool);
  options.active.add(client);
  let broken = false;
  const rate = createRate();
  try {
    let lastCommit = Date.now();
    let heldDelayMs = 2;
    while (!signal.aborted) {
      // Taken before the read: a notification arriving after the read still wakes the wait below.
      const seen = notifier.generation;
      const batchOptions = {
        batchSize: options.batchSize ?? 1000,
        batchMaxMs: options.batchMaxMs ?? 500,
        now: clock.now(),
        renew: Date.now() - lastCommit > leaseTimeoutMs / 3,
        readAhead: pool,
        onChanges: options.wakeChanges,
        eventsPerSecond: rate.value(),
      };
      const timer = projection.onTimer !== undefined && memory.nextTimer && clock.now() >= memory.nextTimer;
      const result: BatchResult = await observeBatch(projection.name, options.metrics, () =>
        (timer ? runTimerBatch : runBatch)(client, target, memory, batchOptions),
      );
      if (result.kind === 'lost') return 'lost';
      if (result.committed) {
        lastCommit = Date.now();
        if (result.applied > 0) {
          options.onCommit?.({
            projection: projection.name,
            position: result.position,
            events: result.applied,
          });
        }
      }
      rate.add(result.applied);
      status.position = result.position;
      if (result.halted) {
        const { rows } = await client.query<{ last_error: { message?: string } | null }>(
          unit.partition === undefined
            ? 'select last_error from tributary.projections where name = $1'
            : 'select last_error from tributary.projection_partitions where name = $1 and partition = $2',
          unit.partition === undefined ? [projection.name] : [projection.name, unit.partition],
        );
        status.lastError = rows[0]?.last_error?.message;
        return 'halted';
      }
      if (result.retryAfterMs !== undefined) {
        const failure = [...memory.failures.values()].at(-1);
        options.logger.warn('handler failed; retrying', {
          error: failure?.error,
          attempts: failure?.attempts,
          retryInMs: result.retryAfterMs,
        });
        await sleep(result.retryAfterMs, signal);
        continue;
      }
      if (!result.caughtUp) {
        heldDelayMs = 2;
        continue;
      }
      if (result.held) {
        // Committed events wait behind an older open transaction, which may never notify: poll soon.
        await sleep(heldDelayMs, signal);
        heldDelayMs = Math.min(heldDelayMs * 2, pollIntervalMs);
        continue;
      }
      heldDelayMs = 2;
      await waitForWork(notifier, clock, memory.nextTimer, pollIntervalMs, signal, seen);
    }
    return 'stopped';
  } catch (error) {
    broken = true;
    throw error;
  } finally {
    options.active.delete(client);
    try {
      client.release(broken ? true : undefined);
    } catch {
      // already released by an abandoning stop()
    }
  }
}

/** Until a notification (since `since`), the timer, the poll interval, or stop, whichever comes first. */
async function waitForWork(
  notifier: Notifier,
  clock: Clock,
  timer: Date | undefined,
  pollIntervalMs: number,
  signal: AbortSignal,
  since: number,
): Promise<void> {
  const local = new AbortController();
  const onAbort = () => local.abort();
  signal.addEventListener('abort', onAbort, { once: true });
  const waits = [notifier.wait(pollIntervalMs, local.signal, since)];
  if (timer) waits.push(clock.sleepUntil(timer, local.signal));
  await Promise.race(waits);
  local.abort();
  signal.removeEventListener('abort', onAbort);
}
