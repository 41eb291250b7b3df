import type { Queryable } from '../../db/index.js';
import { ENVELOPE_COLUMNS, type EventRow, toEnvelope } from './envelope.js';
import { formatPosition, type Position, START } from './position.js';
import { validateLimit } from './readStream.js';
import type { LogFilter, ReadAllOptions, ReadAllResult } from './types.js';
import { readVisible, type VisibleTable } from './visible.js';

/** The log as a table that follows the visibility rule. */
const EVENTS: VisibleTable = {
  table: 'tributary.events',
  sequence: 'global_position',
  columns: ENVELOPE_COLUMNS,
};

/**
 * Reads the log in position order after `from`, returning only events of transactions
 * below the snapshot's xmin (see visible.ts): nothing can later commit before them.
 */
export async function readAll(
  db: Queryable,
  from: Position = START,
  options: ReadAllOptions = {},
): Promise<ReadAllResult> {
  const limit = validateLimit(options.limit ?? 1000);
  const { rows, next, held } = await readVisible<EventRow>(db, from, EVENTS, {
    limit,
    where: (params) => compileLogFilter(options.filter, params),
  });
  return { events: rows.map(toEnvelope), next, held };
}

/**
 * A log filter as conditions on the events alias `r` (each starting with `and`), pushing
 * its parameters onto `params` and numbering them after those already there.
 */
export function compileLogFilter(filter: LogFilter | undefined, params: unknown[]): string {
  if (!filter) return '';
  const clauses: string[] = [];
  const typeClauses: string[] = [];
  if (filter.types?.length) {
    params.push(filter.types);
    typeClauses.push(`r.type = any ($${params.length}::text[])`);
  }
  if (filter.typePrefixes?.length) {
    params.push(filter.typePrefixes);
    typeClauses.push(
      `exists (select 1 from unnest($${params.length}::text[]) p where starts_with(r.type, p))`,
    );
  }
  if (typeClauses.length) clauses.push(`(${typeClauses.join(' or ')})`);
  if (filter.streamPrefixes?.length) {
    params.push(filter.streamPrefixes);
    clauses.push(
      `exists (select 1 from unnest($${params.length}::text[]) p where starts_with(r.stream_id, p))`,
    );
  }
  return clauses.map((clause) => `and ${clause}`).join(' ');
}

/** Position of the last visible event, or START for an empty log. */
export async function readHead(db: Queryable): Promise<Position> {
  const { rows } = await db.query<{ xid: string; seq: string }>(
    `select e.transaction_id::text as xid, e.global_position::text as seq
     from tributary.events e
     where e.transaction_id < pg_snapshot_xmin(pg_current_snapshot())
     order by e.transaction_id desc, e.global_position desc
     limit 1`,
  );
  const row = rows[0];
  return row ? formatPosition(row.xid, row.seq) : START;
}
