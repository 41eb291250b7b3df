import type { Queryable } from '../../db/index.js';
import { type Position, START } from '../../ingest/index.js';
import { viewLag } from '../changelog/index.js';
import { loadSinks } from './sinkState.js';
import type { ResolvedSink } from './types.js';

export interface SinkStatus {
  name: string;
  view: string;
  backend: string;
  /** The name queries use, and the index behind it (none before the first build swaps in). */
  alias: string;
  index: string | undefined;
  /**
   * 'running', 'building' (an index is being built; the current one, if any, keeps serving and
   * following the view), 'paused', 'not running' (no process holds the lease), or
   * 'unregistered' (no process has started it yet).
   */
  state: 'running' | 'building' | 'paused' | 'not running' | 'unregistered';
  position: Position | undefined;
  /** Changes of the view after the checkpoint that every reader can see. */
  lagChanges: number;
  /** Age of the oldest of them, in seconds (0 when caught up). */
  lagSeconds: number;
  documentsPerSecond: number;
  documentsWritten: number;
  /** Failed attempts so far (the sink retries them). */
  errors: number;
  lastError: { message: string; at: string } | undefined;
  deadLetters: number;
  build:
    | { index: string; reason: string; done: number; total: number; phase: 'backfill' | 'catch-up' }
    | undefined;
  leaseOwner: string | undefined;
  updatedAt: Date | undefined;
}

/** Where each sink stands, from the database (so any process can answer). */
export async function getSinkStatuses(db: Queryable, sinks: readonly ResolvedSink[]): Promise<SinkStatus[]> {
  const rows = await loadSinks(
    db,
    sinks.map((sink) => sink.name),
  );
  const { rows: dead } = await db.query<{ sink: string; count: string }>(
    'select sink, count(*)::text as count from tributary.sink_dead_letters where sink = any ($1::text[]) group by sink',
    [sinks.map((sink) => sink.name)],
  );
  const statuses: SinkStatus[] = [];
  for (const sink of sinks) {
    const row = rows.find((r) => r.name === sink.name);
    const position = row?.position ?? undefined;
    const lag = position
      ? await viewLag(db, sink.view.name, position)
      : row?.build_position
        ? await viewLag(db, sink.view.name, row.build_position)
        : await viewLag(db, sink.view.name, START);
    const leased = row?.lease_owner && row.lease_valid ? row.lease_owner : undefined;
    statuses.push({
      name: sink.name,
      view: sink.view.name,
      backend: sink.backend.kind,
      alias: row?.alias ?? sink.alias,
      index: row?.index_name ?? undefined,
      state: !row
        ? 'unregistered'
        : row.paused
          ? 'paused'
          : !leased
            ? 'not running'
            : row.build_index
              ? 'building'
              : 'running',
      position,
      lagChanges: lag.changes,
      lagSeconds: lag.seconds,
      documentsPerSecond: leased ? Math.round(row?.documents_per_second ?? 0) : 0,
      documentsWritten: Number(row?.documents_written ?? 0),
      errors: Number(row?.errors ?? 0),
      lastError: row?.last_error ?? undefined,
      deadLetters: Number(dead.find((d) => d.sink === sink.name)?.count ?? 0),
      build: row?.build_index
        ? {
            index: row.build_index,
            reason: row.build_reason ?? '',
            done: Number(row.build_done),
            total: Number(row.build_total),
            phase: row.build_position ? 'catch-up' : 'backfill',
          }
        : undefined,
      leaseOwner: leased,
      updatedAt: row?.updated_at,
    });
  }
  return statuses;
}

/**
 * The figures a metrics module exports per sink (gauges, except `errors`, a counter).
 * Read from the database, so any process serving metrics reports every sink.
 */
export interface SinkFigures {
  sink: string;
  lagChanges: number;
  lagSeconds: number;
  documentsPerSecond: number;
  errors: number;
  deadLetters: number;
}

export async function readSinkMetrics(db: Queryable, sinks: readonly ResolvedSink[]): Promise<SinkFigures[]> {
  return (await getSinkStatuses(db, sinks)).map((status) => ({
    sink: status.name,
    lagChanges: status.lagChanges,
    lagSeconds: status.lagSeconds,
    documentsPerSecond: status.documentsPerSecond,
    errors: status.errors,
    deadLetters: status.deadLetters,
  }));
}
