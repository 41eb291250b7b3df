import { createHash } from 'node:crypto';
import { type PoolClient, qualified, quoteIdentifier } from '../db/index.js';
import { ValidationError } from '../errors.js';
import {
  type Envelope,
  formatPosition,
  type LogFilter,
  maxPosition,
  type Position,
  parsePosition,
  readAll,
} from '../ingest/index.js';
import { compileLogFilter } from '../ingest/log/readAll.js';
import { CHANGES_PER_ROW } from './changelog/index.js';
import type { AnyView } from './defineProjection.js';
import { canonicalJsonColumnSql } from './values.js';
import { SQL_TYPES } from './view.js';

/**
 * A projection written as SQL: each event that passes the filter (and `where`) makes one row
 * of `view`, whose columns are SQL expressions over the event. The runner applies a batch
 * as one statement inside PostgreSQL (read, upsert, changelog), so no event crosses to the
 * process: for pass-through, mapping and selection views this is several times faster than a
 * handler. The checkpoint, leases, rebuilds and exactly-once hold as for handlers.
 *
 * The event is `e`, with the columns `position` (text, as in envelopes), `stream_id`,
 * `stream_position`, `event_id`, `type`, `data` and `metadata` (jsonb), `event_time` and
 * `recorded_at` (timestamptz). Two events of a batch that make the same key: the later wins,
 * as with `ctx.upsert`.
 */
export interface SqlProjectionStep {
  /** The view each event writes a row of: one of the projection's views. */
  view: AnyView | string;
  /**
   * Every column of the view (nullable ones may be left out: null) as a SQL expression over
   * `e`, cast to the column's type. E.g. `{ auction: "(e.data->>'auction')::bigint" }`.
   */
  columns: Record<string, string>;
  /** Only events for which this SQL condition over `e` holds make a row. */
  where?: string;
  /**
   * Events per statement (and transaction). No event passes through the process, so batches
   * larger than a handler's cost nothing in memory and share the fixed cost of a transaction.
   * @default 5000
   */
  batchSize?: number;
}

/** Events per statement of a SQL projection, unless its step says otherwise. */
export const DEFAULT_SQL_BATCH_SIZE = 5000;

/** Checks a SQL step against its projection's views (at definition time). */
export function checkSqlStep(
  projection: string,
  step: SqlProjectionStep,
  views: readonly AnyView[],
): AnyView {
  const name = typeof step.view === 'string' ? step.view : step.view.name;
  const view = views.find((candidate) => candidate.name === name);
  const fail = (message: string, hint: string) => {
    throw new ValidationError(`Projection '${projection}': ${message}`, { field: 'sql', hint });
  };
  if (!view) return fail(`sql.view '${name}' is not one of its views.`, 'List the view in `views`.');
  for (const column of Object.keys(step.columns ?? {})) {
    if (!(column in view.columns))
      fail(
        `sql.columns names '${column}', which view '${name}' does not have.`,
        `Its columns: ${Object.keys(view.columns).join(', ')}.`,
      );
    const expression = step.columns[column];
    if (typeof expression !== 'string' || expression.trim() === '')
      fail(
        `sql.columns.${column} is not a SQL expression.`,
        'Give each column a SQL expression over the event `e`.',
      );
  }
  for (const [column, spec] of Object.entries(view.columns)) {
    const required = view.primaryKey.includes(column) || spec.nullable === false;
    if (required && !(column in (step.columns ?? {})))
      fail(
        `sql.columns lacks '${column}', which view '${name}' requires.`,
        'Give every key and not-null column an expression.',
      );
  }
  if (step.where !== undefined && (typeof step.where !== 'string' || step.where.trim() === ''))
    fail(
      'sql.where is not a SQL condition.',
      'Give a SQL condition over the event `e`, or leave `where` out.',
    );
  if (
    step.batchSize !== undefined &&
    (!Number.isInteger(step.batchSize) || step.batchSize < 1 || step.batchSize > 100_000)
  )
    fail(`sql.batchSize is ${String(step.batchSize)}.`, 'Give a whole number of events from 1 to 100000.');
  return view;
}

/** What one SQL batch did. */
export interface SqlBatch {
  /** Events read (that passed the filter). */
  read: number;
  /** View rows written (one per key: the batch's net change), and as many changelog entries. */
  written: number;
  /** The new checkpoint: after the last event read, or the visibility bound on a short read. */
  next: Position;
  held: boolean;
}

/**
 * The statement of a SQL step for a schema, built once per projection and schema, and named:
 * each connection parses and plans it once, not on every batch (a few milliseconds each).
 */
const statements = new WeakMap<SqlProjectionStep, Map<string, { name: string; text: string }>>();

function preparedStatement(
  step: SqlProjectionStep,
  view: AnyView,
  schema: string,
  filterSql: string,
  source: string | undefined,
): { name: string; text: string } {
  const text = sqlBatchStatement(step, view, schema, filterSql, source);
  return { name: `tributary_sql_${createHash('sha256').update(text).digest('hex').slice(0, 24)}`, text };
}

/**
 * Applies up to `limit` events after `from` in one statement: the batch is read under the
 * visibility rule (as readVisible does), its rows upserted, and their changes appended to the
 * changelog as one packed row, in the caller's transaction. Only this projection writes the
 * view (under its lease), so the keys found before the statement are exactly those to update.
 */
export async function runSqlBatch(
  client: PoolClient,
  step: SqlProjectionStep,
  view: AnyView,
  schema: string,
  filter: LogFilter | undefined,
  from: Position,
  limit: number,
  /**
   * Read the events from this table (with the log's columns, all of them visible) instead of
   * the log: the testing kit's given events.
   */
  source?: string,
): Promise<SqlBatch> {
  const { transactionId, globalPosition } = parsePosition(from);
  const params: unknown[] = [transactionId.toString(), globalPosition.toString(), limit, view.name];
  const filterSql = compileLogFilter(filter, params);
  const bySchema = statements.get(step) ?? new Map<string, { name: string; text: string }>();
  statements.set(step, bySchema);
  const cacheKey = `${schema}\u0000${source ?? ''}`;
  const statement = bySchema.get(cacheKey) ?? preparedStatement(step, view, schema, filterSql, source);
  bySchema.set(cacheKey, statement);
  // Every join of the statement is between sets of at most a batch, which the planner, misled
  // by estimates of one row (a parameterised range of the log), would run as nested loops:
  // a thousand rows joined a thousand times. Hash joins are right for any batch. SET LOCAL lasts
  // to the end of the caller's transaction (or its savepoint's rollback), which runs nothing
  // after this but its checkpoint update.
  await client.query('set local enable_nestloop = off');
  const { rows } = await client.query<{
    read: number;
    written: number;
    last_xid: string | null;
    last_seq: string | null;
    bound: string;
    held: boolean;
  }>({ ...statement, values: params });
  const row = rows[0]!;
  const last = row.last_xid === null ? from : formatPosition(row.last_xid, row.last_seq!);
  const next = row.read === limit ? last : maxPosition(last, formatPosition(row.bound, 0n));
  return { read: row.read, written: row.written, next, held: row.held };
}

/** The first event after `from` (what a halted SQL batch reports as the failing event). */
export async function firstEventAfter(
  client: PoolClient,
  from: Position,
  filter: LogFilter | undefined,
): Promise<Envelope | undefined> {
  const { events } = await readAll(client, from, { limit: 1, ...(filter ? { filter } : {}) });
  return events[0];
}

function sqlBatchStatement(
  step: SqlProjectionStep,
  view: AnyView,
  schema: string,
  filterSql: string,
  source?: string,
): string {
  const table = qualified(schema, view.name);
  const columns = Object.keys(view.columns).filter((column) => column in step.columns);
  const quoted = columns.map(quoteIdentifier);
  const key = view.primaryKey.map(quoteIdentifier);
  const typed = columns.map(
    (column, i) => `(${step.columns[column]})::${SQL_TYPES[view.columns[column]!.type]} as ${quoted[i]}`,
  );
  // The changelog's JSON of a row: every column of the view in canonical form, as the view
  // writer makes it (columns the step leaves out are null), printed by row_to_json from a
  // lateral row of canonical values.
  const canonicalRow = (alias: string, only?: readonly string[]) =>
    `lateral (select ${Object.entries(view.columns)
      .filter(([column]) => !only || only.includes(column))
      .map(
        ([column, spec]) =>
          `${columns.includes(column) ? canonicalJsonColumnSql(`${alias}.${quoteIdentifier(column)}`, spec.type) : 'null'} as ${quoteIdentifier(column)}`,
      )
      .join(', ')})`;
  const sameKey = key.map((column) => `o.${column} = w.${column}`).join(' and ');
  const updates = quoted.filter((_, i) => !view.primaryKey.includes(columns[i]!));
  // The visibility bound is the statement's own snapshot, named where it is used (a CTE of
  // it would be a parameter to the planner, which then scans the log for \`held\`).
  const xmin = source ? `'0'::xid8` : 'pg_snapshot_xmin(pg_current_snapshot())';
  return `with batch as materialized (
    select r.* from ${source ?? 'tributary.events'} r
    where (r.transaction_id, r.global_position) > ($1::xid8, $2::bigint)
      ${source ? '' : `and r.transaction_id < ${xmin}`}
      ${filterSql}
    order by r.transaction_id, r.global_position
    limit $3
  ),
  e as (
    select lpad(to_hex(r.transaction_id::text::bigint), 16, '0') || '-' || lpad(to_hex(r.global_position), 16, '0') as position,
           r.stream_id, r.stream_position, r.event_id, r.type, r.data, r.metadata, r.event_time, r.recorded_at
    from batch r
  ),
  made as (
    select e.position as "_position", ${typed.join(', ')}
    from e
    ${step.where ? `where (${step.where})` : ''}
  ),
  -- The batch's net change per key: the last event's row.
  written as materialized (
    select distinct on (${key.join(', ')}) * from made order by ${key.join(', ')}, "_position" desc
  ),
  -- The rows these keys had. \`= any (array(…))\` on the first key column keeps both this read
  -- and the update on the primary key's index however stale the view's statistics are (a view
  -- filling fast looks small to the planner, which would then scan all of it for a join).
  old as materialized (
    select o.* from ${table} o
    where o.${key[0]} = any (array(select ${key[0]} from written))
      ${key.length > 1 ? `and exists (select 1 from written w where ${sameKey})` : ''}
  ),
  inserted as (
    insert into ${table} (${quoted.join(', ')})
    select ${quoted.join(', ')} from written w where not exists (select 1 from old o where ${sameKey})
  ),
  ${
    updates.length > 0
      ? `updated as (
    update ${table} o set ${updates.map((column) => `${column} = w.${column}`).join(', ')}
    from written w where ${sameKey} and o.${key[0]} = any (array(select ${key[0]} from old))
  ),`
      : ''
  }
  -- The changes in key order (written's), packed into rows of at most ${CHANGES_PER_ROW} each.
  numbered as (
    select w.*, row_number() over () - 1 as entry from written w
  ),
  logged as (
    insert into tributary.view_changes (view, op, key, log_position, changes)
    select $4, 'changes', '{}', max(w."_position"),
           '[' || string_agg('["upsert",' || row_to_json(k)::text || ',' || row_to_json(r)::text || ','
                             || case when o.${key[0]} is null then 'null' else row_to_json(p)::text end || ']',
                             ',' order by w.entry) || ']'
    from numbered w left join old o on ${sameKey},
         ${canonicalRow('w', view.primaryKey)} k, ${canonicalRow('w')} r, ${canonicalRow('o')} p
    group by w.entry / ${CHANGES_PER_ROW}
    order by w.entry / ${CHANGES_PER_ROW}
  ),
  last as (select l.transaction_id, l.global_position from batch l order by l.transaction_id desc, l.global_position desc limit 1)
  select (select count(*) from batch)::int as read,
         (select count(*) from written)::int as written,
         (select transaction_id::text from last) as last_xid,
         (select global_position::text from last) as last_seq,
         ${xmin}::text as bound,
         ${source ? 'false' : `exists (select 1 from tributary.events h where h.transaction_id >= ${xmin})`} as held`;
}
