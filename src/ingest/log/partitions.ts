import { createHash } from 'node:crypto';
import type { Pool, Queryable } from '../../db/index.js';
import { ValidationError } from '../../errors.js';
import { type Logger, silentLogger } from '../../logger.js';
import { sleep } from '../../sleep.js';
import { ENVELOPE_COLUMNS, type EventRow, toEnvelope } from './envelope.js';
import { type Position, START } from './position.js';
import { compileLogFilter } from './readAll.js';
import { validateLimit } from './readStream.js';
import type { LogFilter, ReadAllResult } from './types.js';
import { readVisible } from './visible.js';

/**
 * Streams fall in this many buckets; partition p of N holds the buckets b with b % N = p.
 * The log's index (migration 0025) orders each bucket by position.
 */
export const PARTITION_BUCKETS = 64;

/** The most partitions a projection can have: one bucket each. */
export const MAX_PARTITIONS = PARTITION_BUCKETS;

/** One partition of N. */
export interface LogPartition {
  /** 0 to count - 1. */
  index: number;
  count: number;
}

/**
 * The bucket of a key: the first byte of its MD5, modulo 64. The same as SQL
 * `tributary.partition_bucket(key)` (UTF-8 database), which the log's index is built on.
 */
export function partitionBucket(key: string): number {
  return createHash('md5').update(key, 'utf8').digest()[0]! % PARTITION_BUCKETS;
}

/** The partition of N that a key falls in. */
export function partitionOf(key: string, count: number): number {
  return partitionBucket(key) % count;
}

export function validatePartition(partition: LogPartition): LogPartition {
  const { index, count } = partition;
  if (!Number.isInteger(count) || count < 1 || count > MAX_PARTITIONS) {
    throw new ValidationError(`${String(count)} partitions: use an integer from 1 to ${MAX_PARTITIONS}.`, {
      field: 'partitions',
    });
  }
  if (!Number.isInteger(index) || index < 0 || index >= count) {
    throw new ValidationError(`Partition ${String(index)} does not exist among ${count}.`, {
      field: 'partition',
      hint: `Partitions are numbered 0 to ${count - 1}.`,
    });
  }
  return partition;
}

/** The buckets of one partition. */
export function partitionBuckets(partition: LogPartition): number[] {
  const buckets: number[] = [];
  for (let bucket = partition.index; bucket < PARTITION_BUCKETS; bucket += partition.count)
    buckets.push(bucket);
  return buckets;
}

/** A SQL condition: the stream id in `column` falls in `partition` (for a scan that reads every event anyway). */
export function partitionCondition(partition: LogPartition, column: string): string {
  const { index, count } = validatePartition(partition);
  return `tributary.partition_bucket(${column}) % ${count} = ${index}`;
}

/** The condition (on the events alias `r`) for each bucket of a partition, one scan each. */
export function partitionBranches(partition: LogPartition): string[] {
  return partitionBuckets(validatePartition(partition)).map(
    (bucket) => `and tributary.partition_bucket(r.stream_id) = ${bucket}`,
  );
}

export interface ReadPartitionOptions {
  /** @default 1000 */
  limit?: number;
  filter?: LogFilter;
  partition: LogPartition;
}

/**
 * Like readAll, restricted to the streams of one partition: the events after `from` in
 * position order, only those of transactions below the snapshot's xmin (the same rule, the
 * same function). `next` can be past the last event returned, as with readAll.
 */
export async function readPartition(
  db: Queryable,
  from: Position = START,
  options: ReadPartitionOptions,
): Promise<ReadAllResult> {
  const limit = validateLimit(options.limit ?? 1000);
  const { rows, next, held } = await readVisible<EventRow>(
    db,
    from,
    { table: 'tributary.events', sequence: 'global_position', columns: ENVELOPE_COLUMNS },
    {
      limit,
      where: (params) => compileLogFilter(options.filter, params),
      branches: partitionBranches(options.partition),
    },
  );
  return { events: rows.map(toEnvelope), next, held };
}

/** The log's index by partition bucket, which `readPartition` reads through. */
export const PARTITION_INDEX = 'events_partition_idx';

/** Serializes the builds of the partition index across processes (a session advisory lock). */
const PARTITION_INDEX_LOCK = 0x7472_6970; // 'trip'

/**
 * Makes sure the log has its partition index, building it (`CREATE INDEX CONCURRENTLY`, so
 * appends go on meanwhile) when it is missing or a build that died left it invalid. Only
 * partitioned projections read through it, so only they pay for it: a log whose projections
 * are not partitioned keeps appends free of it. One process builds it while the others poll
 * (a session lock taken with `pg_try_advisory_lock`: a statement left waiting for the lock
 * would hold a snapshot the concurrent build must wait for). The build logs its progress.
 * Resolves false when `signal` aborted first.
 */
export async function ensurePartitionIndex(
  pool: Pool,
  options: { logger?: Logger; signal?: AbortSignal; pollMs?: number } = {},
): Promise<boolean> {
  const logger = options.logger ?? silentLogger;
  const pollMs = options.pollMs ?? 500;
  let waiting = false;
  while (!options.signal?.aborted) {
    if ((await partitionIndexState(pool)) === 'valid') return true;
    const client = await pool.connect();
    let locked = false;
    try {
      const { rows } = await client.query<{ locked: boolean }>('select pg_try_advisory_lock($1) as locked', [
        PARTITION_INDEX_LOCK,
      ]);
      locked = rows[0]!.locked;
      if (locked) {
        const state = await partitionIndexState(client);
        if (state === 'valid') return true;
        await buildPartitionIndex(client, pool, state === 'invalid', logger);
        return true;
      }
    } finally {
      if (locked) await client.query('select pg_advisory_unlock($1)', [PARTITION_INDEX_LOCK]).catch(() => {});
      client.release();
    }
    if (!waiting) logger.info('waiting for another process to build the log partition index');
    waiting = true;
    await sleep(pollMs, options.signal);
  }
  return false;
}

/** Whether the partition index is there and usable ('invalid': a concurrent build that died). */
export async function partitionIndexState(db: Queryable): Promise<'valid' | 'invalid' | 'missing'> {
  const { rows } = await db.query<{ valid: boolean }>(
    `select i.indisvalid and i.indisready as valid from pg_index i
     where i.indexrelid = to_regclass('tributary.${PARTITION_INDEX}')`,
  );
  if (rows.length === 0) return 'missing';
  return rows[0]!.valid ? 'valid' : 'invalid';
}

async function buildPartitionIndex(
  client: Queryable,
  pool: Pool,
  invalid: boolean,
  logger: Logger,
): Promise<void> {
  if (invalid) {
    logger.warn('dropping an invalid log partition index left by an interrupted build');
    await client.query(`drop index concurrently if exists tributary.${PARTITION_INDEX}`);
  }
  const started = Date.now();
  logger.info('building the log partition index (once per database, while appends go on)');
  const { rows } = await client.query<{ pid: number }>('select pg_backend_pid() as pid');
  const pid = rows[0]!.pid;
  const progress = setInterval(() => {
    pool
      .query<{ phase: string; blocks_done: string; blocks_total: string }>(
        'select phase, blocks_done, blocks_total from pg_stat_progress_create_index where pid = $1',
        [pid],
      )
      .then(({ rows: [row] }) => {
        if (!row) return;
        const total = Number(row.blocks_total);
        logger.info('building the log partition index', {
          phase: row.phase,
          ...(total > 0 ? { percent: Math.floor((100 * Number(row.blocks_done)) / total) } : {}),
          elapsedMs: Date.now() - started,
        });
      })
      .catch(() => {});
  }, 5000);
  try {
    await client.query(
      `create index concurrently ${PARTITION_INDEX} on tributary.events
         (tributary.partition_bucket(stream_id), transaction_id, global_position)`,
    );
  } finally {
    clearInterval(progress);
  }
  logger.info('log partition index built', { elapsedMs: Date.now() - started });
}
