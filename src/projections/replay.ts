import { randomUUID } from 'node:crypto';
import { connectGuarded, type Pool } from '../db/index.js';
import { ValidationError } from '../errors.js';
import { type Envelope, formatPosition, isPosition, type Position, readAll } from '../ingest/index.js';
import { type Logger, silentLogger } from '../logger.js';
import { sleep } from '../sleep.js';
import { applyEnvelopes, type FailureMemory } from './applyEnvelopes.js';
import { type Projection, partitionCount } from './defineProjection.js';
import { ProjectionFailedError, ProjectionHandlerError, ReplayNotSafeError } from './errors.js';
import { acquireLease, releaseLease } from './leases.js';
import { partitionOfEnvelope } from './readSlice.js';
import type { Progress } from './rebuild.js';
import { countEventsAfter } from './status.js';
import { DEFAULT_VIEW_SCHEMA } from './view.js';
import { createViewWriter } from './viewWriter.js';

export interface ReplayOptions {
  pool: Pool;
  projection: Projection;
  /** A log position, or a time: the first event recorded at or after it. */
  from: Position | Date;
  viewSchema?: string;
  /** @default 1000 */
  batchSize?: number;
  /** @default 10000 */
  leaseTimeoutMs?: number;
  /**
   * Replay a projection that does not declare `replay: 'idempotent'` (see
   * `ProjectionDefinition.replay`); without it such a replay is refused with a
   * ReplayNotSafeError. @default false
   */
  force?: boolean;
  onProgress?: (progress: Progress) => void;
  logger?: Logger;
}

export interface ReplayResult {
  events: number;
  /** The worker process whose lease the replay took over, if one was running the projection. */
  tookOverFrom: string | undefined;
}

/** The position just before the first event recorded at or after `time`. */
export async function positionAtTime(pool: Pool, time: Date): Promise<Position> {
  if (Number.isNaN(time.getTime()))
    throw new ValidationError('The replay time is not a valid date.', { field: 'from' });
  const { rows } = await pool.query<{ xid: string; gp: string }>(
    `select transaction_id::text as xid, global_position::text as gp from tributary.events
     where recorded_at >= $1 and transaction_id < pg_snapshot_xmin(pg_current_snapshot())
     order by transaction_id, global_position limit 1`,
    [time],
  );
  const first = rows[0];
  if (!first) {
    const { rows: head } = await pool.query<{ xmin: string }>(
      'select pg_snapshot_xmin(pg_current_snapshot())::text as xmin',
    );
    return formatPosition(head[0]!.xmin, 0n);
  }
  return formatPosition(first.xid, BigInt(first.gp) - 1n);
}

/**
 * Re-delivers the events after `from` up to the projection's checkpoint to its
 * handler (with `ctx.replaying` true), writing the live views. For projections whose
 * effects are idempotent, e.g. to push a sink again after a fix. The projection is
 * taken over for the duration (its worker stands by) and its checkpoint is unchanged.
 */
export async function replayProjection(options: ReplayOptions): Promise<ReplayResult> {
  const { pool, projection } = options;
  if (projection.sql) {
    throw new ValidationError(
      `Projection '${projection.name}' is written in SQL: it has no handler to re-deliver events to.`,
      {
        field: 'projection',
        hint: `Run \`tributary rebuild ${projection.name}\` to recompute its views from the log.`,
      },
    );
  }
  if (projection.replay !== 'idempotent' && options.force !== true) {
    throw new ReplayNotSafeError(projection.name, projection.replay);
  }
  const logger = options.logger ?? silentLogger;
  const leaseTimeoutMs = options.leaseTimeoutMs ?? 10_000;
  let from: Position;
  if (options.from instanceof Date) from = await positionAtTime(pool, options.from);
  else if (isPosition(options.from)) from = options.from;
  else
    throw new ValidationError(`'${String(options.from)}' is neither a log position nor a time.`, {
      field: 'from',
    });

  const owner = `replay:${randomUUID().slice(0, 8)}`;
  const count = partitionCount(projection);
  const partitioned = count > 1;
  const client = await connectGuarded(pool);
  let leased = false;
  try {
    const tookOverFrom = await takeOver(pool, projection, owner, leaseTimeoutMs);
    leased = true;
    if (tookOverFrom) logger.info('took the projection over from its worker', { worker: tookOverFrom });
    // Partitioned, each partition is replayed up to its own checkpoint.
    const { rows } = await client.query<{ position: string }>(
      partitioned
        ? 'select position from tributary.projection_partitions where name = $1 order by partition'
        : 'select position from tributary.projections where name = $1',
      [projection.name],
    );
    const limits = rows.map((row) => row.position as Position);
    const until = limits.reduce((high, limit) => (limit > high ? limit : high));
    const applies = (event: Envelope) =>
      event.position <= (partitioned ? limits[partitionOfEnvelope(projection, event, count)]! : until);
    const total = from < until ? await countBetween(pool, projection, from, until) : 0;
    let position = from;
    let done = 0;
    logger.info('replay started', { projection: projection.name, from, until, total });
    while (position < until) {
      await client.query('begin');
      try {
        // The projection's row first, then its views: the order every writer of them follows.
        const held = await client.query(
          partitioned
            ? 'select 1 from tributary.projection_partitions where name = $1 and lease_owner = $2 order by partition for no key update'
            : 'select 1 from tributary.projections where name = $1 and lease_owner = $2 for no key update',
          [projection.name, owner],
        );
        if (held.rowCount !== count)
          throw new ProjectionFailedError(
            `Projection '${projection.name}' was taken over during the replay.`,
          );
        const page = await readAll(client, position, {
          limit: options.batchSize ?? 1000,
          ...(projection.filter ? { filter: projection.filter } : {}),
        });
        const events = page.events.filter(applies);
        const writer = createViewWriter({
          client,
          projection: projection.name,
          views: projection.views,
          schema: options.viewSchema ?? DEFAULT_VIEW_SCHEMA,
          cache: new Map(),
          replaying: true,
          ...(partitioned ? { partitioned: true } : {}),
        });
        // Each event once: the failure policy applies at the first failure (stop ends the replay).
        const failures: FailureMemory = new Map();
        const result = await applyEnvelopes(events, {
          projection,
          client,
          writer,
          failures,
          from: position,
          now: new Date(),
          readNext: page.next,
          maxAttempts: 1,
        });
        const failed = result.halt ?? (result.rollback ? firstFailure(events, failures) : undefined);
        if (failed) {
          throw new ProjectionHandlerError(
            projection.name,
            failed.envelope.position,
            failed.envelope.type,
            failed.error,
          );
        }
        await writer.flush();
        const renewed = await client.query(
          `update ${partitioned ? 'tributary.projection_partitions' : 'tributary.projections'}
           set generation = generation + 1, lease_expires_at = now() + $3::interval
           where name = $1 and lease_owner = $2`,
          [projection.name, owner, `${leaseTimeoutMs} milliseconds`],
        );
        if (renewed.rowCount !== count)
          throw new ProjectionFailedError(
            `Projection '${projection.name}' was taken over during the replay.`,
          );
        await client.query('commit');
        done += events.length;
        position =
          page.events.some((event) => event.position > until) || page.next > until ? until : page.next;
        options.onProgress?.({ done, total: Math.max(total, done), position });
        if (page.events.length === 0 && page.next === position && position < until) await sleep(20);
      } catch (error) {
        await client.query('rollback').catch(() => {});
        throw error;
      }
    }
    options.onProgress?.({ done, total: done, position: until });
    return { events: done, tookOverFrom };
  } finally {
    client.release();
    if (leased) {
      await releaseLease(pool, 'live', projection.name, owner).catch(() => {});
      await pool
        .query(
          'update tributary.projection_partitions set lease_owner = null, lease_expires_at = null where name = $1 and lease_owner = $2',
          [projection.name, owner],
        )
        .catch(() => {});
    }
  }
}

/**
 * Takes the projection's lease for the replay. A worker holding it loses it at once (its
 * next commit fails its compare-and-set, and it stands by until the replay releases it):
 * waiting for a lease the worker keeps renewing would only delay the replay by the lease
 * timeout. Another replay or rebuild holding it is not interrupted.
 */
async function takeOver(
  pool: Pool,
  projection: Projection,
  owner: string,
  leaseTimeoutMs: number,
): Promise<string | undefined> {
  const { rows } = await pool.query<{ holder: string | null; live: boolean }>(
    `select lease_owner as holder, lease_expires_at > now() as live from tributary.projections
     where name = $1 and version = $2 and state = 'running'`,
    [projection.name, projection.version],
  );
  const row = rows[0];
  if (!row) {
    throw new ProjectionFailedError(
      `Projection '${projection.name}' is not running at version ${projection.version}.`,
      { hint: 'Check `tributary status`: it may need a rebuild or be halted.' },
    );
  }
  const holder = row.live ? (row.holder ?? undefined) : undefined;
  if (holder && /^(replay|rebuild):/.test(holder)) {
    throw new ProjectionFailedError(`Projection '${projection.name}' is busy: ${holder} holds it.`, {
      hint: 'Wait for the other replay or rebuild to finish, then run the command again.',
    });
  }
  const taken = await acquireLease(pool, 'live', projection.name, owner, leaseTimeoutMs, {
    version: projection.version,
    force: true,
  });
  if (!taken) {
    throw new ProjectionFailedError(
      `Projection '${projection.name}' is not running at version ${projection.version}.`,
      { hint: 'Check `tributary status`: it may need a rebuild or be halted.' },
    );
  }
  const count = partitionCount(projection);
  if (count === 1) return holder;
  // Partitioned: every partition is taken over from whichever process holds it.
  const { rows: partitions } = await pool.query<{ holder: string | null }>(
    `with previous as (
       select partition, case when lease_expires_at > now() then lease_owner end as holder
       from tributary.projection_partitions where name = $1 for update
     )
     update tributary.projection_partitions p
     set lease_owner = $3, lease_expires_at = now() + $4::interval
     from previous
     where p.name = $1 and p.partition = previous.partition and p.version = $2 and p.state = 'running'
     returning previous.holder`,
    [projection.name, projection.version, owner, `${leaseTimeoutMs} milliseconds`],
  );
  if (partitions.length !== count) {
    await releaseLease(pool, 'live', projection.name, owner);
    await pool.query(
      'update tributary.projection_partitions set lease_owner = null, lease_expires_at = null where name = $1 and lease_owner = $2',
      [projection.name, owner],
    );
    throw new ProjectionFailedError(
      `Projection '${projection.name}' does not have its ${count} partitions running at version ${projection.version}.`,
      { hint: 'Check `tributary status`: a partition may be halted, or the projection may need a rebuild.' },
    );
  }
  const holders = [...new Set(partitions.flatMap((row) => (row.holder ? [row.holder] : [])))];
  return holders.length > 0 ? holders.join(', ') : holder;
}

async function countBetween(
  pool: Pool,
  projection: Projection,
  from: Position,
  until: Position,
): Promise<number> {
  return (
    (await countEventsAfter(pool, from, projection.filter)) -
    (await countEventsAfter(pool, until, projection.filter))
  );
}

/** The first envelope of a batch that failed, with its error. */
function firstFailure(
  envelopes: readonly Envelope[],
  failures: FailureMemory,
): { envelope: Envelope; error: unknown } | undefined {
  for (const envelope of envelopes) {
    const failure = failures.get(envelope.position);
    if (failure) return { envelope, error: failure.error };
  }
  return undefined;
}
