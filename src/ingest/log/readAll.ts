import type { Queryable } from '../../db/index.js';
import { ENVELOPE_COLUMNS, type EventRow, toEnvelope } from './envelope.js';
import { formatPosition, maxPosition, type Position, parsePosition, START } from './position.js';
import { validateLimit } from './readStream.js';
import type { LogFilter, ReadAllOptions, ReadAllResult } from './types.js';

/**
 * Reads the log in position order after `from`, returning only events of
 * transactions below the snapshot's xmin: nothing can later commit before them.
 * One statement, so the events, the bound and `held` come from the same snapshot.
 */
export async function readAll(
  db: Queryable,
  from: Position = START,
  options: ReadAllOptions = {},
): Promise<ReadAllResult> {
  const { transactionId, globalPosition } = parsePosition(from);
  const limit = validateLimit(options.limit ?? 1000);
  const params: unknown[] = [transactionId.toString(), globalPosition.toString(), limit];
  const filterSql = compileFilter(options.filter, params);
  const { rows } = await db.query<Partial<EventRow> & { bound: string; held: boolean | null }>(
    `with bound as (select pg_snapshot_xmin(pg_current_snapshot()) as xmin)
     select b.xmin::text as bound,
            exists (select 1 from tributary.events h where (h.transaction_id, h.global_position) > (b.xmin, 0)) as held,
            e.*
     from bound b
     left join lateral (
       select ${ENVELOPE_COLUMNS}
       from tributary.events e
       where (e.transaction_id, e.global_position) > ($1::xid8, $2::bigint)
         and e.transaction_id < b.xmin
         ${filterSql}
       order by e.transaction_id, e.global_position
       limit $3
     ) e on true`,
    params,
  );
  const first = rows[0]!;
  const events = first.gp == null ? [] : rows.map((row) => toEnvelope(row as EventRow));
  const last = events.at(-1)?.position ?? from;
  // A short read scanned everything below the bound: resume from the bound itself, so a
  // filtered reader does not rescan events it already skipped.
  const next = events.length === limit ? last : maxPosition(last, formatPosition(first.bound, 0n));
  return { events, next, held: first.held === true };
}

function compileFilter(filter: LogFilter | undefined, params: unknown[]): string {
  if (!filter) return '';
  const clauses: string[] = [];
  const typeClauses: string[] = [];
  if (filter.types?.length) {
    params.push(filter.types);
    typeClauses.push(`e.type = any ($${params.length}::text[])`);
  }
  if (filter.typePrefixes?.length) {
    params.push(filter.typePrefixes);
    typeClauses.push(
      `exists (select 1 from unnest($${params.length}::text[]) p where starts_with(e.type, p))`,
    );
  }
  if (typeClauses.length) clauses.push(`(${typeClauses.join(' or ')})`);
  if (filter.streamPrefixes?.length) {
    params.push(filter.streamPrefixes);
    clauses.push(
      `exists (select 1 from unnest($${params.length}::text[]) p where starts_with(e.stream_id, p))`,
    );
  }
  return clauses.map((clause) => `and ${clause}`).join(' ');
}

/** Position of the last visible event, or START for an empty log. */
export async function readHead(db: Queryable): Promise<Position> {
  const { rows } = await db.query<{ xid: string; gp: string }>(
    `select e.transaction_id::text as xid, e.global_position::text as gp
     from tributary.events e
     where e.transaction_id < pg_snapshot_xmin(pg_current_snapshot())
     order by e.transaction_id desc, e.global_position desc
     limit 1`,
  );
  const row = rows[0];
  return row ? formatPosition(row.xid, row.gp) : START;
}
