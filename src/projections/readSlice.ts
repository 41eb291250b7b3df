import type { Queryable } from '../db/index.js';
import {
  type Envelope,
  type LogPartition,
  type Position,
  partitionOf,
  type ReadAllResult,
  readAll,
  readPartition,
} from '../ingest/index.js';
import type { Projection } from './defineProjection.js';

/** A page of the events a projection (or one of its partitions) applies. */
export interface Slice extends ReadAllResult {
  /** Events read from the log for it: more than `events` when the process filtered them. */
  scanned: number;
}

/**
 * The next page of what a projection applies after `from`: the log through its filter, or one
 * partition's slice. Partitioned by stream id, the log's bucket index gives the slice; by a
 * custom key, the page is read whole and filtered here (a full read per partition). Either
 * way the visibility rule is the log's, and `next` moves past what was read.
 */
export async function readSlice(
  db: Queryable,
  projection: Projection,
  partition: LogPartition | undefined,
  from: Position,
  limit: number,
): Promise<Slice> {
  const filter = projection.filter ? { filter: projection.filter } : {};
  if (partition === undefined) {
    const page = await readAll(db, from, { limit, ...filter });
    return { ...page, scanned: page.events.length };
  }
  if (projection.partitionBy === undefined) {
    const page = await readPartition(db, from, { limit, partition, ...filter });
    return { ...page, scanned: page.events.length };
  }
  const page = await readAll(db, from, { limit, ...filter });
  return {
    ...page,
    events: page.events.filter(
      (event) => partitionOfEnvelope(projection, event, partition.count) === partition.index,
    ),
    scanned: page.events.length,
  };
}

/** The partition of `count` that an envelope falls in, by the projection's partition key. */
export function partitionOfEnvelope(projection: Projection, envelope: Envelope, count: number): number {
  return partitionOf(projection.partitionBy ? projection.partitionBy(envelope) : envelope.streamId, count);
}
