import type { EventStoreDbSourceConfig } from '../eventstoredb/types.js';
import type { IncrementalSnapshotStatus } from './incrementalSnapshots.js';
import type { Lsn } from './lsn.js';

/**
 * A transactional outbox table: each row inserted into it becomes one domain event in the log
 * (in the stream, with the type, data and id its columns hold) instead of a row change.
 */
export interface OutboxConfig {
  /** The outbox table, schema-qualified, e.g. `'public.outbox'`. */
  table: string;
  /** Column holding the stream the event goes to, e.g. the aggregate id. */
  stream: string;
  /** Column holding the event type. */
  type: string;
  /** Column holding the event data: a JSON object, in a json or jsonb column (or text holding JSON). */
  data: string;
  /**
   * Column holding the event id (uuid or text): appends are idempotent by it, and it is the
   * event's id in the log. Without it, ids are derived from the source LSN.
   */
  id?: string;
  /** Column holding the event metadata: a JSON object, in a json or jsonb column. */
  metadata?: string;
  /** Put before every stream name, e.g. `'order-'`. @default '' */
  streamPrefix?: string;
}

/** One source database in `tributary.config.ts` under `sources.<name>`. */
export interface CdcSourceConfig {
  /** A PostgreSQL source (logical replication). @default 'postgres' */
  kind?: 'postgres';
  /** Connection string of the source database (a role with REPLICATION, or a superuser). */
  url: string;
  /** Schema-qualified tables to capture, e.g. `['public.orders']` (may be empty with an outbox). */
  tables: readonly string[];
  /** Outbox tables: each inserted row becomes a domain event in the stream it names (see README). */
  outbox?: OutboxConfig | readonly OutboxConfig[];
  /**
   * How incremental snapshots mark their chunk windows in the replication stream: `message`
   * (`pg_logical_emit_message`, PostgreSQL 14 and later), `table` (rows inserted into
   * `signalTable`, which joins the publication; any version), or `auto` (message from 14 on,
   * table before). @default 'auto'
   */
  watermarks?: 'auto' | 'message' | 'table';
  /** The signalling table of `watermarks: 'table'`, created when missing. @default 'public.tributary_signals' */
  signalTable?: string;
  /**
   * Replication slot on the source. Two deployments must never share one.
   * @default `tributary_<source>_<hash>`, the hash naming this log database (unique per log database)
   */
  slot?: string;
  /** Publication on the source. @default the same name as the default slot */
  publication?: string;
  /** `initial` copies the existing rows first; `never` only streams changes. @default 'initial' */
  snapshot?: 'initial' | 'never';
  /** Rows read per snapshot chunk (and appended to the log at once). @default 5000 */
  snapshotChunkSize?: number;
  /**
   * Writes a tiny message into the source's WAL at this interval, so a source with no
   * traffic of its own still lets its slot advance. 0 turns it off. @default 0
   */
  heartbeatIntervalMs?: number;
  /**
   * `cdc status` warns when the capture is not running and its slot holds more WAL than this
   * on the source (the source cannot remove that WAL until capture resumes). 0 turns it off.
   * @default 268435456 (256 MiB)
   */
  retainedWalWarningBytes?: number;
}

/**
 * `sources` of tributary.config.ts: PostgreSQL databases (logical replication) and
 * EventStoreDB/KurrentDB servers (`kind: 'eventstoredb'`), by source name.
 */
export type CdcSourcesConfig = Readonly<Record<string, CdcSourceConfig | EventStoreDbSourceConfig>>;

export interface TableName {
  schema: string;
  table: string;
}

/** An outbox table after validation. */
export interface OutboxSettings extends TableName {
  columns: { stream: string; type: string; data: string; id: string | null; metadata: string | null };
  streamPrefix: string;
}

/** A source after validation, with every default filled in but the slot and publication names. */
export interface SourceSettings {
  name: string;
  url: string;
  tables: TableName[];
  outbox: OutboxSettings[];
  watermarks: 'auto' | 'message' | 'table';
  signalTable: TableName;
  /** The configured slot, if any (the name in use also depends on the log database). */
  configuredSlot: string | undefined;
  configuredPublication: string | undefined;
  snapshot: 'initial' | 'never';
  snapshotChunkSize: number;
  heartbeatIntervalMs: number;
  retainedWalWarningBytes: number;
  /** The log stream that receives this source's changes: `cdc-<source>`. */
  streamId: string;
}

/** A source with the slot and publication it is captured through in this log. */
export interface ResolvedSource extends SourceSettings {
  slot: string;
  publication: string;
}

export type CaptureState =
  | 'starting'
  | 'snapshotting'
  | 'streaming'
  | 'reconnecting'
  | 'failed'
  | 'stopped'
  | 'not running';

export interface SnapshotProgress {
  table: string | null;
  rowsDone: number;
  /** Estimate from the planner statistics, exact for small tables. */
  rowsTotal: number;
}

/** What `tributary cdc status` and the API show for one source. */
export interface SourceStatus {
  kind: 'postgres';
  source: string;
  slot: string;
  publication: string;
  streamId: string;
  /**
   * What the capture is doing. Only a capture that reported in the last 15 s is running;
   * otherwise `stopped` (it stopped, on a signal or on the error in `lastError`) or
   * `not running` (it never ran, or died without a word, e.g. killed).
   */
  state: CaptureState;
  running: boolean;
  /** Whether the slot exists on the source (null when the source is unreachable). */
  slotExists: boolean | null;
  /** Whether a process is reading the slot right now (null when unknown). */
  slotActive: boolean | null;
  /** `lost` / the invalidation reason when the server invalidated the slot. */
  slotProblem: string | null;
  confirmedLsn: Lsn | null;
  /** The last source transaction in the log. */
  checkpointLsn: Lsn | null;
  checkpointTime: Date | null;
  transactions: number;
  /** Source WAL written after the slot's confirmed position: what capture has yet to read. */
  lagBytes: number | null;
  /** `lagBytes` as PostgreSQL's pg_size_pretty writes it, e.g. `61 MB`. */
  lagSize: string | null;
  lagSeconds: number | null;
  /**
   * Source WAL the slot keeps from being removed, from its restart_lsn: what the source's
   * disk holds for this capture. Larger than `lagBytes` (decoding restarts at the oldest
   * transaction still open at the confirmed position).
   */
  retainedBytes: number | null;
  retainedSize: string | null;
  /** pg_replication_slots.wal_status: reserved, extended, unreserved (about to be lost) or lost. */
  walStatus: string | null;
  /** WAL that may still be written before the slot is invalidated (null: no limit). */
  safeWalSizeBytes: number | null;
  safeWalSize: string | null;
  snapshot: { done: boolean; rows: number; progress: SnapshotProgress | null };
  /** Incremental snapshots requested or running, and the latest finished ones. */
  incrementalSnapshots: IncrementalSnapshotStatus[];
  lastError: string | null;
  lastErrorAt: Date | null;
  /** The capture's last report (it reports every 2 s while it runs). */
  updatedAt: Date | null;
  /** What needs attention: retained WAL above the threshold while stopped, a slot read by someone else… */
  warnings: string[];
}
