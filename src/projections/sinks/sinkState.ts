import type { Queryable } from '../../db/index.js';
import type { Position } from '../../ingest/index.js';
import type { DocumentOp, ResolvedSink } from './types.js';

/** A sink's row in tributary.sinks: where it stands, and the build in progress. */
export interface SinkRow {
  name: string;
  view: string;
  backend: string;
  fingerprint: string;
  alias: string;
  index_name: string | null;
  position: Position | null;
  skip_snapshot: string | null;
  build_index: string | null;
  build_fingerprint: string | null;
  build_reason: string | null;
  build_position: Position | null;
  build_snapshot: string | null;
  build_done: string;
  build_total: string;
  build_started_at: Date | null;
  builds: number;
  pending_swap: boolean;
  retired_index: string | null;
  reindex_requested: boolean;
  paused: boolean;
  generation: string;
  lease_owner: string | null;
  lease_valid: boolean;
  documents_written: string;
  documents_per_second: number;
  errors: string;
  last_error: { message: string; at: string } | null;
  applied_change_at: Date | null;
  updated_at: Date;
}

const COLUMNS = `name, view, backend, fingerprint, alias, index_name, position, skip_snapshot::text,
  build_index, build_fingerprint, build_reason, build_position, build_snapshot::text, build_done::text,
  build_total::text, build_started_at, builds, pending_swap, retired_index, reindex_requested, paused,
  generation::text, lease_owner, coalesce(lease_expires_at > now(), false) as lease_valid,
  documents_written::text, documents_per_second, errors::text, last_error, applied_change_at, updated_at`;

/** Adds the sink's row when it is new. A sink moved to another view or backend kind starts over. */
export async function registerSink(db: Queryable, sink: ResolvedSink): Promise<void> {
  await db.query(
    `insert into tributary.sinks (name, view, backend, fingerprint, alias) values ($1, $2, $3, $4, $5)
     on conflict (name) do update set view = excluded.view, backend = excluded.backend, fingerprint = excluded.fingerprint,
       alias = excluded.alias, index_name = null, position = null, skip_snapshot = null, build_index = null,
       build_fingerprint = null, build_reason = null, build_position = null, build_snapshot = null,
       pending_swap = false, retired_index = null, generation = sinks.generation + 1, updated_at = now()
     where sinks.view <> excluded.view or sinks.backend <> excluded.backend`,
    [sink.name, sink.view.name, sink.backend.kind, sink.fingerprint, sink.alias],
  );
}

export async function loadSink(db: Queryable, name: string): Promise<SinkRow | undefined> {
  const { rows } = await db.query<SinkRow>(`select ${COLUMNS} from tributary.sinks where name = $1`, [name]);
  return rows[0];
}

export async function loadSinks(db: Queryable, names?: readonly string[]): Promise<SinkRow[]> {
  const { rows } = await db.query<SinkRow>(
    `select ${COLUMNS} from tributary.sinks ${names ? 'where name = any ($1::text[])' : ''} order by name`,
    names ? [names] : [],
  );
  return rows;
}

/** Takes the sink's lease when it is free, expired or ours; false when another process holds it. */
export async function acquireSinkLease(
  db: Queryable,
  name: string,
  owner: string,
  timeoutMs: number,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `update tributary.sinks set lease_owner = $2, lease_expires_at = now() + $3::interval
     where name = $1 and (lease_owner is null or lease_owner = $2 or lease_expires_at < now())`,
    [name, owner, `${timeoutMs} milliseconds`],
  );
  return rowCount === 1;
}

export async function releaseSinkLease(db: Queryable, name: string, owner: string): Promise<void> {
  await db.query(
    'update tributary.sinks set lease_owner = null, lease_expires_at = null where name = $1 and lease_owner = $2',
    [name, owner],
  );
}

/** Columns a sink's holder may set (their SQL types; everything else stays out of dynamic SQL). */
const SETTABLE = {
  fingerprint: 'text',
  alias: 'text',
  index_name: 'text',
  position: 'text',
  skip_snapshot: 'pg_snapshot',
  build_index: 'text',
  build_fingerprint: 'text',
  build_reason: 'text',
  build_position: 'text',
  build_snapshot: 'pg_snapshot',
  build_done: 'bigint',
  build_total: 'bigint',
  build_started_at: 'timestamptz',
  builds: 'integer',
  pending_swap: 'boolean',
  retired_index: 'text',
  reindex_requested: 'boolean',
  documents_per_second: 'double precision',
  applied_change_at: 'timestamptz',
} as const;

export type SinkUpdate = Partial<Record<keyof typeof SETTABLE, unknown>> & {
  /** Added to documents_written. */
  addDocuments?: number;
};

/**
 * Updates the sink's row and renews the lease, only while `owner` holds it (and, with
 * `expectPosition`, while the checkpoint is still there): false when it was lost.
 */
export async function updateSink(
  db: Queryable,
  name: string,
  owner: string,
  leaseTimeoutMs: number,
  update: SinkUpdate,
  expectPosition?: Position | null,
): Promise<boolean> {
  const params: unknown[] = [name, owner, `${leaseTimeoutMs} milliseconds`];
  const sets = ['lease_expires_at = now() + $3::interval', 'updated_at = now()'];
  for (const [column, value] of Object.entries(update)) {
    if (column === 'addDocuments') {
      params.push(value);
      sets.push(`documents_written = documents_written + $${params.length}::bigint`);
      continue;
    }
    const type = SETTABLE[column as keyof typeof SETTABLE];
    if (!type) throw new Error(`not a settable sink column: ${column}`);
    params.push(value === undefined ? null : value);
    sets.push(`${column} = $${params.length}::${type}`);
  }
  let where = 'name = $1 and lease_owner = $2';
  if (expectPosition !== undefined) {
    params.push(expectPosition);
    where += ` and position is not distinct from $${params.length}::text`;
  }
  const { rowCount } = await db.query(`update tributary.sinks set ${sets.join(', ')} where ${where}`, params);
  return rowCount === 1;
}

/** Records a failure for status (the sink keeps retrying). */
export async function recordSinkError(db: Queryable, name: string, message: string): Promise<void> {
  await db.query(
    `update tributary.sinks set errors = errors + 1,
       last_error = jsonb_build_object('message', $2::text, 'at', to_char(now() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
     where name = $1`,
    [name, message.slice(0, 2000)],
  );
}

/** Sets documents aside with the reason they could not be indexed. */
export async function recordDeadLetters(
  db: Queryable,
  sink: string,
  letters: readonly { op: DocumentOp; reason: string }[],
): Promise<void> {
  if (letters.length === 0) return;
  await db.query(
    `insert into tributary.sink_dead_letters (sink, document_id, version, op, key, document, reason)
     select $1, l.id, l.version, l.op, l.key, l.document, l.reason
     from jsonb_to_recordset($2::jsonb) as l(id text, version bigint, op text, key jsonb, document jsonb, reason text)
     on conflict (sink, document_id, version) do nothing`,
    [
      sink,
      JSON.stringify(
        letters.map(({ op, reason }) => ({
          id: op.id,
          version: op.version.toString(),
          op: op.op,
          key: op.key,
          document: op.op === 'upsert' ? op.document : null,
          reason: reason.slice(0, 4000),
        })),
      ),
    ],
  );
}

export interface SinkDeadLetter {
  id: string;
  sink: string;
  documentId: string;
  version: string;
  op: 'upsert' | 'delete';
  key: Record<string, unknown>;
  reason: string;
  createdAt: Date;
}

export async function listSinkDeadLetters(
  db: Queryable,
  options: { sink?: string; limit?: number } = {},
): Promise<SinkDeadLetter[]> {
  const { rows } = await db.query<{
    id: string;
    sink: string;
    document_id: string;
    version: string;
    op: 'upsert' | 'delete';
    key: Record<string, unknown>;
    reason: string;
    created_at: Date;
  }>(
    `select id::text, sink, document_id, version::text, op, key, reason, created_at from tributary.sink_dead_letters
     where ($1::text is null or sink = $1) order by id limit $2`,
    [options.sink ?? null, options.limit ?? 1000],
  );
  return rows.map((row) => ({
    id: row.id,
    sink: row.sink,
    documentId: row.document_id,
    version: row.version,
    op: row.op,
    key: row.key,
    reason: row.reason,
    createdAt: row.created_at,
  }));
}

/** Asks the running sink to pause, resume or rebuild its index; false when the sink is unknown. */
export async function requestSink(
  db: Queryable,
  name: string,
  request: 'pause' | 'resume' | 'reindex',
): Promise<boolean> {
  const set =
    request === 'pause'
      ? 'paused = true'
      : request === 'resume'
        ? 'paused = false'
        : 'reindex_requested = true';
  const { rowCount } = await db.query(
    `update tributary.sinks set ${set}, updated_at = now() where name = $1`,
    [name],
  );
  return rowCount === 1;
}

/**
 * The oldest changelog cursor a sink still needs (its live or build checkpoint), or undefined.
 * Changelog pruning keeps everything after it.
 */
export async function oldestSinkPosition(db: Queryable): Promise<Position | undefined> {
  const { rows } = await db.query<{ position: string | null }>(
    `select min(p) as position from (
       select position as p from tributary.sinks where position is not null
       union all select build_position from tributary.sinks where build_position is not null) s`,
  );
  return rows[0]?.position ?? undefined;
}
