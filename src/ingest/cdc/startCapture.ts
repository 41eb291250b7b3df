import type pg from 'pg';
import { closePool, createPool, type Pool } from '../../db/index.js';
import { isTributaryError, type TributaryError } from '../../errors.js';
import { type Logger, silentLogger } from '../../logger.js';
import { type Metrics, recordSpan } from '../../observability/index.js';
import { sleep } from '../../sleep.js';
import {
  type EsdbFeed,
  type EventStoreDbSettings,
  type LiveEventStoreDbStatus,
  resolveEventStoreDbSources,
  runEventStoreDbSource,
} from '../eventstoredb/index.js';
import { createTypeResolver } from './changeEvents.js';
import {
  type Checkpoint,
  insertCheckpoint,
  readCheckpoint,
  recordConfirmable,
  writeProgress,
} from './checkpoints.js';
import { CdcSourceError, isPermanentCaptureError, SlotLostError, SlotMismatchError } from './errors.js';
import {
  backfillAddedTables,
  type IncrementalProgress,
  recordKnownTables,
  runIncrementalSnapshots,
} from './incrementalSnapshots.js';
import { compareLsn, type Lsn } from './lsn.js';
import { resolveSources } from './resolveSources.js';
import {
  claimNames,
  createOwnSlot,
  judgeSlot,
  notePublicationCreated,
  readSlotClaim,
} from './slotOwnership.js';
import { createSnapshotWindows } from './snapshotWindows.js';
import { resolveSourceNames } from './sourceNames.js';
import {
  checkOutboxTables,
  checkSourceTables,
  connectSource,
  describeSourceServer,
  dropSlot,
  ensurePublication,
  inspectSlot,
  type SourceServer,
} from './sourceSetup.js';
import { type StreamTuning, streamChanges } from './streamChanges.js';
import { takeSnapshot } from './takeSnapshot.js';
import type {
  CaptureState,
  CdcSourcesConfig,
  ResolvedSource,
  SnapshotProgress,
  SourceSettings,
} from './types.js';

export interface CaptureOptions {
  /** `sources` from tributary.config.ts. */
  sources: CdcSourcesConfig | undefined;
  /** Tributary's database (where the log is): a pool, or a URL to open one. */
  pool?: Pool;
  url?: string;
  /** @default silentLogger */
  logger?: Logger;
  tuning?: StreamTuning;
  /** How EventStoreDB sources are read. @default @eventstore/db-client */
  eventStoreDbFeed?: (source: EventStoreDbSettings) => EsdbFeed;
  /** Records log commits (`tributary_cdc_*`) and the pool's usage. */
  metrics?: Metrics;
}

/** What the running capture knows about one source, without asking the source. */
export interface LiveSourceStatus {
  source: string;
  /** The slot in use, once the capture has worked it out (see resolveSourceNames). */
  slot: string | null;
  state: CaptureState;
  confirmedLsn: Lsn | null;
  checkpointLsn: Lsn | null;
  checkpointTime: Date | null;
  snapshot: SnapshotProgress | null;
  /** The incremental snapshot being taken while the stream runs, if any. */
  incremental: IncrementalProgress | null;
  caughtUpAt: Date | null;
  lastError: string | null;
  lastErrorAt: Date | null;
}

export interface Capture {
  /** Stops every source: an open log transaction rolls back, the slots keep their position. */
  stop(): Promise<void>;
  /** The PostgreSQL sources. */
  status(): LiveSourceStatus[];
  /** The EventStoreDB sources. */
  eventStoreDb(): LiveEventStoreDbStatus[];
  /**
   * Settles, with the error, when a source stops on an error that retrying cannot fix: its
   * setup (a table without a key, wal_level, rights), a lost slot, or a slot that is not
   * this log's. The other sources go on; the CLI stops and exits non-zero. Never settles
   * otherwise.
   */
  readonly failure: Promise<TributaryError>;
}

/**
 * Starts capturing every configured source into the log. Each source runs on its own:
 * it sets up (publication, slot, snapshot when needed), streams, and on a transient
 * failure (a dropped connection, a server restarting) reconnects with backoff from the
 * checkpoint stored in the log. An error retrying cannot fix stops that source and
 * settles `failure`.
 */
export function startCapture(options: CaptureOptions): Capture {
  const sources = resolveSources(options.sources);
  const eventStores = resolveEventStoreDbSources(options.sources);
  const logger = options.logger ?? silentLogger;
  if (options.pool === undefined && options.url === undefined) {
    throw new Error('startCapture needs the pool or the url of the Tributary database');
  }
  const ownPool = options.pool === undefined;
  const pool = options.pool ?? createPool(options.url!, { applicationName: 'tributary-cdc', logger });
  const untrackPool = options.metrics?.trackPool('cdc', pool);
  const controller = new AbortController();
  let fail!: (error: TributaryError) => void;
  const failure = new Promise<TributaryError>((resolve) => {
    fail = resolve;
  });
  const lives = sources.map(
    (source): LiveSourceStatus => ({
      source: source.name,
      slot: null,
      state: 'starting',
      confirmedLsn: null,
      checkpointLsn: null,
      checkpointTime: null,
      snapshot: null,
      incremental: null,
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
      metrics: options.metrics,
      fail,
    }),
  );
  const esdbLives = eventStores.map(
    (source): LiveEventStoreDbStatus => ({
      source: source.name,
      server: source.server,
      state: 'starting',
      position: null,
      events: 0,
      caughtUpAt: null,
      lastError: null,
      lastErrorAt: null,
    }),
  );
  runners.push(
    ...eventStores.map((source, index) =>
      runEventStoreDbSource({
        source,
        pool,
        logger: logger.child({ source: source.name }),
        signal: controller.signal,
        live: esdbLives[index]!,
        fail,
        ...(options.eventStoreDbFeed === undefined ? {} : { feed: options.eventStoreDbFeed }),
      }),
    ),
  );
  let stopping: Promise<void> | undefined;
  return {
    stop() {
      stopping ??= (async () => {
        controller.abort();
        await Promise.allSettled(runners);
        untrackPool?.();
        if (ownPool) await closePool(pool);
      })();
      return stopping;
    },
    status: () =>
      lives.map((live) => ({
        ...live,
        snapshot: live.snapshot && { ...live.snapshot },
        incremental: live.incremental && { ...live.incremental },
      })),
    eventStoreDb: () => esdbLives.map((live) => ({ ...live })),
    failure,
  };
}

interface RunContext {
  pool: Pool;
  logger: Logger;
  signal: AbortSignal;
  tuning: StreamTuning | undefined;
  metrics: Metrics | undefined;
  fail: (error: TributaryError) => void;
}

async function runSource(source: SourceSettings, live: LiveSourceStatus, context: RunContext): Promise<void> {
  const { pool, logger, signal } = context;
  // Written at start, at once when the state changes (snapshot, streaming, reconnecting…), and
  // every 2 s even when unchanged, so that readers can tell a live capture from a dead one.
  const report = async (withError = false) => {
    const snapshot = live.snapshot;
    await writeProgress(pool, source.name, {
      state: live.state,
      slotName: live.slot ?? '',
      snapshotTable: snapshot?.table ?? null,
      snapshotRowsDone: snapshot?.rowsDone ?? null,
      snapshotRowsTotal: snapshot?.rowsTotal ?? null,
      confirmedLsn: live.confirmedLsn,
      caughtUpAt: live.caughtUpAt,
      ...(withError ? { lastError: live.lastError } : {}),
    }).catch((error: unknown) => logger.debug('could not record capture progress', { error }));
  };
  let reportedState: string | undefined;
  let reportedAt = 0;
  let reporting = false;
  let inFlight = Promise.resolve();
  const tick = () => {
    if (reporting || (live.state === reportedState && Date.now() - reportedAt < 2000)) return;
    reporting = true;
    reportedState = live.state;
    reportedAt = Date.now();
    inFlight = report().finally(() => {
      reporting = false;
    });
  };
  /** No more periodic reports, and none still under way to land after the last one. */
  const stopReporting = async () => {
    clearInterval(reporter);
    await inFlight;
  };
  tick();
  const reporter = setInterval(tick, 100);
  let attempt = 0;
  try {
    while (!signal.aborted) {
      try {
        await runOnce(source, live, context, () => {
          attempt = 0;
        });
      } catch (error) {
        if (signal.aborted) break;
        const permanent = asPermanent(error, source.name);
        const shown = permanent ?? error;
        live.lastError = isTributaryError(shown)
          ? shown.describe()
          : String((error as Error)?.message ?? error);
        live.lastErrorAt = new Date();
        if (permanent !== undefined) {
          live.state = 'failed';
          logger.error('CAPTURE STOPPED', {
            code: permanent.code,
            message: permanent.message,
            hint: permanent.hint,
          });
          await stopReporting();
          await report(true);
          context.fail(permanent);
          return;
        }
        live.state = 'reconnecting';
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
    await stopReporting();
  }
  live.state = 'stopped';
  await report();
}

/** SQLSTATEs that no retry fixes: the role, its password, its rights, the database name. */
const REFUSALS = new Set(['28000', '28P01', '42501', '3D000']);

/** The error as one that stops the source for good, or undefined when a retry may succeed. */
function asPermanent(error: unknown, source: string): TributaryError | undefined {
  if (isPermanentCaptureError(error)) return error as TributaryError;
  const code = (error as { code?: unknown })?.code;
  if (typeof code === 'string' && REFUSALS.has(code)) {
    return new CdcSourceError(source, `the database refused: ${(error as Error).message}`, {
      hint: `Check sources.${source}.url (host, database, role, password) and that the role has REPLICATION (or is a superuser) and may read the captured tables.`,
      cause: error,
    });
  }
  return undefined;
}

async function runOnce(
  settings: SourceSettings,
  live: LiveSourceStatus,
  { pool, logger, signal, tuning, metrics }: RunContext,
  onStreaming: () => void,
): Promise<void> {
  const client = connectSource(settings);
  client.on('error', (error) => logger.warn('source connection lost', { error }));
  await client.connect();
  let heartbeat: NodeJS.Timeout | undefined;
  try {
    const server = await describeSourceServer(client, settings.name);
    const source = await resolveSourceNames(pool, settings);
    live.slot = source.slot;
    checkConfiguredNames(source);
    await lockCapture(client, source);
    // Refused here, before anything is created or streamed: a table that cannot be captured
    // stops the whole source rather than leaving a hole in the log.
    const tables = await checkSourceTables(client, source);
    await checkOutboxTables(client, source);
    const watermarks = watermarkMode(source, server);
    let checkpoint = await readCheckpoint(pool, source.name);
    const resumed = checkpoint !== undefined;
    const claim =
      (await readSlotClaim(pool, source.name)) ??
      (await claimNames(pool, source, server, checkpoint?.startLsn ?? null));
    if (await ensurePublication(client, source, logger)) await notePublicationCreated(pool, source.name);
    const resolveTypes = createTypeResolver(client);
    const slot = await inspectSlot(client, source.slot);
    if (checkpoint !== undefined) {
      if (slot === undefined)
        throw new SlotLostError(source.name, source.slot, 'no longer exists on the source');
      if (slot.problem !== null) throw new SlotLostError(source.name, source.slot, slot.problem);
      // Read again after the slot: the log records a position before the slot is confirmed
      // there, so this order never mistakes another process of this deployment for a stranger.
      checkpoint = (await readCheckpoint(pool, source.name))!;
      const verdict = judgeSlot({ slot, server, claim, checkpoint });
      if (!verdict.owned) {
        throw new SlotMismatchError(
          source.name,
          source.slot,
          `${verdict.reason}. The changes in between are not in this log, so capture of this source is stopped rather than resumed with a gap.`,
          resnapshotHint(source),
        );
      }
      if (checkpoint.confirmedLsn === null) {
        // Written by a version that did not record it: adopt the slot where it stands.
        const base = checkpoint.endLsn ?? checkpoint.startLsn;
        const at =
          slot.confirmedLsn !== null && compareLsn(slot.confirmedLsn, base) > 0 ? slot.confirmedLsn : base;
        await recordConfirmable(pool, source.name, at);
        checkpoint = { ...checkpoint, confirmedLsn: at };
        logger.info('recorded the identity of the slot this log was captured through', {
          slot: source.slot,
          at,
        });
      }
    } else {
      if (slot !== undefined) {
        const verdict = judgeSlot({ slot, server, claim, checkpoint });
        if (!verdict.owned) {
          throw new SlotMismatchError(
            source.name,
            source.slot,
            `${verdict.reason}. Tributary never reads or drops a slot it did not create.`,
            foreignSlotHint(source),
          );
        }
        if (slot.active) {
          throw new Error(`replication slot '${source.slot}' is in use by process ${slot.activePid}`);
        }
        // This log created it and has no checkpoint for it: a snapshot was interrupted.
        logger.warn('dropping the slot of an interrupted snapshot; starting it again', { slot: source.slot });
        await dropSlot(client, source.slot);
      } else if (settings.configuredSlot === undefined) {
        await warnOfEarlierDefaultSlot(client, source, logger);
      }
      if (source.snapshot === 'initial') {
        live.state = 'snapshotting';
        live.snapshot = { table: null, rowsDone: 0, rowsTotal: 0 };
        await takeSnapshot({
          source,
          server,
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
        await createSlotWithoutSnapshot(source, server, pool, client);
        logger.info('replication slot created (no snapshot)', { slot: source.slot });
      }
      checkpoint = (await readCheckpoint(pool, source.name)) as Checkpoint;
    }
    // A table added to `tables` since the log holds this source: back-filled while streaming.
    if (resumed) await backfillAddedTables(pool, source, logger);
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
    const windows = createSnapshotWindows();
    // Incremental snapshots run beside the stream, which puts their chunks into the log.
    const snapshots = new AbortController();
    const stopSnapshots = () => snapshots.abort();
    signal.addEventListener('abort', stopSnapshots);
    const snapshotting = runIncrementalSnapshots({
      source,
      tables,
      pool,
      windows,
      resolveTypes,
      watermarks,
      logger,
      signal: snapshots.signal,
      onProgress: (progress) => {
        live.incremental = progress;
      },
    });
    try {
      await streamChanges({
        source,
        checkpoint,
        pool,
        resolveTypes,
        keyColumns: new Map(tables.map((t) => [`${t.schema}.${t.table}`, t.keyColumns])),
        outboxes: new Map(source.outbox.map((o) => [`${o.schema}.${o.table}`, o])),
        windows,
        messages: watermarks === 'message',
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
            metrics?.cdcCommit(source.name, {
              seconds: last.commitSeconds,
              transactions: last.transactions,
              events: last.events,
            });
            recordSpan('tributary.cdc.commit', last.openedAt, {
              'tributary.source': source.name,
              'tributary.cdc.transactions': last.transactions,
              'tributary.cdc.events': last.events,
              'tributary.cdc.commit_lsn': last.commitLsn,
            });
            live.checkpointLsn = last.commitLsn;
            live.checkpointTime = last.commitTime;
            live.confirmedLsn = last.endLsn;
            onStreaming();
          },
        },
      });
    } finally {
      signal.removeEventListener('abort', stopSnapshots);
      snapshots.abort();
      await snapshotting;
      live.incremental = null;
    }
  } finally {
    if (heartbeat !== undefined) clearInterval(heartbeat);
    await client.end().catch(() => {});
  }
}

/**
 * How incremental snapshots mark their windows: logical decoding messages need the pgoutput
 * `messages` option, which came with PostgreSQL 14; before it, rows in a signalling table.
 */
function watermarkMode(source: SourceSettings, server: SourceServer): 'message' | 'table' {
  if (source.watermarks === 'table') return 'table';
  if (server.version >= 140000) return 'message';
  if (source.watermarks === 'message') {
    throw new CdcSourceError(
      source.name,
      'watermarks: message needs a source on PostgreSQL 14 or later (pgoutput streams logical decoding messages from 14 on).',
      {
        hint: `Leave watermarks out of sources.${source.name} (or set it to 'table'): a signalling table is used instead.`,
      },
    );
  }
  return 'table';
}

/** Two ints naming Tributary's advisory locks on a source: this class, and the slot name's hash. */
const CAPTURE_LOCK_CLASS = 0x54524942;

/**
 * One process captures a slot at a time. The slot itself refuses a second reader only while
 * it streams: during a snapshot it is idle, and a second process of the same deployment
 * would take it for the slot of an interrupted snapshot and drop it. So the capture holds a
 * session advisory lock on the source, named after the slot, on its own connection to the
 * source for as long as it runs; a process that dies releases it with its connection.
 */
async function lockCapture(client: pg.Client, source: ResolvedSource): Promise<void> {
  const { rows } = await client.query<{ locked: boolean }>(
    'select pg_try_advisory_lock($1, hashtext($2)) as locked',
    [CAPTURE_LOCK_CLASS, source.slot],
  );
  if (!rows[0]?.locked) {
    throw new Error(
      `replication slot '${source.slot}' is in use by process elsewhere: another Tributary process captures source '${source.name}'`,
    );
  }
}

/** A configured name that differs from the one the log recorded would point capture at another slot. */
function checkConfiguredNames(source: ResolvedSource): void {
  for (const [field, configured, used] of [
    ['slot', source.configuredSlot, source.slot],
    ['publication', source.configuredPublication, source.publication],
  ] as const) {
    if (configured !== undefined && configured !== used) {
      throw new CdcSourceError(
        source.name,
        `this log captures through ${field} '${used}', but the config names ${field} '${configured}'.`,
        {
          hint: `Restore the ${field} name, or run \`tributary cdc drop ${source.name} --yes\` and restart to start over with '${configured}' (a new snapshot).`,
        },
      );
    }
  }
}

function resnapshotHint(source: ResolvedSource): string {
  return [
    `Make sure nothing else reads slot '${source.slot}': leave \`slot\` out of sources.${source.name} (the default name is unique to this log database) or name a slot of its own.`,
    `Then run \`tributary cdc drop ${source.name} --yes\` (it forgets this log's checkpoint and leaves a slot this log did not create in place) and restart:`,
    'capture takes a new snapshot, which begins with a truncate event per table.',
  ].join(' ');
}

function foreignSlotHint(source: ResolvedSource): string {
  return `Leave \`slot\` out of sources.${source.name} (the default name is unique to this log database) or name a slot nothing else uses. If nothing uses '${source.slot}', drop it on the source: SELECT pg_drop_replication_slot('${source.slot}');`;
}

/**
 * Before slot names were made unique per log database, the default was `tributary_<source>`.
 * Such a slot left by an interrupted snapshot would pin WAL forever without a word.
 */
async function warnOfEarlierDefaultSlot(client: pg.Client, source: ResolvedSource, logger: Logger) {
  const earlier = `tributary_${source.name}`;
  if (earlier === source.slot) return;
  const slot = await inspectSlot(client, earlier);
  if (slot === undefined || slot.active) return;
  logger.warn('an inactive slot with the earlier default name exists on the source and holds WAL', {
    slot: earlier,
    retainedBytes: slot.retainedBytes,
    hint: `If no other deployment captures through it, drop it on the source: SELECT pg_drop_replication_slot('${earlier}');`,
  });
}

async function createSlotWithoutSnapshot(
  source: ResolvedSource,
  server: SourceServer,
  pool: Pool,
  client: pg.Client,
): Promise<void> {
  const replication: pg.Client = connectSource(source, { replication: true });
  replication.on('error', () => {});
  await replication.connect();
  try {
    const { consistentPoint } = await createOwnSlot({
      db: pool,
      source,
      server,
      client,
      replication,
      snapshot: 'nothing',
    });
    await insertCheckpoint(pool, {
      source: source.name,
      slotName: source.slot,
      publicationName: source.publication,
      streamId: source.streamId,
      startLsn: consistentPoint,
      snapshotRows: 0,
    });
    await recordKnownTables(pool, source.name, source.tables);
  } finally {
    await replication.end().catch(() => {});
  }
}
