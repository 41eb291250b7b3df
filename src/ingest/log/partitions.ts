import { createHash } from 'node:crypto';
import type { Queryable } from '../../db/index.js';
import { ValidationError } from '../../errors.js';
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
