import type { Queryable } from '../../db/index.js';
import { type JsonObject, type Position, readVisible, type VisibleTable } from '../../ingest/index.js';
import { type ChangeCursor, changeCursor, parseChangeCursor } from './cursor.js';

export type ChangeOp = 'upsert' | 'delete' | 'reset';

/** One entry of `tributary.view_changes`, as subscriptions deliver it. */
export interface ViewChange {
  /** Opaque, totally ordered; resume a subscription after it (see cursor.ts). */
  cursor: ChangeCursor;
  /** The changelog row's sequence number: increases from change to change of a key. */
  sequence: bigint;
  view: string;
  op: ChangeOp;
  key: JsonObject;
  row: JsonObject | null;
  old: JsonObject | null;
  /** Transaction id, kept for snapshot-visibility checks. */
  transactionId: bigint;
}

export interface ReadChangesResult {
  changes: ViewChange[];
  /** Where to read next; may be past the last change (the visibility bound). */
  next: Position;
  /** Committed changes exist past `next` but an older open transaction holds them back. */
  held: boolean;
}

export interface ReadChangesOptions {
  /** Only changes of these views. */
  views?: readonly string[];
  /** Only changes of this one view (the cheapest read: it follows the view's index). */
  view?: string;
  /**
   * Leaves out the changes of transactions visible in this snapshot (`pg_snapshot` text):
   * a reader that loaded a view in that snapshot already holds their effect.
   */
  notVisibleIn?: string;
  /** @default 1000 */
  limit?: number;
}

/** The changelog as a table that follows the visibility rule. */
const CHANGES: VisibleTable = {
  table: 'tributary.view_changes',
  sequence: 'seq',
  columns: 'r.transaction_id::text as xid, r.seq::text as seq, r.view, r.op, r.key, r.row, r.old, r.changes',
};

/** A change inside a packed row: `[op, key, row, old]`. */
type Entry = [Exclude<ChangeOp, 'reset'>, JsonObject, JsonObject | null, JsonObject | null];

interface ChangeRow {
  xid: string;
  seq: string;
  view: string;
  op: ChangeOp | 'changes';
  key: JsonObject;
  row: JsonObject | null;
  old: JsonObject | null;
  /** The packed entries as JSON text (the column is text; see migration 0024). */
  changes: string | null;
}

/**
 * Reads the changelog after `from` in position order, below the visibility bound (see
 * readVisible): no change can later commit before what was returned.
 */
export async function readChanges(
  db: Queryable,
  from: ChangeCursor,
  options: ReadChangesOptions = {},
): Promise<ReadChangesResult> {
  const start = parseChangeCursor(from);
  const { rows, next, held } = await readVisible<ChangeRow>(db, start.readAfter, CHANGES, {
    limit: options.limit ?? 1000,
    where: (params) => {
      let where = '';
      if (options.view !== undefined) {
        // Equality on one view lets the scan follow view_changes_view_idx in changelog order.
        params.push(options.view);
        where += ` and r.view = $${params.length}`;
      } else if (options.views) {
        params.push(options.views);
        where += ` and r.view = any ($${params.length}::text[])`;
      }
      if (options.notVisibleIn !== undefined) {
        params.push(options.notVisibleIn);
        where += ` and not pg_visible_in_snapshot(r.transaction_id, $${params.length}::pg_snapshot)`;
      }
      return where;
    },
  });
  const changes: ViewChange[] = [];
  for (const row of rows) {
    const transactionId = BigInt(row.xid);
    const sequence = BigInt(row.seq);
    if (row.op !== 'changes') {
      changes.push({
        cursor: changeCursor(row.xid, row.seq),
        sequence,
        view: row.view,
        op: row.op,
        key: row.key,
        row: row.row,
        old: row.old,
        transactionId,
      });
      continue;
    }
    const entries: Entry[] = row.changes === null ? [] : JSON.parse(row.changes);
    // Resuming inside this packed row: its changes up to the cursor's were delivered.
    const first =
      start.entry !== undefined && start.transactionId === transactionId && start.sequence === sequence
        ? start.entry + 1
        : 0;
    for (let index = first; index < entries.length; index++) {
      const [op, key, after, old] = entries[index]!;
      changes.push({
        cursor: changeCursor(row.xid, row.seq, index, entries.length),
        sequence,
        view: row.view,
        op,
        key,
        row: after,
        old,
        transactionId,
      });
    }
  }
  return { changes, next, held };
}
