import type { Queryable } from '../db/index.js';
import { TributaryError } from '../errors.js';
import { type LogFilter, type Position, parsePosition, START } from '../ingest/index.js';
import { pollUntil } from '../sleep.js';
import type { Projection } from './defineProjection.js';

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
            updated_at > now() - interval '10 seconds' as fresh
     from tributary.projections where name = any ($1::text[])`,
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
    const position = (row?.position ?? START) as Position;
    const lag = await measureLag(db, position, projection.filter);
    const rebuild = rebuilds.find((r) => r.name === projection.name);
    statuses.push({
      name: projection.name,
      state: row?.state ?? 'unregistered',
      version: row?.version,
      configuredVersion: projection.version,
      position,
      lagEvents: lag.events,
      lagEstimated: lag.estimated,
      lagSeconds: lag.seconds,
      eventsPerSecond: row?.fresh ? Math.round(row.events_per_second) : 0,
      eventsProcessed: Number(row?.events_processed ?? 0),
      leaseOwner: row?.lease_valid ? (row.lease_owner ?? undefined) : undefined,
      lastError: row?.last_error ?? undefined,
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
    });
  }
  return statuses;
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
): Promise<{ events: number; seconds: number; estimated: boolean }> {
  const { transactionId, globalPosition } = parsePosition(from);
  const params: unknown[] = [transactionId.toString(), globalPosition.toString(), EXACT_LAG_UP_TO + 1];
  const wanted = filterSql(filter, params);
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
        names
          ? 'select name, position from tributary.projections where name = any ($1::text[])'
          : 'select name, position from tributary.projections',
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
