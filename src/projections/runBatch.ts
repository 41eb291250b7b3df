import { isConnectionError, type Pool, type PoolClient } from '../db/index.js';
import type { Envelope, LogPartition, Position } from '../ingest/index.js';
import {
  type ApplyResult,
  applyEnvelopes,
  applyTimer,
  describeError,
  type FailureMemory,
  retryDelay,
} from './applyEnvelopes.js';
import { NOTIFY_AFTER_COMMIT_SETTING } from './changelog/index.js';
import type { Projection } from './defineProjection.js';
import { ProjectionFailedError } from './errors.js';
import { keysToPrefetch } from './keyPrefetch.js';
import { readSlice, type Slice } from './readSlice.js';
import { DEFAULT_CACHE_BYTES } from './rowCache.js';
import { DEFAULT_SQL_BATCH_SIZE, firstEventAfter, runSqlBatch } from './sqlStep.js';
import {
  clearCache,
  createViewWriter,
  preloadCache,
  type ReadAhead,
  type RowCache,
  type ViewWriter,
} from './viewWriter.js';

/** Which checkpoint row a batch reads and advances. */
export interface CheckpointTarget {
  /** 'live': tributary.projections (live tables); 'rebuild': tributary.projection_rebuilds (shadow tables). */
  kind: 'live' | 'rebuild';
  projection: Projection;
  owner: string;
  /** Schema of the tables written. */
  schema: string;
  leaseTimeoutMs: number;
  /**
   * One partition of a partitioned projection (live only): its row in
   * tributary.projection_partitions is the checkpoint, and only its slice of the log is read.
   */
  partition?: LogPartition;
}

export interface WorkerMemory {
  cache: RowCache;
  /** Memory the cached rows may use. @default DEFAULT_CACHE_BYTES (256 MiB) */
  cacheBytes?: number;
  failures: FailureMemory;
  /** What this worker last committed; anything else means someone else wrote. */
  position?: Position;
  generation?: string;
  /** While below this position, batches hold one envelope (isolating a failing batch). */
  isolateUntil?: Position;
  nextTimer?: Date;
  /** The cache was (re)loaded from small view tables since it was last cleared. */
  preloaded?: boolean;
  /**
   * The next page, read ahead on another connection while this batch commits, and the view
   * rows its handlers will read (dropped when the views are forgotten).
   */
  prefetch?: { from: Position; limit: number; page: Promise<Slice>; rows?: Promise<ReadAhead> };
}

export type BatchResult =
  | { kind: 'lost' }
  | {
      kind: 'done';
      position: Position;
      read: number;
      applied: number;
      /** The read reached the visible end of the log. */
      caughtUp: boolean;
      held: boolean;
      retryAfterMs?: number;
      halted?: boolean;
      /** Why the projection halted (stop policy). */
      haltError?: { message: string; position: Position; eventType: string };
      committed: boolean;
      /** A committed batch: seconds from its first view write to its COMMIT. */
      commitSeconds?: number;
    };

const TABLE = { live: 'tributary.projections', rebuild: 'tributary.projection_rebuilds' } as const;

interface CheckpointRow {
  position: Position;
  generation: string;
  mine: boolean;
  version: number;
  state: string;
}

async function readCheckpoint(
  client: PoolClient,
  target: CheckpointTarget,
  notifyAfterCommit: boolean,
): Promise<CheckpointRow | undefined> {
  const generation = target.kind === 'live' ? 'generation::text' : `'0'`;
  const state = target.kind === 'live' ? 'state' : `'running'`;
  // In the same round trip: the changelog rows of this transaction skip the trigger's NOTIFY.
  const quiet = notifyAfterCommit
    ? `, set_config('${NOTIFY_AFTER_COMMIT_SETTING}', 'on', true) as quiet`
    : '';
  // The checkpoint row is locked before any view table is touched. A rebuild's swap (and a
  // replay, a dead-letter retry) lock this row first and the view tables after it; taking the
  // view tables first here, the row at commit, would deadlock with them.
  if (target.partition !== undefined) {
    const { rows } = await client.query<CheckpointRow>(
      `select position, generation::text as generation, lease_owner = $2 as mine, version, state${quiet}
       from tributary.projection_partitions where name = $1 and partition = $3 for no key update`,
      [target.projection.name, target.owner, target.partition.index],
    );
    return rows[0];
  }
  const { rows } = await client.query<CheckpointRow>(
    `select position, ${generation} as generation, lease_owner = $2 as mine, version, ${state} as state${quiet}
     from ${TABLE[target.kind]} where name = $1 for no key update`,
    [target.projection.name, target.owner],
  );
  return rows[0];
}

/**
 * The page after `from`: the one read ahead when it starts there and is full, else a read
 * inside the batch's transaction. A full page never changes once read (every event in it
 * is below the snapshot's xmin and any later event sorts after it); a short one may have
 * grown since, so it is read again.
 */
async function takePage(
  client: PoolClient,
  memory: WorkerMemory,
  from: Position,
  limit: number,
  target: CheckpointTarget,
): Promise<{ page: Slice; rows?: Promise<ReadAhead> | undefined }> {
  const prefetch = memory.prefetch;
  memory.prefetch = undefined;
  if (prefetch && prefetch.from === from && prefetch.limit === limit) {
    const page = await prefetch.page.catch(() => undefined);
    if (page && page.scanned === limit) return { page, rows: prefetch.rows };
  }
  return { page: await readSlice(client, target.projection, target.partition, from, limit) };
}

/** What every batch is given. */
export interface BatchOptions {
  batchSize: number;
  batchMaxMs: number;
  /** Processing time (the runner's clock). */
  now: Date;
  /** Commit even when nothing moved, to renew the lease. */
  renew?: boolean;
  /** Smoothed events per second, published for status. */
  eventsPerSecond?: number;
  /** Read the next page ahead on this pool while a full batch commits. */
  readAhead?: Pool;
  /**
   * Called after a commit that wrote changelog rows, to wake their readers. When given (and
   * the batch owns its transaction), the changelog trigger does not NOTIFY inside it.
   */
  onChanges?: () => void;
}

/**
 * One batch, one transaction: read after the checkpoint, run the handler, write the
 * views and changelog, and advance the checkpoint with compare-and-set on the position,
 * the lease owner and the generation. Two workers can therefore never both apply a batch.
 */
export function runBatch(
  client: PoolClient,
  target: CheckpointTarget,
  memory: WorkerMemory,
  options: BatchOptions,
): Promise<BatchResult> {
  return batch(client, target, memory, options, { step: 'events', transaction: 'own' });
}

/**
 * The projection's `onTimer`, in a transaction of its own committed with the checkpoint
 * unchanged (and the lease renewed).
 */
export function runTimerBatch(
  client: PoolClient,
  target: CheckpointTarget,
  memory: WorkerMemory,
  options: BatchOptions,
): Promise<BatchResult> {
  return batch(client, target, memory, options, { step: 'timer', transaction: 'own' });
}

/**
 * A batch inside a transaction the caller opened and commits (a rebuild's last catch-up,
 * inside its swap): what would be rolled back is thrown instead.
 */
export function runBatchInTransaction(
  client: PoolClient,
  target: CheckpointTarget,
  memory: WorkerMemory,
  options: BatchOptions,
): Promise<BatchResult> {
  return batch(client, target, memory, options, { step: 'events', transaction: 'caller' });
}

interface BatchKind {
  step: 'events' | 'timer';
  /** 'own': begin and commit here; 'caller': the caller's transaction. */
  transaction: 'own' | 'caller';
}

/** What a step did inside the transaction. */
interface Step {
  result: ApplyResult;
  /** The envelopes read (a SQL step reads none into the process). */
  read: Envelope[];
  /** How many events were read. */
  count: number;
  /** Changelog entries written outside the view writer (a SQL step). */
  changes?: number;
  caughtUp: boolean;
  held: boolean;
}

async function batch(
  client: PoolClient,
  target: CheckpointTarget,
  memory: WorkerMemory,
  options: BatchOptions,
  kind: BatchKind,
): Promise<BatchResult> {
  const { projection } = target;
  const own = kind.transaction === 'own';
  const rollback = async () => {
    if (!own)
      throw new ProjectionFailedError(
        `A batch of '${projection.name}' could not be applied in the caller's transaction.`,
      );
    await client.query('rollback');
  };
  /** Abandoning the batch: nothing of it is written, and the views are read afresh next time. */
  const abandon = async () => {
    await rollback();
    forgetViews(memory);
  };
  if (own) await client.query('begin');
  try {
    const notifyAfterCommit = own && options.onChanges !== undefined;
    const from = await claim(client, target, memory, notifyAfterCommit);
    if (from === undefined) {
      await rollback();
      return { kind: 'lost' };
    }
    const writer = createViewWriter({
      client,
      projection: projection.name,
      views: projection.views,
      schema: target.schema,
      cache: memory.cache,
      ...(target.partition !== undefined ? { partitioned: true } : {}),
      ...(memory.cacheBytes !== undefined ? { cacheBytes: memory.cacheBytes } : {}),
    });
    const step =
      kind.step === 'timer'
        ? await timerStep(client, projection, writer, memory, from, options.now)
        : projection.sql
          ? await sqlStep(client, projection, target.schema, memory, from)
          : await eventsStep(client, target, writer, memory, from, options);
    const { result, read } = step;
    const abandoned = (retryAfterMs: number | undefined): BatchResult => ({
      kind: 'done',
      position: from,
      read: step.count,
      applied: 0,
      caughtUp: false,
      held: step.held,
      committed: false,
      ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
    });
    if (result.rollback) {
      await abandon();
      const first = read[0];
      const failure = first ? memory.failures.get(first.position) : undefined;
      const maxAttempts = projection.retry?.maxAttempts ?? 3;
      if (first && failure && failure.attempts >= maxAttempts && read.length > 1 && projection.handleBatch) {
        // The batch keeps failing: retry its envelopes one by one to find the culprit.
        memory.failures.delete(first.position);
        memory.isolateUntil = read.at(-1)!.position;
      }
      return abandoned(result.retryAfterMs);
    }
    const writeStarted = performance.now();
    try {
      await writer.flush();
    } catch (error) {
      // The batch's writes break a constraint of a view (e.g. a unique index): a poison batch.
      // Retry it, then envelope by envelope, so the failure policy can apply to the culprit.
      const first = read[0];
      if (!own || !first || isConnectionError(error) || kind.step === 'timer') throw error;
      await abandon();
      const attempts = (memory.failures.get(first.position)?.attempts ?? 0) + 1;
      const maxAttempts = projection.retry?.maxAttempts ?? 3;
      memory.failures.set(first.position, { attempts, error });
      if (attempts >= maxAttempts && read.length > 1) {
        memory.failures.delete(first.position);
        memory.isolateUntil = read.at(-1)!.position;
      }
      return abandoned(attempts >= maxAttempts ? 0 : retryDelay(projection.retry, attempts));
    }
    const halt = result.halt;
    const changes = writer.changes + (step.changes ?? 0);
    const idle =
      kind.step === 'events' && step.count === 0 && result.position === from && changes === 0 && !halt;
    if (idle && !options.renew) {
      await rollback();
      return {
        kind: 'done',
        position: from,
        read: 0,
        applied: 0,
        caughtUp: true,
        held: step.held,
        committed: false,
      };
    }
    if (!(await advanceCheckpoint(client, target, memory, from, result, options.eventsPerSecond))) {
      await rollback();
      forgetViews(memory);
      return { kind: 'lost' };
    }
    if (own) await client.query('commit');
    const commitSeconds = (performance.now() - writeStarted) / 1000;
    if (notifyAfterCommit && changes > 0) options.onChanges!();
    remember(memory, read, result);
    return {
      kind: 'done',
      position: result.position,
      read: step.count,
      applied: result.applied,
      caughtUp: step.caughtUp,
      held: step.held,
      committed: true,
      commitSeconds,
      ...(halt
        ? {
            halted: true,
            haltError: {
              message: halt.error instanceof Error ? halt.error.message : String(halt.error),
              position: halt.envelope.position,
              eventType: halt.envelope.type,
            },
          }
        : {}),
      ...(result.retryAfterMs !== undefined ? { retryAfterMs: result.retryAfterMs } : {}),
    };
  } catch (error) {
    if (own) await client.query('rollback').catch(() => {});
    forgetViews(memory);
    throw error;
  }
}

/** The worker's cached rows may no longer match the tables. */
function forgetViews(memory: WorkerMemory): void {
  clearCache(memory.cache);
  memory.preloaded = false;
  if (memory.prefetch) memory.prefetch.rows = undefined;
}

/**
 * Locks and reads the checkpoint row: the position to start from, or undefined when this
 * worker no longer holds the projection (lease, version or state changed). A position or
 * generation this worker did not write means someone else wrote the views: the cache goes.
 */
async function claim(
  client: PoolClient,
  target: CheckpointTarget,
  memory: WorkerMemory,
  notifyAfterCommit: boolean,
): Promise<Position | undefined> {
  const { projection } = target;
  const row = await readCheckpoint(client, target, notifyAfterCommit);
  if (!row?.mine || row.version !== projection.version || row.state !== 'running') return undefined;
  if (row.position !== memory.position || row.generation !== memory.generation) {
    forgetViews(memory);
    memory.position = row.position;
    memory.generation = row.generation;
  }
  // A SQL projection reads no view rows into the process.
  if (!memory.preloaded && !projection.sql) {
    await preloadCache(
      client,
      target.schema,
      projection.views,
      memory.cache,
      memory.cacheBytes ?? DEFAULT_CACHE_BYTES,
    );
    memory.preloaded = true;
  }
  return row.position;
}

async function timerStep(
  client: PoolClient,
  projection: Projection,
  writer: ViewWriter,
  memory: WorkerMemory,
  from: Position,
  now: Date,
): Promise<Step> {
  // Rows read ahead for the next batch would not see what the timer writes.
  if (memory.prefetch) memory.prefetch.rows = undefined;
  const next = await applyTimer(projection, { client, writer, now, from });
  memory.nextTimer = undefined;
  const result: ApplyResult = {
    position: from,
    applied: 0,
    deadLettered: 0,
    ...(next ? { timer: next } : {}),
  };
  return { result, read: [], count: 0, caughtUp: true, held: false };
}

/**
 * A SQL projection's batch: one statement in PostgreSQL (sqlStep.ts), under a savepoint so
 * that a failing statement can still commit the projection's halt. A failure is retried with
 * the projection's retry policy, then stops the projection at the batch's first event.
 */
async function sqlStep(
  client: PoolClient,
  projection: Projection,
  schema: string,
  memory: WorkerMemory,
  from: Position,
): Promise<Step> {
  const step = projection.sql!;
  const view = projection.views.find(
    (candidate) => candidate.name === (typeof step.view === 'string' ? step.view : step.view.name),
  )!;
  const limit = step.batchSize ?? DEFAULT_SQL_BATCH_SIZE;
  await client.query('savepoint sql_batch');
  try {
    const batch = await runSqlBatch(client, step, view, schema, projection.filter, from, limit);
    await client.query('release savepoint sql_batch');
    memory.failures.delete(from);
    return {
      result: { position: batch.next, applied: batch.read, deadLettered: 0 },
      read: [],
      count: batch.read,
      changes: batch.written,
      caughtUp: batch.read < limit,
      held: batch.held,
    };
  } catch (error) {
    if (isConnectionError(error)) throw error;
    await client.query('rollback to savepoint sql_batch');
    const attempts = (memory.failures.get(from)?.attempts ?? 0) + 1;
    const failed = { position: from, applied: 0, deadLettered: 0 };
    if (attempts < (projection.retry?.maxAttempts ?? 3)) {
      memory.failures.set(from, { attempts, error });
      const retryAfterMs = retryDelay(projection.retry, attempts);
      return {
        result: { ...failed, rollback: true, retryAfterMs },
        read: [],
        count: 0,
        caughtUp: false,
        held: false,
      };
    }
    memory.failures.delete(from);
    return isolateSqlFailure(client, projection, view, schema, from, limit, attempts, error);
  }
}

/**
 * After the last attempt at a failing SQL batch: applies its events one statement each, up to
 * the one that fails, which the projection halts at (with that event's own error), as a
 * handler projection halts at the event whose handler threw.
 */
async function isolateSqlFailure(
  client: PoolClient,
  projection: Projection,
  view: Projection['views'][number],
  schema: string,
  from: Position,
  limit: number,
  attempts: number,
  batchError: unknown,
): Promise<Step> {
  const step = projection.sql!;
  let position = from;
  let applied = 0;
  let written = 0;
  for (let i = 0; i < limit; i++) {
    await client.query('savepoint sql_event');
    try {
      const one = await runSqlBatch(client, step, view, schema, projection.filter, position, 1);
      await client.query('release savepoint sql_event');
      if (one.read === 0) break;
      position = one.next;
      applied++;
      written += one.written;
    } catch (error) {
      if (isConnectionError(error)) throw error;
      await client.query('rollback to savepoint sql_event');
      const envelope = await firstEventAfter(client, position, projection.filter);
      if (!envelope) throw error;
      return {
        result: { position, applied, deadLettered: 0, halt: { envelope, error, attempts } },
        read: [],
        count: applied,
        changes: written,
        caughtUp: false,
        held: false,
      };
    }
  }
  // Each event passed alone (the failure came from the batch as a whole, or went away): the
  // batch's events are applied, and the next batch tries again.
  if (applied === 0) throw batchError;
  return {
    result: { position, applied, deadLettered: 0 },
    read: [],
    count: applied,
    changes: written,
    caughtUp: false,
    held: false,
  };
}

async function eventsStep(
  client: PoolClient,
  target: CheckpointTarget,
  writer: ViewWriter,
  memory: WorkerMemory,
  from: Position,
  options: BatchOptions,
): Promise<Step> {
  const { projection } = target;
  const isolating = memory.isolateUntil !== undefined && from < memory.isolateUntil;
  if (!isolating) memory.isolateUntil = undefined;
  const limit = isolating ? 1 : options.batchSize;
  const { page, rows } = await takePage(client, memory, from, limit, target);
  const ahead = rows && (await rows.catch(() => undefined));
  if (ahead) writer.accept(ahead);
  const result = await applyEnvelopes(page.events, {
    projection,
    client,
    writer,
    failures: memory.failures,
    from,
    now: options.now,
    deadline: Date.now() + options.batchMaxMs,
    readNext: page.next,
  });
  // A page filtered in the process (a custom partition key) is full when its read was.
  const caughtUp = page.scanned < limit && result.position === page.next;
  if (options.readAhead && !caughtUp && !result.rollback && !result.halt && result.position === page.next) {
    // The next page, and then the view rows its handlers will read, are read on another
    // connection while this batch flushes and commits.
    const readAhead = options.readAhead;
    const next = readSlice(readAhead, projection, target.partition, page.next, limit);
    next.catch(() => {});
    const rows = next.then((nextPage) =>
      // A short page is read again by the next batch: its rows would be wasted.
      writer.readAhead(
        readAhead,
        nextPage.scanned === limit ? keysToPrefetch(projection, nextPage.events) : new Map(),
      ),
    );
    rows.catch(() => {});
    memory.prefetch = { from: page.next, limit, page: next, rows };
  }
  return { result, read: page.events, count: page.events.length, caughtUp, held: page.held };
}

/**
 * The compare-and-set of the checkpoint: from `from` to the batch's position, only while
 * this worker holds the lease (and, live, the generation it read). False when it lost them.
 */
async function advanceCheckpoint(
  client: PoolClient,
  target: CheckpointTarget,
  memory: WorkerMemory,
  from: Position,
  result: ApplyResult,
  eventsPerSecond: number | undefined,
): Promise<boolean> {
  const { projection } = target;
  const halt = result.halt;
  const params: unknown[] = [
    projection.name,
    target.owner,
    from,
    result.position,
    `${target.leaseTimeoutMs} milliseconds`,
    result.applied + result.deadLettered,
  ];
  let sql: string;
  if (target.partition !== undefined) {
    params.push(memory.generation, halt ? 'failed' : 'running');
    params.push(halt ? haltError(halt) : null, eventsPerSecond ?? 0, target.partition.index);
    sql = `update tributary.projection_partitions
           set position = $4, lease_expires_at = now() + $5::interval, events_processed = events_processed + $6,
               state = $8, last_error = coalesce($9::jsonb, case when $6 > 0 then null else last_error end),
               lease_owner = case when $8 = 'failed' then null else lease_owner end,
               events_per_second = $10, updated_at = now()
           where name = $1 and partition = $11 and lease_owner = $2 and position = $3 and generation = $7::bigint`;
  } else if (target.kind === 'live') {
    params.push(memory.generation, halt ? 'failed' : 'running');
    params.push(halt ? haltError(halt) : null, eventsPerSecond ?? 0);
    sql = `update tributary.projections
           set position = $4, lease_expires_at = now() + $5::interval, events_processed = events_processed + $6,
               state = $8, last_error = coalesce($9::jsonb, case when $6 > 0 then null else last_error end),
               lease_owner = case when $8 = 'failed' then null else lease_owner end,
               events_per_second = $10, updated_at = now()
           where name = $1 and lease_owner = $2 and position = $3 and generation = $7::bigint`;
  } else {
    sql = `update tributary.projection_rebuilds
           set position = $4, lease_expires_at = now() + $5::interval, done = done + $6, updated_at = now()
           where name = $1 and lease_owner = $2 and position = $3`;
  }
  const updated = await client.query(sql, params);
  return updated.rowCount === 1;
}

/** What a halted checkpoint row records as its last error. */
function haltError(halt: NonNullable<ApplyResult['halt']>): string {
  return JSON.stringify({
    ...describeError(halt.error),
    position: halt.envelope.position,
    eventId: halt.envelope.eventId,
    eventType: halt.envelope.type,
    streamId: halt.envelope.streamId,
    attempts: halt.attempts,
    at: new Date().toISOString(),
  });
}

/** After the commit: what this worker now knows. */
function remember(memory: WorkerMemory, read: readonly Envelope[], result: ApplyResult): void {
  // Failures are forgotten only once the events' effects have committed.
  if (memory.failures.size > 0) {
    for (const envelope of read)
      if (envelope.position <= result.position) memory.failures.delete(envelope.position);
  }
  memory.position = result.position;
  if (result.timer && (!memory.nextTimer || result.timer < memory.nextTimer)) memory.nextTimer = result.timer;
  if (result.halt) memory.failures.delete(result.halt.envelope.position);
}
