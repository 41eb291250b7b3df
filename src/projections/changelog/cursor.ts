import { ValidationError } from '../../errors.js';
import { formatPosition, isPosition, type Position, parsePosition } from '../../ingest/index.js';

/**
 * Changelog cursors: where a reader of the changelog stands, compared as strings.
 *
 * A changelog row holds one change, or many changes of one view (a packed row: one batch's
 * changes to that view, written as one row because a row per change cost three times as
 * much to write). A cursor is therefore either
 * - `xid-seq`, a position: after the whole row (xid, seq), its last change included; or
 * - `xid-(seq-1).iiii`, inside the packed row (xid, seq): after its change `i` (hex), not its last.
 *
 * Naming the changes inside row `seq` after position `seq - 1` keeps string order equal to
 * changelog order: `…(seq-1)` < `…(seq-1).0000` < `…(seq-1).0001` < `…seq`. No row can sit
 * between the two positions (same transaction, consecutive sequence numbers).
 */
export type ChangeCursor = Position;

const ENTRY = /^([0-9a-f]{16}-[0-9a-f]{16})\.([0-9a-f]{4,8})$/;

export interface ChangeCursorParts {
  transactionId: bigint;
  /** The changelog row (its seq) that holds the change the cursor names. */
  sequence: bigint;
  /** The change inside a packed row the cursor stands after; undefined: after the whole row. */
  entry: number | undefined;
  /** Where a read resumes: rows after this position (and, for an entry, that row's later changes). */
  readAfter: Position;
}

/** The cursor of change `entry` of `count` in the changelog row (xid, seq). */
export function changeCursor(xid: string | bigint, seq: string | bigint, entry = 0, count = 1): ChangeCursor {
  if (entry === count - 1) return formatPosition(xid, seq);
  return `${formatPosition(xid, BigInt(seq) - 1n)}.${entry.toString(16).padStart(4, '0')}`;
}

export function isChangeCursor(value: unknown): value is ChangeCursor {
  return typeof value === 'string' && (isPosition(value) || ENTRY.test(value));
}

/** Parses a changelog cursor; throws a ValidationError for anything that is not one. */
export function parseChangeCursor(cursor: string): ChangeCursorParts {
  const entry = ENTRY.exec(cursor);
  if (!entry) {
    const { transactionId, globalPosition } = parsePosition(cursor);
    return { transactionId, sequence: globalPosition, entry: undefined, readAfter: cursor };
  }
  const before = entry[1]!;
  const { transactionId, globalPosition } = parsePosition(before);
  const index = Number.parseInt(entry[2]!, 16);
  if (!Number.isSafeInteger(index)) {
    throw new ValidationError(`'${cursor.slice(0, 80)}' is not a Tributary changelog cursor.`, {
      field: 'after',
      hint: 'Resume from a cursor Tributary delivered, unchanged.',
    });
  }
  return { transactionId, sequence: globalPosition + 1n, entry: index, readAfter: before };
}
