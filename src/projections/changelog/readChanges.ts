import type { Queryable } from '../../db/index.js';
import {
  formatPosition,
  type JsonObject,
  type Position,
  readVisible,
  type VisibleTable,
} from '../../ingest/index.js';

export type ChangeOp = 'upsert' | 'delete' | 'reset';

/** One entry of `tributary.view_changes`, as subscriptions deliver it. */
export interface ViewChange {
  /** Opaque, totally ordered; resume a subscription after it. Same format as log positions. */
  cursor: Position;
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

/** The changelog as a table that follows the visibility rule. */
const CHANGES: VisibleTable = {
  table: 'tributary.view_changes',
  sequence: 'seq',
  columns: 'r.transaction_id::text as xid, r.seq::text as seq, r.view, r.op, r.key, r.row, r.old',
};

interface ChangeRow {
  xid: string;
  seq: string;
  view: string;
  op: ChangeOp;
  key: JsonObject;
  row: JsonObject | null;
  old: JsonObject | null;
}

/**
 * Reads the changelog after `from` in position order, below the visibility bound (see
 * readVisible): no change can later commit before what was returned.
 */
export async function readChanges(
  db: Queryable,
  from: Position,
  options: { views?: readonly string[]; limit?: number } = {},
): Promise<ReadChangesResult> {
  const { rows, next, held } = await readVisible<ChangeRow>(db, from, CHANGES, {
    limit: options.limit ?? 1000,
    where: (params) => {
      if (!options.views) return '';
      params.push(options.views);
      return `and r.view = any ($${params.length}::text[])`;
    },
  });
  const changes = rows.map((row) => ({
    cursor: formatPosition(row.xid, row.seq),
    view: row.view,
    op: row.op,
    key: row.key,
    row: row.row,
    old: row.old,
    transactionId: BigInt(row.xid),
  }));
  return { changes, next, held };
}
