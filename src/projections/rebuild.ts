import { randomUUID } from 'node:crypto';
import {
  assertIdentifier,
  connectGuarded,
  type Pool,
  type PoolClient,
  qualified,
  quoteIdentifier,
  withTransaction,
} from '../db/index.js';
import { ValidationError } from '../errors.js';
import { type Position, START } from '../ingest/index.js';
import { type Logger, silentLogger } from '../logger.js';
import { sleep } from '../sleep.js';
import { appendResets } from './changelog/index.js';
import { type Projection, partitionCount } from './defineProjection.js';
import { ProjectionFailedError } from './errors.js';
import { moveKeyedState, resetKeyedState } from './keyedState.js';
import { acquireLease, releaseLease } from './leases.js';
import { resetPartitions } from './registry.js';
import { type CheckpointTarget, runBatch, runBatchInTransaction, type WorkerMemory } from './runBatch.js';
import { countEventsAfter, measureLag } from './status.js';
import { DEFAULT_VIEW_SCHEMA } from './view.js';
import { createViewTables, ensureSchema, viewsFingerprint } from './viewTables.js';

export interface Progress {
  /** Events processed so far (including before a resume). */
  done: number;
  /** Events to process: done plus what is visible after the current position. */
  total: number;
  position: Position;
}

export interface RebuildOptions {
  pool: Pool;
  projection: Projection;
  /** @default 'tributary_views' */
  viewSchema?: string;
  /**
   * Truncate the live tables and replay into them (for development: the view is
   * incomplete meanwhile). @default false: build shadow tables and swap them in.
   */
  inPlace?: boolean;
  /** @default 1000 */
  batchSize?: number;
  /** @default 10000 */
  leaseTimeoutMs?: number;
  onProgress?: (progress: Progress) => void;
  logger?: Logger;
  signal?: AbortSignal;
}

export interface RebuildResult {
  events: number;
  position: Position;
  resumed: boolean;
}

/** Schema holding a projection's shadow tables while it is rebuilt. */
export function shadowSchema(viewSchema: string): string {
  return assertIdentifier(`${viewSchema}_rebuild`, 'shadow schema');
}

/**
 * Builds the projection's current version from the start of the log into shadow
 * tables while the live views keep serving, then swaps them in atomically: in one
 * transaction the live tables are dropped, the shadow tables take their names, the
 * checkpoint moves to the rebuild's position, and a 'reset' change is written per
 * view. An interrupted rebuild continues where it stopped.
 */
export async function rebuildProjection(options: RebuildOptions): Promise<RebuildResult> {
  if (options.inPlace) return rebuildInPlace(options);
  const { pool, projection } = options;
  const logger = options.logger ?? silentLogger;
  const viewSchema = options.viewSchema ?? DEFAULT_VIEW_SCHEMA;
  const shadow = shadowSchema(viewSchema);
  const leaseTimeoutMs = options.leaseTimeoutMs ?? 10_000;
  const owner = `rebuild:${randomUUID().slice(0, 8)}`;
  const fingerprint = viewsFingerprint(projection.views);

  const resumed = await withTransaction(pool, async (client) => {
    await client.query('select pg_advisory_xact_lock(hashtext($1))', [
      `tributary.rebuild:${projection.name}`,
    ]);
    const { rows } = await client.query<{ version: number; fingerprint: string; views: string[] }>(
      'select version, fingerprint, views from tributary.projection_rebuilds where name = $1',
      [projection.name],
    );
    const existing = rows[0];
    if (existing && existing.version === projection.version && existing.fingerprint === fingerprint)
      return true;
    if (existing) {
      logger.info('discarding a rebuild of another version', { version: existing.version });
      await dropTables(client, shadow, existing.views);
      await client.query('delete from tributary.projection_rebuilds where name = $1', [projection.name]);
    }
    const names = projection.views.map((view) => view.name);
    await dropTables(client, shadow, names);
    await resetKeyedState(client, projection.name, shadow);
    await createViewTables(client, projection.views, shadow);
    const total = await countEventsAfter(client, START, projection.filter);
    await client.query(
      `insert into tributary.projection_rebuilds (name, version, fingerprint, views, position, total)
       values ($1, $2, $3, $4, $5, $6)`,
      [projection.name, projection.version, fingerprint, names, START, total],
    );
    return false;
  });
  if (resumed) logger.info('resuming an interrupted rebuild', { projection: projection.name });

  if (!(await acquireLease(pool, 'rebuild', projection.name, owner, leaseTimeoutMs))) {
    throw new ProjectionFailedError(`Another process is rebuilding projection '${projection.name}'.`, {
      hint: `Wait for it to finish (see \`tributary status\`), or stop it; an abandoned rebuild can be resumed ${Math.ceil(leaseTimeoutMs / 1000)} s after its process died.`,
    });
  }
  const target: CheckpointTarget = { kind: 'rebuild', projection, owner, schema: shadow, leaseTimeoutMs };
  const client = await connectGuarded(pool);
  try {
    const position = await catchUp(client, target, options);
    const events = await swap(client, projection, owner, viewSchema, shadow, fingerprint);
    logger.info('rebuild swapped in', { projection: projection.name, version: projection.version, events });
    return { events, position, resumed };
  } finally {
    client.release();
    await releaseLease(pool, 'rebuild', projection.name, owner).catch(() => {});
  }
}

/** Runs batches until the read reaches the visible end of the log; returns the position. */
async function catchUp(
  client: PoolClient,
  target: CheckpointTarget,
  options: RebuildOptions,
): Promise<Position> {
  const memory: WorkerMemory = { cache: new Map(), failures: new Map() };
  const table = target.kind === 'live' ? 'tributary.projections' : 'tributary.projection_rebuilds';
  const doneColumn = target.kind === 'live' ? 'events_processed' : 'done';
  let remainingAt = { time: 0, done: 0, remaining: 0 };
  const progress = async (position: Position) => {
    if (!options.onProgress) return;
    const { rows } = await client.query<{ done: string }>(
      `select ${doneColumn}::text as done from ${table} where name = $1`,
      [target.projection.name],
    );
    const done = Number(rows[0]?.done ?? 0);
    // Counting what is left scans the log: do it every few seconds, estimate in between.
    if (Date.now() - remainingAt.time > 3000) {
      remainingAt = {
        time: Date.now(),
        done,
        remaining: (await measureLag(client, position, target.projection.filter)).events,
      };
    }
    const remaining = Math.max(0, remainingAt.remaining - (done - remainingAt.done));
    options.onProgress({ done, total: done + remaining, position });
  };
  let lastProgress = 0;
  for (;;) {
    if (options.signal?.aborted) {
      throw new ProjectionFailedError(`The rebuild of '${target.projection.name}' was interrupted.`, {
        hint: 'Run the same command again: it continues where it stopped.',
      });
    }
    const result = await runBatch(client, target, memory, {
      batchSize: options.batchSize ?? 1000,
      batchMaxMs: 1000,
      now: new Date(),
      renew: true,
    });
    if (result.kind === 'lost') {
      throw new ProjectionFailedError(
        `Projection '${target.projection.name}' was taken over by another process.`,
        {
          hint: 'Only one rebuild or replay of a projection can run at a time.',
        },
      );
    }
    if (result.halted) {
      const why = result.haltError;
      throw new ProjectionFailedError(
        `Projection '${target.projection.name}' stopped on a failing '${why?.eventType}' event at ${why?.position}: ${why?.message}`,
        { hint: 'Fix the handler (or set onError: "dead-letter") and run the command again.' },
      );
    }
    if (result.retryAfterMs !== undefined) {
      await sleep(result.retryAfterMs, options.signal);
      continue;
    }
    if (Date.now() - lastProgress > 200 || result.caughtUp) {
      lastProgress = Date.now();
      await progress(result.position);
    }
    if (result.caughtUp && !result.held) return result.position;
    if (result.caughtUp) await sleep(20, options.signal);
  }
}

async function swap(
  client: PoolClient,
  projection: Projection,
  owner: string,
  viewSchema: string,
  shadow: string,
  fingerprint: string,
): Promise<number> {
  await client.query('begin');
  try {
    const { rows } = await client.query<{ position: string; done: string }>(
      'select position, done::text from tributary.projection_rebuilds where name = $1 and lease_owner = $2 for update',
      [projection.name, owner],
    );
    const rebuilt = rows[0];
    if (!rebuilt)
      throw new ProjectionFailedError(
        `The rebuild of '${projection.name}' was taken over by another process.`,
      );
    // Holding the live row stops the live worker's commits; catching up inside this
    // transaction makes the swapped-in view at least as far along as the one it replaces.
    await client.query('select 1 from tributary.projections where name = $1 for update', [projection.name]);
    // A partitioned projection's workers commit through their partitions' rows: hold them all.
    await client.query(
      'select 1 from tributary.projection_partitions where name = $1 order by partition for update',
      [projection.name],
    );
    const target: CheckpointTarget = {
      kind: 'rebuild',
      projection,
      owner,
      schema: shadow,
      leaseTimeoutMs: 60_000,
    };
    const memory: WorkerMemory = { cache: new Map(), failures: new Map() };
    for (;;) {
      const result = await runBatchInTransaction(client, target, memory, {
        batchSize: 1000,
        batchMaxMs: 1000,
        now: new Date(),
        renew: true,
      });
      if (result.kind === 'lost' || result.halted || result.retryAfterMs !== undefined) {
        throw new ProjectionFailedError(
          `The rebuild of '${projection.name}' could not finish its last batch.`,
          {
            hint: 'Run the command again: it continues where it stopped.',
          },
        );
      }
      if (result.caughtUp) break;
    }
    const { rows: final } = await client.query<{ position: string; done: string }>(
      'select position, done::text from tributary.projection_rebuilds where name = $1',
      [projection.name],
    );
    rebuilt.position = final[0]!.position;
    rebuilt.done = final[0]!.done;
    await ensureSchema(client, viewSchema);
    for (const view of projection.views) {
      await client.query(`drop table if exists ${qualified(viewSchema, view.name)}`);
      await client.query(
        `alter table ${qualified(shadow, view.name)} set schema ${quoteIdentifier(viewSchema)}`,
      );
    }
    await moveKeyedState(client, projection.name, shadow, viewSchema);
    await client.query(
      `insert into tributary.projections (name, version, fingerprint, position, events_processed, generation, partitions)
       values ($1, $2, $3, $4, $5, 1, $6)
       on conflict (name) do update set version = excluded.version, fingerprint = excluded.fingerprint,
         position = excluded.position, events_processed = excluded.events_processed,
         generation = projections.generation + 1, state = 'running', last_error = null,
         lease_owner = null, lease_expires_at = null, partitions = excluded.partitions, updated_at = now()`,
      [
        projection.name,
        projection.version,
        fingerprint,
        rebuilt.position,
        rebuilt.done,
        partitionCount(projection),
      ],
    );
    // The rebuild read the whole log in order: every partition has applied up to its position.
    await resetPartitions(client, projection, rebuilt.position);
    await appendResets(
      client,
      projection.views.map((view) => view.name),
      rebuilt.position,
    );
    await client.query('delete from tributary.projection_rebuilds where name = $1', [projection.name]);
    await client.query('commit');
    return Number(rebuilt.done);
  } catch (error) {
    await client.query('rollback').catch(() => {});
    throw error;
  }
}

/** One 'reset' change per view: subscribers re-query. */
async function dropTables(client: PoolClient, schema: string, names: readonly string[]) {
  for (const name of names) {
    await client.query(`drop table if exists ${qualified(schema, assertIdentifier(name, 'view name'))}`);
  }
}

/**
 * Development rebuild: takes the projection over, recreates its live tables empty,
 * moves it to this version at the start of the log, and replays up to the head.
 */
async function rebuildInPlace(options: RebuildOptions): Promise<RebuildResult> {
  const { pool, projection } = options;
  if (partitionCount(projection) > 1) {
    throw new ValidationError(
      `Projection '${projection.name}' has ${partitionCount(projection)} partitions: it is rebuilt into shadow tables and swapped in, not in place.`,
      { field: 'inPlace', hint: `Run \`tributary rebuild ${projection.name}\` without --in-place.` },
    );
  }
  const viewSchema = options.viewSchema ?? DEFAULT_VIEW_SCHEMA;
  const leaseTimeoutMs = options.leaseTimeoutMs ?? 10_000;
  const owner = `rebuild:${randomUUID().slice(0, 8)}`;
  await withTransaction(pool, async (client) => {
    await client.query(
      `insert into tributary.projections (name, version, fingerprint, position) values ($1, $2, $3, $4)
       on conflict (name) do nothing`,
      [projection.name, projection.version, viewsFingerprint(projection.views), START],
    );
    await client.query('select 1 from tributary.projections where name = $1 for update', [projection.name]);
    await dropTables(
      client,
      viewSchema,
      projection.views.map((view) => view.name),
    );
    await createViewTables(client, projection.views, viewSchema);
    await resetKeyedState(client, projection.name, viewSchema);
    await client.query(
      `update tributary.projections set version = $2, fingerprint = $3, position = $4, events_processed = 0,
         generation = generation + 1, state = 'running', last_error = null,
         lease_owner = $5, lease_expires_at = now() + $6::interval, updated_at = now()
       where name = $1`,
      [
        projection.name,
        projection.version,
        viewsFingerprint(projection.views),
        START,
        owner,
        `${leaseTimeoutMs} milliseconds`,
      ],
    );
    await appendResets(
      client,
      projection.views.map((view) => view.name),
      START,
    );
  });
  const target: CheckpointTarget = { kind: 'live', projection, owner, schema: viewSchema, leaseTimeoutMs };
  const client = await connectGuarded(pool);
  try {
    const position = await catchUp(client, target, options);
    const { rows } = await client.query<{ done: string }>(
      'select events_processed::text as done from tributary.projections where name = $1',
      [projection.name],
    );
    return { events: Number(rows[0]?.done ?? 0), position, resumed: false };
  } finally {
    client.release();
    await releaseLease(pool, 'live', projection.name, owner).catch(() => {});
  }
}

export { catchUp as runUntilCaughtUp };
