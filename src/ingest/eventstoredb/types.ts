/**
 * An EventStoreDB or KurrentDB source in `tributary.config.ts` under `sources.<name>`: the
 * server's `$all` is captured into the log, each event once, in `$all` order.
 */
export interface EventStoreDbSourceConfig {
  kind: 'eventstoredb';
  /** Connection string: `esdb://host:2113?tls=false`, `esdb+discover://…` for a cluster (credentials in it). */
  url: string;
  /** Put before every stream name in the log. @default 'esdb-' */
  streamPrefix?: string;
  /**
   * A server-side filter on `$all` (at most one of these). Stream filters match the
   * EventStoreDB stream name, without `streamPrefix`.
   */
  filter?: {
    streamPrefixes?: readonly string[];
    streamRegex?: string;
    eventTypePrefixes?: readonly string[];
    eventTypeRegex?: string;
  };
  /** Capture system events (types starting with `$`). @default false */
  systemEvents?: boolean;
  /** Capture link events (`$>`), unresolved: their data is the link (`<revision>@<stream>`). @default false */
  linkEvents?: boolean;
  /** Where a source without a checkpoint starts: the beginning of `$all`, or its end (only new events). @default 'start' */
  from?: 'start' | 'end';
  /** Most events one log transaction holds. @default 1000 */
  batchSize?: number;
}

/** An EventStoreDB source after validation, with its defaults. */
export interface EventStoreDbSettings {
  kind: 'eventstoredb';
  name: string;
  url: string;
  /** The server's address for display (no credentials). */
  server: string;
  streamPrefix: string;
  filter: EventStoreDbFilter | null;
  systemEvents: boolean;
  linkEvents: boolean;
  from: 'start' | 'end';
  batchSize: number;
}

export interface EventStoreDbFilter {
  on: 'stream' | 'eventType';
  prefixes?: readonly string[];
  regex?: string;
}

/** A `$all` position. */
export interface EsdbPosition {
  commit: bigint;
  prepare: bigint;
}

export type EventStoreDbCaptureState =
  | 'starting'
  | 'catching up'
  | 'live'
  | 'reconnecting'
  | 'standing by'
  | 'failed'
  | 'stopped'
  | 'not running';

/** What `tributary cdc status` shows for an EventStoreDB source. */
export interface EventStoreDbSourceStatus {
  kind: 'eventstoredb';
  source: string;
  server: string;
  /** Only a capture that reported in the last 15 s is running. */
  state: EventStoreDbCaptureState;
  running: boolean;
  /** The `$all` position of the last event read (null before the first). */
  position: { commit: string; prepare: string } | null;
  lastEventId: string | null;
  /** Events read from `$all` (captured or skipped by the client-side rules). */
  events: number;
  /** The server's last `$all` position (null when unreachable or empty). */
  head: { commit: string; prepare: string } | null;
  /** Bytes of the server's transaction log after the position (filtered-out events included). */
  lagBytes: number | null;
  /** Seconds since the capture was last caught up (0 when caught up). */
  lagSeconds: number | null;
  checkpointTime: Date | null;
  lastError: string | null;
  lastErrorAt: Date | null;
  updatedAt: Date | null;
  warnings: string[];
}
