import type { Pool } from '../db/index.js';
import { isConnectionError } from '../db/index.js';
import { ensurePartitionIndex } from '../ingest/index.js';
import type { Logger } from '../logger.js';
import { sleep } from '../sleep.js';
import { type Projection, partitionCount } from './defineProjection.js';
import {
  backOff,
  holdProjection,
  type LoopOptions,
  register,
  type UnitStatus,
  workerRetryDelay,
} from './startWorkers.js';

/**
 * Partitioned projections: each of a projection's N partitions has its own checkpoint and
 * lease (tributary.projection_partitions) and runs in whichever process holds that lease.
 * Every process able to run it (registered at its version and N) renews a heartbeat
 * (tributary.projection_workers) and aims at a fair share of the partitions,
 * ceil(N / live processes): under it, it takes free or expired partitions;
 * over it, it finishes the batch of its extra ones and frees them for others. A process that
 * dies stops renewing both, so the others' share grows and they take its partitions over once
 * the leases expire, as with an unpartitioned projection.
 */

/** Partitions held by this process across its partitioned projections, and the most it may hold. */
export interface PartitionBudget {
  held: number;
  max: number;
}

interface Held {
  stop: AbortController;
  status: UnitStatus;
  done: Promise<void>;
}

/** Says this process can run the projection, for a while: the others count it in their share. */
async function heartbeat(pool: Pool, name: string, workerId: string, leaseTimeoutMs: number): Promise<void> {
  await pool.query(
    `insert into tributary.projection_workers (name, worker_id, expires_at) values ($1, $2, now() + $3::interval)
     on conflict (name, worker_id) do update set expires_at = excluded.expires_at`,
    [name, workerId, `${leaseTimeoutMs} milliseconds`],
  );
}

/** This process no longer runs the projection: the others need not wait for its row to expire. */
async function leave(pool: Pool, name: string, workerId: string, logger: Logger): Promise<void> {
  await pool
    .query('delete from tributary.projection_workers where name = $1 and worker_id = $2', [name, workerId])
    .catch((error: unknown) => logger.warn('could not leave the projection', { error }));
}

/** Runs this process's share of a partitioned projection's partitions until stopped. */
export async function runPartitioned(
  projection: Projection,
  options: LoopOptions,
  budget: PartitionBudget,
): Promise<void> {
  const { pool, logger, signal, status } = options;
  const count = partitionCount(projection);
  const leaseTimeoutMs = options.leaseTimeoutMs ?? 10_000;
  const retryMs = Math.max(50, Math.floor(leaseTimeoutMs / 4));
  const held = new Map<number, Held>();
  // A partition whose worker failed is left alone a while (doubling), so that a persistent
  // error does not spin; another process may take it meanwhile.
  const backoff = new Map<number, { until: number; failures: number }>();
  let registered = false;
  // Partitions by stream id read through the log's partition index, built on first use.
  let indexed = projection.partitionBy !== undefined;
  let failures = 0;
  // Processes start their search at different partitions, so they rarely race for the same one.
  const offset = hashOf(options.workerId) % count;

  const release = async (partition: number) => {
    await pool
      .query(
        `update tributary.projection_partitions set lease_owner = null, lease_expires_at = null
         where name = $1 and partition = $2 and lease_owner = $3`,
        [projection.name, partition, options.workerId],
      )
      .catch((error: unknown) => logger.warn('could not release a partition', { error, partition }));
  };

  const start = (partition: number) => {
    const stop = new AbortController();
    const onAbort = () => stop.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    const unit: Held = { stop, status: {}, done: Promise.resolve() };
    budget.held++;
    unit.done = (async () => {
      const log = logger.child({ partition });
      try {
        log.info('partition lease acquired', { workerId: options.workerId });
        const outcome = await holdProjection(projection, options, leaseTimeoutMs, {
          signal: stop.signal,
          status: unit.status,
          partition,
        });
        if (outcome === 'halted') {
          status.lastError = unit.status.lastError;
          log.error('partition halted by its failure policy', { lastError: unit.status.lastError });
        } else if (outcome === 'lost') {
          log.info('partition lease lost; standing by');
        }
        backoff.delete(partition);
      } catch (error) {
        status.lastError = error instanceof Error ? error.message : String(error);
        const failures = (backoff.get(partition)?.failures ?? 0) + 1;
        const delay = workerRetryDelay(failures);
        backoff.set(partition, { until: Date.now() + delay, failures });
        if (isConnectionError(error))
          log.warn('database unavailable; partition freed', { error, retryInMs: delay });
        else log.error('partition worker error; partition freed', { error, retryInMs: delay });
      } finally {
        signal.removeEventListener('abort', onAbort);
        held.delete(partition);
        budget.held--;
        await release(partition);
      }
    })();
    held.set(partition, unit);
  };

  const report = () => {
    status.partitions = [...held.entries()]
      .sort(([a], [b]) => a - b)
      .map(([partition, unit]) => ({
        partition,
        ...(unit.status.position !== undefined ? { position: unit.status.position } : {}),
      }));
    if (registered) status.state = held.size > 0 ? 'running' : 'standby';
  };

  while (!signal.aborted) {
    try {
      if (!indexed) {
        indexed = await ensurePartitionIndex(pool, { logger, signal });
        continue;
      }
      if (!registered) {
        await stopAll(held);
        await leave(pool, projection.name, options.workerId, logger);
        registered = await register(projection, options, retryMs);
        if (!registered) continue;
      }
      await heartbeat(pool, projection.name, options.workerId, leaseTimeoutMs);
      const { rows } = await pool.query<{
        partition: number;
        version: number;
        state: string;
        owner: string | null;
        free: boolean;
        live: number;
      }>(
        `select p.partition, p.version, p.state, p.lease_owner as owner,
                (p.lease_owner is null or p.lease_expires_at < now()) as free,
                (select count(*)::int from tributary.projection_workers w
                 where w.name = p.name and w.expires_at > now()) as live
         from tributary.projection_partitions p where p.name = $1 order by p.partition`,
        [projection.name],
      );
      if (rows.length !== count || rows.some((row) => row.version !== projection.version)) {
        registered = false; // a rebuild moved it to another version or number of partitions
        continue;
      }
      failures = 0;
      const live = Math.max(1, rows[0]?.live ?? 1);
      const share = Math.ceil(count / live);
      // Over the share (a process joined): free the extra partitions, the last ones first.
      const mine = [...held.keys()].sort((a, b) => b - a);
      for (const partition of mine.slice(0, Math.max(0, held.size - share))) {
        held.get(partition)?.stop.abort();
      }
      // Under it: take free partitions while the share and the connections allow.
      for (let i = 0; i < count && held.size < share && budget.held < budget.max; i++) {
        const partition = (offset + i) % count;
        const row = rows[partition]!;
        if (held.has(partition) || row.state !== 'running' || !(row.free || row.owner === options.workerId))
          continue;
        if ((backoff.get(partition)?.until ?? 0) > Date.now()) continue;
        const { rowCount } = await pool.query(
          `update tributary.projection_partitions set lease_owner = $3, lease_expires_at = now() + $4::interval
           where name = $1 and partition = $2 and version = $5 and state = 'running'
             and (lease_owner is null or lease_owner = $3 or lease_expires_at < now())`,
          [
            projection.name,
            partition,
            options.workerId,
            `${leaseTimeoutMs} milliseconds`,
            projection.version,
          ],
        );
        if (rowCount === 1) start(partition);
      }
      report();
      // A halted partition halts the projection's progress on its keys: say so.
      if (rows.some((row) => row.state === 'failed')) status.state = 'failed';
    } catch (error) {
      failures++;
      await backOff(error, failures, options, 'partition coordinator error; retrying');
      continue;
    }
    // Often enough that a joining process gets its share soon; one query per projection.
    await sleep(Math.min(retryMs, 500), signal);
  }
  await stopAll(held);
  await leave(pool, projection.name, options.workerId, logger);
  status.partitions = [];
  status.state = 'stopped';
}

async function stopAll(held: Map<number, Held>): Promise<void> {
  const units = [...held.values()];
  for (const unit of units) unit.stop.abort();
  await Promise.allSettled(units.map((unit) => unit.done));
}

/** A small, stable number from a string (not a security hash). */
function hashOf(text: string): number {
  let hash = 0;
  for (let i = 0; i < text.length; i++) hash = (hash * 31 + text.charCodeAt(i)) >>> 0;
  return hash;
}
