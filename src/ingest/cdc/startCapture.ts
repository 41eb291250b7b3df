import type pg from 'pg';
import { createPool, type Pool } from '../../db/index.js';
import { isTributaryError } from '../../errors.js';
import { type Logger, silentLogger } from '../../logger.js';
import { sleep } from '../../sleep.js';
import { createTypeResolver } from './changeEvents.js';
import { type Checkpoint, insertCheckpoint, readCheckpoint, writeProgress } from './checkpoints.js';
import { CdcSourceError, isSlotLostError, SlotLostError } from './errors.js';
import type { Lsn } from './lsn.js';
import { resolveSources } from './resolveSources.js';
import { checkSourceTables, connectSource, dropSlot, ensurePublication, inspectSlot } from './sourceSetup.js';
import { type StreamTuning, streamChanges } from './streamChanges.js';
import { takeSnapshot } from './takeSnapshot.js';
import type { CaptureState, CdcSourcesConfig, ResolvedSource, SnapshotProgress } from './types.js';

export interface CaptureOptions {
  /** `sources` from tributary.config.ts. */
  sources: CdcSourcesConfig | undefined;
  /** Tributary's database (where the log is): a pool, or a URL to open one. */
  pool?: Pool;
  url?: string;
  /** @default silentLogger */
  logger?: Logger;
  tuning?: StreamTuning;
}

/** What the running capture knows about one source, without asking the source. */
export interface LiveSourceStatus {
  source: string;
  slot: string;
  state: CaptureState;
  confirmedLsn: Lsn | null;
  checkpointLsn: Lsn | null;
  checkpointTime: Date | null;
  snapshot: SnapshotProgress | null;
  caughtUpAt: Date | null;
  lastError: string | null;
  lastErrorAt: Date | null;
}

export interface Capture {
  /** Stops every source: an open log transaction rolls back, the slots keep their position. */
  stop(): Promise<void>;
  status(): LiveSourceStatus[];
}

/**
 * Starts capturing every configured source into the log. Each source runs on its own:
 * it sets up (publication, slot, snapshot when needed), streams, and on any failure
 * reconnects with backoff from the checkpoint stored in the log. A lost or invalidated
 * slot stops that source with a loud error instead.
 */
export function startCapture(options: CaptureOptions): Capture {
  const sources = resolveSources(options.sources);
  const logger = options.logger ?? silentLogger;
  if (options.pool === undefined && options.url === undefined) {
    throw new Error('startCapture needs the pool or the url of the Tributary database');
  }
  const ownPool = options.pool === undefined;
  const pool = options.pool ?? createPool(options.url!, { applicationName: 'tributary-cdc', logger });
  const controller = new AbortController();
  const lives = sources.map(
    (source): LiveSourceStatus => ({
      source: source.name,
      slot: source.slot,
      state: 'starting',
      confirmedLsn: null,
      checkpointLsn: null,
      checkpointTime: null,
      snapshot: null,
      caughtUpAt: null,
      lastError: null,
      lastErrorAt: null,
    }),
  );
  const runners = sources.map((source, index) =>
    runSource(source, lives[index]!, {
      pool,
      logger: logger.child({ source: source.name }),
      signal: controller.signal,
      tuning: options.tuning,
    }),
  );
  let stopping: Promise<void> | undefined;
  return {
    stop() {
      stopping ??= (async () => {
        controller.abort();
        await Promise.allSettled(runners);
        if (ownPool) await pool.end();
      })();
      return stopping;
    },
    status: () => lives.map((live) => ({ ...live, snapshot: live.snapshot && { ...live.snapshot } })),
  };
}

interface RunContext {
  pool: Pool;
  logger: Logger;
  signal: AbortSignal;
  tuning: StreamTuning | undefined;
}

async function runSource(source: ResolvedSource, live: LiveSourceStatus, context: RunContext): Promise<void> {
  const { pool, logger, signal } = context;
  // Written every 2 s even when unchanged, so that readers can tell a live capture from a dead one.
  const report = async (withError = false) => {
    const snapshot = live.snapshot;
    await writeProgress(pool, source.name, {
      state: live.state,
      slotName: source.slot,
      snapshotTable: snapshot?.table ?? null,
      snapshotRowsDone: snapshot?.rowsDone ?? null,
      snapshotRowsTotal: snapshot?.rowsTotal ?? null,
      confirmedLsn: live.confirmedLsn,
      caughtUpAt: live.caughtUpAt,
      ...(withError ? { lastError: live.lastError } : {}),
    }).catch((error: unknown) => logger.debug('could not record capture progress', { error }));
  };
  const reporter = setInterval(() => void report(), 2000);
  let attempt = 0;
  try {
    while (!signal.aborted) {
      try {
        await runOnce(source, live, context, () => {
          attempt = 0;
        });
      } catch (error) {
        if (signal.aborted) break;
        live.lastError = isTributaryError(error)
          ? error.describe()
          : String((error as Error)?.message ?? error);
        live.lastErrorAt = new Date();
        if (isSlotLostError(error)) {
          live.state = 'failed';
          logger.error('CAPTURE STOPPED: replication slot lost', { error, hint: error.hint });
          await report(true);
          return;
        }
        live.state = error instanceof CdcSourceError ? 'failed' : 'reconnecting';
        const delay = Math.min(30_000, 500 * 2 ** Math.min(attempt, 6));
        attempt++;
        if (/is active for PID|is in use by process/.test(live.lastError)) {
          // Another Tributary process captures this source: stand by and take over if it stops.
          logger.warn('the slot is in use by another process; waiting', { retryInMs: delay });
        } else {
          logger.error('capture failed; retrying', { error, message: live.lastError, retryInMs: delay });
        }
        await report(true);
        await sleep(delay, signal);
      }
    }
  } finally {
    clearInterval(reporter);
  }
  if (live.state !== 'failed') live.state = 'stopped';
  await report();
}

async function runOnce(
  source: ResolvedSource,
  live: LiveSourceStatus,
  { pool, logger, signal, tuning }: RunContext,
  onStreaming: () => void,
): Promise<void> {
  const client = connectSource(source);
  client.on('error', (error) => logger.warn('source connection lost', { error }));
  await client.connect();
  let heartbeat: NodeJS.Timeout | undefined;
  try {
    const tables = await checkSourceTables(client, source);
    await ensurePublication(client, source, logger);
    const resolveTypes = createTypeResolver(client);
    let checkpoint = await readCheckpoint(pool, source.name);
    const slot = await inspectSlot(client, source.slot);
    if (checkpoint !== undefined) {
      if (checkpoint.slotName !== source.slot) {
        throw new CdcSourceError(
          source.name,
          `the log was captured through slot '${checkpoint.slotName}', but the config names slot '${source.slot}'.`,
          {
            hint: `Restore the slot name, or run \`tributary cdc drop ${source.name} --yes\` to start over.`,
          },
        );
      }
      if (slot === undefined)
        throw new SlotLostError(source.name, source.slot, 'no longer exists on the source');
      if (slot.problem !== null) throw new SlotLostError(source.name, source.slot, slot.problem);
    } else {
      if (slot !== undefined) {
        if (slot.active) {
          throw new Error(`replication slot '${source.slot}' is in use by process ${slot.activePid}`);
        }
        // No checkpoint means nothing was ever captured through it: a snapshot was interrupted.
        logger.warn('dropping the slot of an interrupted snapshot; starting it again', { slot: source.slot });
        await dropSlot(client, source.slot);
      }
      if (source.snapshot === 'initial') {
        live.state = 'snapshotting';
        live.snapshot = { table: null, rowsDone: 0, rowsTotal: 0 };
        await takeSnapshot({
          source,
          tables,
          pool,
          resolveTypes,
          logger,
          signal,
          onProgress: (progress) => {
            live.snapshot = progress;
          },
        });
      } else {
        await createSlotWithoutSnapshot(source, pool);
        logger.info('replication slot created (no snapshot)', { slot: source.slot });
      }
      checkpoint = (await readCheckpoint(pool, source.name)) as Checkpoint;
    }
    live.checkpointLsn = checkpoint.commitLsn ?? checkpoint.startLsn;
    live.checkpointTime = checkpoint.commitTime;
    if (source.heartbeatIntervalMs > 0) {
      heartbeat = setInterval(() => {
        client
          .query("select pg_logical_emit_message(false, 'tributary_heartbeat', '')")
          .catch((error: unknown) => logger.debug('heartbeat failed', { error }));
      }, source.heartbeatIntervalMs);
    }
    live.state = 'streaming';
    logger.info('streaming changes', {
      slot: source.slot,
      from: checkpoint.endLsn ?? checkpoint.startLsn,
    });
    await streamChanges({
      source,
      checkpoint,
      pool,
      resolveTypes,
      keyColumns: new Map(tables.map((t) => [`${t.schema}.${t.table}`, t.keyColumns])),
      logger,
      signal,
      ...(tuning === undefined ? {} : { tuning }),
      hooks: {
        onConfirmed(lsn, caughtUp) {
          live.confirmedLsn = lsn;
          if (caughtUp) live.caughtUpAt = new Date();
          onStreaming();
        },
        onCheckpoint(last) {
          live.checkpointLsn = last.commitLsn;
          live.checkpointTime = last.commitTime;
          live.confirmedLsn = last.endLsn;
          onStreaming();
        },
      },
    });
  } finally {
    if (heartbeat !== undefined) clearInterval(heartbeat);
    await client.end().catch(() => {});
  }
}

async function createSlotWithoutSnapshot(source: ResolvedSource, pool: Pool): Promise<void> {
  const replication: pg.Client = connectSource(source, { replication: true });
  replication.on('error', () => {});
  await replication.connect();
  try {
    const { rows } = await replication.query<{ consistent_point: string }>(
      `CREATE_REPLICATION_SLOT "${source.slot}" LOGICAL pgoutput NOEXPORT_SNAPSHOT`,
    );
    await insertCheckpoint(pool, {
      source: source.name,
      slotName: source.slot,
      publicationName: source.publication,
      streamId: source.streamId,
      startLsn: rows[0]!.consistent_point,
      snapshotRows: 0,
    });
  } finally {
    await replication.end().catch(() => {});
  }
}
