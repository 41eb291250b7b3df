import type { Queryable } from '../db/index.js';
import { TributaryError } from '../errors.js';
import {
  type LogFilter,
  type LogPartition,
  type Position,
  parsePosition,
  partitionCondition,
  START,
} from '../ingest/index.js';
import { pollUntil } from '../sleep.js';
import { type Projection, partitionCount } from './defineProjection.js';

export interface ProjectionStatus {
  name: string;
  /** 'running', 'failed' (halted by the stop policy), or 'unregistered' (no worker has started it yet). */
  state: 'running' | 'failed' | 'unregistered';
  /** Version in the database (what the live views hold). */
  version: number | undefined;
  /** Version in this process's config; differs from `version` until a rebuild swaps it in. */
  configuredVersion: number | undefined;
  position: Position;
  /** Events still to apply; beyond 10,000 an estimate from positions (see `lagEstimated`). */
  lagEvents: number;
  /** `lagEvents` is estimated from log positions, not counted. */
  lagEstimated: boolean;
  /** Age of the oldest unprocessed event, in seconds (0 when caught up). */
  lagSeconds: number;
  /** Recent throughput reported by the worker holding the lease (0 when idle). */
  eventsPerSecond: number;
  eventsProcessed: number;
  /** Process holding the lease, while it is valid. */
  leaseOwner: string | undefined;
  lastError: { message: string; position?: string; eventType?: string; at?: string } | undefined;
  deadLetters: number;
  /** A rebuild in progress: its version and events done so far. */
  rebuild: { version: number; position: Position; done: number; total: number } | undefined;
  updatedAt: Date | undefined;
  /** Partitions in the database (what the checkpoints are split by); 1 when not partitioned. */
  partitionCount: number | undefined;
  /** Partitions in this process's config; differs from `partitionCount` until a rebuild. */
  configuredPartitions: number;
  /**
   * The config asks for another version or number of partitions than the database holds:
   * `tributary rebuild` moves the projection to it (workers leave it alone until then).
   */
  needsRebuild: boolean;
  /**
   * Each partition of a partitioned projection (the projection's figures then add them up: its
   * position is the lowest, its lag the sum). Undefined for a projection of one partition.
   */
  partitions: PartitionStatus[] | undefined;
}

/** One partition of a partitioned projection. */
export interface PartitionStatus {
  partition: number;
  state: 'running' | 'failed';
  position: Position;
  lagEvents: number;
  /** Estimated from positions (a long backlog, or a custom partitionBy, whose slice SQL cannot tell). */
  lagEstimated: boolean;
  lagSeconds: number;
  eventsPerSecond: number;
  eventsProcessed: number;
  /** Process holding this partition's lease, while it is valid. */
  leaseOwner: string | undefined;
  lastError: ProjectionStatus['lastError'];
}

interface PartitionRow {
  name: string;
  partition: number;
  position: string;
  state: 'running' | 'failed';
  last_error: ProjectionStatus['lastError'] | null;
  lease_owner: string | null;
  lease_valid: boolean;
  events_processed: string;
  events_per_second: number;
  fresh: boolean;
}

interface Row {
  name: string;
  version: number;
  position: string;
  state: 'running' | 'failed';
  last_error: ProjectionStatus['lastError'] | null;
  lease_owner: string | null;
  lease_valid: boolean;
  events_processed: string;
  events_per_second: number;
  updated_at: Date;
  fresh: boolean;
  partitions: number;
}

/**
 * Status of each projection, from the database (so any process can answer): state,
 * versions, checkpoint, lag in events and seconds, recent throughput, last error.
 */
export async function getProjectionStatuses(
  db: Queryable,
  projections: readonly Projection[],
): Promise<ProjectionStatus[]> {
  const names = projections.map((p) => p.name);
  const { rows } = await db.query<Row>(
    `select name, version, position, state, last_error, lease_owner,
            coalesce(lease_expires_at > now(), false) as lease_valid,
            events_processed::text, events_per_second, updated_at,
            updated_at > now() - interval '10 seconds' as fresh, partitions
     from tributary.projections where name = any ($1::text[])`,
    [names],
  );
  const { rows: partitionRows } = await db.query<PartitionRow>(
    `select name, partition, position, state, last_error, lease_owner,
            coalesce(lease_expires_at > now(), false) as lease_valid,
            events_processed::text, events_per_second,
            updated_at > now() - interval '10 seconds' as fresh
     from tributary.projection_partitions where name = any ($1::text[]) order by name, partition`,
    [names],
  );
  const { rows: rebuilds } = await db.query<{
    name: string;
    version: number;
    position: string;
    done: string;
    total: string;
  }>(
    'select name, version, position, done::text, total::text from tributary.projection_rebuilds where name = any ($1::text[])',
    [names],
  );
  const { rows: dead } = await db.query<{ projection: string; count: string }>(
    'select projection, count(*)::text as count from tributary.dead_letters where projection = any ($1::text[]) group by projection',
    [names],
  );
  const statuses: ProjectionStatus[] = [];
  for (const projection of projections) {
    const row = rows.find((r) => r.name === projection.name);
    const rebuild = rebuilds.find((r) => r.name === projection.name);
    const configuredPartitions = partitionCount(projection);
    const ownRows = partitionRows.filter((r) => r.name === projection.name);
    const partitioned = row !== undefined && row.partitions > 1 && ownRows.length === row.partitions;
    const partitions = partitioned
      ? await Promise.all(ownRows.map((r) => partitionStatus(db, projection, r, row.partitions)))
      : undefined;
    const position = partitions
      ? partitions.reduce((low, p) => (p.position < low ? p.position : low), partitions[0]!.position)
      : ((row?.position ?? START) as Position);
    const lag = partitions
      ? {
          events: partitions.reduce((sum, p) => sum + p.lagEvents, 0),
          estimated: partitions.some((p) => p.lagEstimated),
          seconds: Math.max(...partitions.map((p) => p.lagSeconds)),
        }
      : await measureLag(db, position, projection.filter);
    const owners = partitions
      ? [...new Set(partitions.flatMap((p) => (p.leaseOwner ? [p.leaseOwner] : [])))]
      : undefined;
    const failed = partitions?.find((p) => p.state === 'failed');
    statuses.push({
      name: projection.name,
      state: failed ? 'failed' : (row?.state ?? 'unregistered'),
      version: row?.version,
      configuredVersion: projection.version,
      position,
      lagEvents: lag.events,
      lagEstimated: lag.estimated,
      lagSeconds: lag.seconds,
      eventsPerSecond: partitions
        ? partitions.reduce((sum, p) => sum + p.eventsPerSecond, 0)
        : row?.fresh
          ? Math.round(row.events_per_second)
          : 0,
      // A partitioned projection's rebuild counted its events on the projection's row.
      eventsProcessed:
        Number(row?.events_processed ?? 0) +
        (partitions?.reduce((sum, p) => sum + p.eventsProcessed, 0) ?? 0),
      leaseOwner: owners
        ? owners.join(', ') || undefined
        : row?.lease_valid
          ? (row.lease_owner ?? undefined)
          : undefined,
      lastError: failed?.lastError ?? row?.last_error ?? undefined,
      deadLetters: Number(dead.find((d) => d.projection === projection.name)?.count ?? 0),
      rebuild: rebuild
        ? {
            version: rebuild.version,
            position: rebuild.position as Position,
            done: Number(rebuild.done),
            total: Number(rebuild.total),
          }
        : undefined,
      updatedAt: row?.updated_at,
      partitionCount: row?.partitions,
      configuredPartitions,
      needsRebuild:
        row !== undefined &&
        (row.version < projection.version ||
          (row.version === projection.version && row.partitions !== configuredPartitions)),
      partitions,
    });
  }
  return statuses;
}

async function partitionStatus(
  db: Queryable,
  projection: Projection,
  row: PartitionRow,
  count: number,
): Promise<PartitionStatus> {
  const position = row.position as Position;
  // A custom partition key is not known to SQL: the lag is the projection's, shared evenly.
  const lag = projection.partitionBy
    ? await measureLag(db, position, projection.filter).then((whole) => ({
        events: Math.round(whole.events / count),
        seconds: whole.seconds,
        estimated: true,
      }))
    : await measureLag(db, position, projection.filter, { index: row.partition, count });
  return {
    partition: row.partition,
    state: row.state,
    position,
    lagEvents: lag.events,
    lagEstimated: lag.estimated,
    lagSeconds: lag.seconds,
    eventsPerSecond: row.fresh ? Math.round(row.events_per_second) : 0,
    eventsProcessed: Number(row.events_processed),
    leaseOwner: row.lease_valid ? (row.lease_owner ?? undefined) : undefined,
    lastError: row.last_error ?? undefined,
  };
}

/** Past this many events behind, the lag is estimated from positions instead of counted. */
const EXACT_LAG_UP_TO = 10_000;

/**
 * Events after `from` that `filter` selects, below the visibility bound, and the age of the
 * oldest. Cheap whatever the backlog: at most EXACT_LAG_UP_TO events are read (in position
 * order, so the oldest is among them); a longer backlog is estimated from the positions
 * (events appended since `from`, scaled by the share the filter selected in what was read),
 * and `estimated` says so.
 */
export async function measureLag(
  db: Queryable,
  from: Position,
  filter: LogFilter | undefined,
  partition?: LogPartition,
): Promise<{ events: number; seconds: number; estimated: boolean }> {
  const { transactionId, globalPosition } = parsePosition(from);
  const params: unknown[] = [transactionId.toString(), globalPosition.toString(), EXACT_LAG_UP_TO + 1];
  // One partition's events: the stream falls in one of its buckets.
  const inPartition = partition ? ` and ${partitionCondition(partition, 'e.stream_id')}` : '';
  const wanted = filterSql(filter, params) + inPartition;
  const { rows } = await db.query<{
    scanned: number;
    events: number;
    seconds: number | null;
    last: string | null;
  }>(
    `with ahead as (
       select e.recorded_at, ${wanted} as wanted
       from tributary.events e
       where (e.transaction_id, e.global_position) > ($1::xid8, $2::bigint)
         and e.transaction_id < pg_snapshot_xmin(pg_current_snapshot())
       order by e.transaction_id, e.global_position
       limit $3
     )
     select count(*)::int as scanned, count(*) filter (where wanted)::int as events,
            extract(epoch from now() - min(recorded_at) filter (where wanted))::float8 as seconds,
            pg_sequence_last_value(pg_get_serial_sequence('tributary.events', 'global_position'))::text as last
     from ahead`,
    params,
  );
  const row = rows[0]!;
  const seconds = Math.max(0, Math.round(row.seconds ?? 0));
  if (row.scanned <= EXACT_LAG_UP_TO) return { events: row.events, seconds, estimated: false };
  const appended = Number(BigInt(row.last ?? '0') - globalPosition);
  return { events: Math.round(appended * (row.events / row.scanned)), seconds, estimated: true };
}

/** A SQL boolean for "the event `e` is one `filter` selects" (true for no filter). */
function filterSql(filter: LogFilter | undefined, params: unknown[]): string {
  const clauses: string[] = [];
  const typeClauses: string[] = [];
  if (filter?.types?.length) {
    params.push(filter.types);
    typeClauses.push(`e.type = any ($${params.length}::text[])`);
  }
  if (filter?.typePrefixes?.length) {
    params.push(filter.typePrefixes);
    typeClauses.push(
      `exists (select 1 from unnest($${params.length}::text[]) p where starts_with(e.type, p))`,
    );
  }
  if (typeClauses.length) clauses.push(`(${typeClauses.join(' or ')})`);
  if (filter?.streamPrefixes?.length) {
    params.push(filter.streamPrefixes);
    clauses.push(
      `exists (select 1 from unnest($${params.length}::text[]) p where starts_with(e.stream_id, p))`,
    );
  }
  return clauses.length ? clauses.join(' and ') : 'true';
}

/** Events visible after `from` for `filter`, counted exactly (a rebuild's total, once). */
export async function countEventsAfter(
  db: Queryable,
  from: Position,
  filter: LogFilter | undefined,
): Promise<number> {
  const { transactionId, globalPosition } = parsePosition(from);
  const params: unknown[] = [transactionId.toString(), globalPosition.toString()];
  const wanted = filterSql(filter, params);
  const { rows } = await db.query<{ events: string }>(
    `select count(*)::text as events from tributary.events e
     where (e.transaction_id, e.global_position) > ($1::xid8, $2::bigint)
       and e.transaction_id < pg_snapshot_xmin(pg_current_snapshot())
       and ${wanted}`,
    params,
  );
  return Number(rows[0]?.events ?? 0);
}

export const READ_YOUR_WRITES_TIMEOUT = 'READ_YOUR_WRITES_TIMEOUT';

/**
 * Waits until every named projection (every registered one when `names` is undefined) has
 * a checkpoint at or past `position`.
 */
export async function waitForProjections(
  pool: Queryable,
  names: readonly string[] | undefined,
  position: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<void> {
  let behind: string[] = [];
  const reached = await pollUntil(
    async () => {
      const { rows } = await pool.query<{ name: string; position: string }>(
        // A partitioned projection is as far as its slowest partition.
        `select p.name, coalesce(
                  (select min(q.position) from tributary.projection_partitions q where q.name = p.name and p.partitions > 1),
                  p.position) as position
         from tributary.projections p ${names ? 'where p.name = any ($1::text[])' : ''}`,
        names ? [names] : [],
      );
      const missing = names ? names.filter((name) => !rows.some((row) => row.name === name)) : [];
      behind = [...rows.filter((row) => row.position < position).map((row) => row.name), ...missing];
      return rows.length > 0 && behind.length === 0;
    },
    { deadline: Date.now() + timeoutMs, maxDelayMs: 100, signal },
  );
  if (!reached) {
    throw new TributaryError(
      READ_YOUR_WRITES_TIMEOUT,
      `Projections had not reached position '${position}' after ${timeoutMs} ms (behind: ${behind.join(', ') || 'none registered'}).`,
      { hint: 'Retry the query later, or check `projections` for a stopped or failing projection.' },
    );
  }
}
