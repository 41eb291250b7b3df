import type { Queryable } from '../../db/index.js';
import { TributaryError, ValidationError } from '../../errors.js';
import { type Position, parsePosition } from '../../ingest/index.js';
import type { Logger } from '../../logger.js';
import { type ChangeCursor, parseChangeCursor } from './cursor.js';

export const CURSOR_EXPIRED = 'CURSOR_EXPIRED';

export class CursorExpiredError extends TributaryError {
  constructor(
    readonly cursor: string,
    readonly prunedThrough: string,
  ) {
    super(
      CURSOR_EXPIRED,
      `Cursor '${cursor}' is older than the retained changelog (pruned through '${prunedThrough}').`,
      {
        hint: 'Re-query the view (or subscribe with initial rows) and resume from the fresh cursor.',
      },
    );
  }
}

/**
 * Checks a cursor a client gave to resume from: it must be a changelog position this
 * database could have issued (not from a transaction that has not even started, nor past
 * the last change ever numbered), else ValidationError; and changes after it must not be
 * pruned yet, else CursorExpiredError.
 */
export async function assertResumableCursor(db: Queryable, cursor: ChangeCursor): Promise<void> {
  const { transactionId, sequence: globalPosition } = parseChangeCursor(cursor);
  const { rows } = await db.query<{
    next_xid: string;
    last_seq: string | null;
    pruned_through: string | null;
  }>(
    `select pg_snapshot_xmax(pg_current_snapshot())::text as next_xid,
            pg_sequence_last_value(pg_get_serial_sequence('tributary.view_changes', 'seq'))::text as last_seq,
            (select pruned_through from tributary.view_changes_pruned) as pruned_through`,
  );
  const { next_xid, last_seq, pruned_through } = rows[0]!;
  if (transactionId >= BigInt(next_xid) || globalPosition > BigInt(last_seq ?? '0')) {
    throw new ValidationError(`Cursor '${cursor}' is ahead of this changelog: no change has it yet.`, {
      field: 'after',
      hint: 'Resume only from a cursor this server delivered (a restored database invalidates newer ones), or omit `after` to start now.',
    });
  }
  if (pruned_through !== null && cursor < pruned_through)
    throw new CursorExpiredError(cursor, pruned_through);
}

/** Throws CursorExpiredError when changes after `cursor` may already have been pruned. */
export async function assertCursorRetained(db: Queryable, cursor: ChangeCursor): Promise<void> {
  parseChangeCursor(cursor);
  const { rows } = await db.query<{ pruned_through: string }>(
    'select pruned_through from tributary.view_changes_pruned',
  );
  const pruned = rows[0]?.pruned_through;
  if (pruned !== undefined && cursor < pruned) throw new CursorExpiredError(cursor, pruned);
}

/**
 * Deletes the oldest changes, in changelog order, up to the first one younger than
 * `olderThanMs` (or not yet visible to every reader, or after `keepAfter`: a reader that
 * must not lose them, such as a sink's checkpoint), and records the last deleted cursor,
 * in one statement: the retained changelog is always everything after `pruned_through`,
 * so a reader never misses a pruned change without being told. The scan walks the primary
 * key from the start and stops at the first change to keep.
 */
export async function pruneChanges(
  db: Queryable,
  olderThanMs: number,
  options: { keepAfter?: Position } = {},
): Promise<number> {
  const keepAfter = options.keepAfter === undefined ? undefined : parsePosition(options.keepAfter);
  const { rows } = await db.query<{ deleted: string; through: string | null }>(
    `with visible as (
       select pg_snapshot_xmin(pg_current_snapshot()) as xmin
     ), keep as (
       -- The first change to keep: the oldest one still within the retention or not yet
       -- visible to every reader, else the visibility bound itself.
       select transaction_id, seq from (
         (select c.transaction_id, c.seq
          from tributary.view_changes c, visible v
          where c.created_at >= now() - make_interval(secs => $1::double precision / 1000)
             or c.transaction_id >= v.xmin
          order by c.transaction_id, c.seq
          limit 1)
         union all
         select v.xmin, 0::bigint from visible v
         union all
         select $2::xid8, $3::bigint + 1 where $2::text is not null
       ) b
       order by transaction_id, seq
       limit 1
     ), gone as (
       delete from tributary.view_changes c
       using keep k
       where (c.transaction_id, c.seq) < (k.transaction_id, k.seq)
       returning c.transaction_id, c.seq
     ), last as (
       select transaction_id, seq from gone order by transaction_id desc, seq desc limit 1
     ), mark as (
       insert into tributary.view_changes_pruned (pruned_through)
       select lpad(to_hex(transaction_id::text::bigint), 16, '0') || '-' || lpad(to_hex(seq), 16, '0') from last
       on conflict (id) do update set pruned_through = greatest(view_changes_pruned.pruned_through, excluded.pruned_through),
                                      pruned_at = now()
       returning pruned_through
     )
     select (select count(*) from gone)::text as deleted, (select pruned_through from mark) as through`,
    [olderThanMs, keepAfter?.transactionId.toString() ?? null, keepAfter?.globalPosition.toString() ?? null],
  );
  return Number(rows[0]?.deleted ?? 0);
}

/**
 * Prunes the changelog now and then every `retentionMs` (at most hourly), keeping what a
 * reader still needs (`keepAfter`: the oldest sink checkpoint) up to `holdMs`; past it that
 * goes too, and a sink that needed it rebuilds its index from the view. Returns the stop.
 */
export function startPruning(options: {
  db: Queryable;
  retentionMs: number;
  /** How long what `keepAfter` names is kept at the most (never less than `retentionMs`). */
  holdMs: number;
  keepAfter: () => Promise<Position | undefined>;
  logger: Logger;
}): () => void {
  const { db, retentionMs, logger } = options;
  const holdMs = Math.max(retentionMs, options.holdMs);
  const prune = () => {
    (async () => {
      const keepAfter = await options.keepAfter();
      let deleted = await pruneChanges(db, retentionMs, keepAfter ? { keepAfter } : {});
      if (keepAfter) deleted += await pruneChanges(db, holdMs);
      if (deleted > 0) logger.info('pruned changelog', { deleted, retentionMs });
    })().catch((error: unknown) => logger.warn('changelog pruning failed', { error }));
  };
  const timer = setInterval(prune, Math.min(retentionMs, 60 * 60 * 1000));
  timer.unref();
  prune();
  return () => clearInterval(timer);
}
