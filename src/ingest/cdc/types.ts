import type { Lsn } from './lsn.js';

/** One source database in `tributary.config.ts` under `sources.<name>`. */
export interface CdcSourceConfig {
  /** Connection string of the source database (a role with REPLICATION, or a superuser). */
  url: string;
  /** Schema-qualified tables to capture, e.g. `['public.orders']`. */
  tables: readonly string[];
  /** Replication slot on the source. @default `tributary_<source>` */
  slot?: string;
  /** Publication on the source. @default `tributary_<source>` */
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
}

export type CdcSourcesConfig = Readonly<Record<string, CdcSourceConfig>>;

export interface TableName {
  schema: string;
  table: string;
}

/** A source after validation, with every default filled in. */
export interface ResolvedSource {
  name: string;
  url: string;
  tables: TableName[];
  slot: string;
  publication: string;
  snapshot: 'initial' | 'never';
  snapshotChunkSize: number;
  heartbeatIntervalMs: number;
  /** The log stream that receives this source's changes: `cdc-<source>`. */
  streamId: string;
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
  source: string;
  slot: string;
  publication: string;
  streamId: string;
  state: CaptureState;
  /** Whether the slot exists on the source (null when the source is unreachable). */
  slotExists: boolean | null;
  /** `lost` / the invalidation reason when the server invalidated the slot. */
  slotProblem: string | null;
  confirmedLsn: Lsn | null;
  /** The last source transaction in the log. */
  checkpointLsn: Lsn | null;
  checkpointTime: Date | null;
  transactions: number;
  lagBytes: number | null;
  lagSeconds: number | null;
  snapshot: { done: boolean; rows: number; progress: SnapshotProgress | null };
  lastError: string | null;
  lastErrorAt: Date | null;
  updatedAt: Date | null;
}
