import type { Queryable } from '../../db/index.js';
import { formatPosition, type Position, parsePosition } from '../../ingest/index.js';
import { type ChangeCursor, parseChangeCursor } from './cursor.js';

/**
 * The sequence number of the last change of `view` the caller's snapshot sees (0 for none).
 *
 * Every write of a view comes from its projection's batches (and its rebuild swap, replays,
 * dead-letter retries), which all lock the projection's checkpoint row first: they commit
 * one after the other, and each numbers its changes after the previous one committed. So
 * within one view, `seq` grows in changelog order, and the last visible change has the
 * largest visible `seq`; every change a later transaction makes has a larger one.
 */
export async function lastVisibleSeq(db: Queryable, view: string): Promise<bigint> {
  // Named apart from the column: `order by seq` would otherwise sort the text ('99' > '120').
  const { rows } = await db.query<{ last_seq: string }>(
    `select c.seq::text as last_seq from tributary.view_changes c where c.view = $1
     order by c.transaction_id desc, c.seq desc limit 1`,
    [view],
  );
  return BigInt(rows[0]?.last_seq ?? '0');
}

/** The cursor of the last change of `view` the caller's snapshot sees (undefined for none). */
export async function lastVisibleChange(db: Queryable, view: string): Promise<Position | undefined> {
  const { rows } = await db.query<{ transaction_id: string; seq: string }>(
    `select c.transaction_id::text as transaction_id, c.seq::text as seq from tributary.view_changes c
      where c.view = $1 order by c.transaction_id desc, c.seq desc limit 1`,
    [view],
  );
  const last = rows[0];
  return last ? formatPosition(last.transaction_id, last.seq) : undefined;
}

export interface ViewLag {
  /** Changes of the view after the position that every reader can see (counted up to `cap`). */
  changes: number;
  /** Age in seconds of the oldest of them (0 when there is none). */
  seconds: number;
}

/** How far a reader of one view at `position` is behind the visible changelog. */
export async function viewLag(
  db: Queryable,
  view: string,
  position: ChangeCursor,
  cap = 1_000_000,
): Promise<ViewLag> {
  const { transactionId, globalPosition } = parsePosition(parseChangeCursor(position).readAfter);
  const { rows } = await db.query<{ changes: string; oldest: number | null }>(
    `with bound as (select pg_snapshot_xmin(pg_current_snapshot()) as xmin),
     pending as (
       select c.created_at, coalesce(json_array_length(c.changes::json), 1) as changes
       from tributary.view_changes c, bound b
       where c.view = $1 and (c.transaction_id, c.seq) > ($2::xid8, $3::bigint) and c.transaction_id < b.xmin
       order by c.transaction_id, c.seq
       limit $4
     )
     select coalesce(sum(changes), 0)::text as changes,
            extract(epoch from now() - min(created_at))::float8 as oldest
     from pending`,
    [view, transactionId.toString(), globalPosition.toString(), cap],
  );
  const row = rows[0];
  return {
    changes: Number(row?.changes ?? 0),
    seconds: Math.max(0, Math.round((row?.oldest ?? 0) * 10) / 10),
  };
}

/** When the change at `cursor` was written, or undefined when it is gone (pruned) or unknown. */
export async function changeTime(db: Queryable, cursor: ChangeCursor): Promise<Date | undefined> {
  const { transactionId, sequence: globalPosition } = parseChangeCursor(cursor);
  const { rows } = await db.query<{ created_at: Date }>(
    'select created_at from tributary.view_changes where transaction_id = $1::xid8 and seq = $2::bigint',
    [transactionId.toString(), globalPosition.toString()],
  );
  return rows[0]?.created_at;
}
