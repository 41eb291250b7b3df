import { copyIn, type Queryable } from '../../db/index.js';

/**
 * Writing the changelog: only the projection runner's batch (through the view writer) and
 * rebuilds do it, inside the transaction that writes the views and the checkpoint.
 */

const CHANGELOG_COPY =
  'copy tributary.view_changes (view, op, key, row, old, log_position, changes) from stdin';

/** A batch's changes to one view are packed into rows of at most this many changes. */
export const CHANGES_PER_ROW = 1000;

/**
 * One change as a COPY line: view, op, key, row and old (JSON text, null for none), and the
 * log position that produced it. No field holds a tab, newline or carriage return (JSON text
 * escapes them; views are identifiers, positions hex), so escaping for COPY only doubles the
 * backslashes of the JSON fields.
 */
export function changeLine(
  view: string,
  op: 'upsert' | 'delete',
  key: string,
  row: string | null,
  old: string | null,
  position: string,
): string {
  return `${view}\t${op}\t${copyField(key)}\t${row === null ? '\\N' : copyField(row)}\t${old === null ? '\\N' : copyField(old)}\t${position}\t\\N\n`;
}

/** One change as an entry of a packed row: `[op, key, row, old]` as JSON text. */
export function changeEntry(
  op: 'upsert' | 'delete',
  key: string,
  row: string | null,
  old: string | null,
): string {
  return `["${op}",${key},${row ?? 'null'},${old ?? 'null'}]`;
}

/**
 * Many changes of one view (entries made by `changeEntry`, in changelog order) as COPY lines:
 * one packed row per CHANGES_PER_ROW entries.
 */
export function packedChangeLines(view: string, entries: readonly string[], position: string): string {
  let lines = '';
  for (let start = 0; start < entries.length; start += CHANGES_PER_ROW) {
    const chunk = entries.slice(start, start + CHANGES_PER_ROW);
    lines += `${view}\tchanges\t{}\t\\N\t\\N\t${position}\t${copyField(`[${chunk.join(',')}]`)}\n`;
  }
  return lines;
}

/** Appends lines made by `changeLine` and `packedChangeLines`, in the caller's transaction. */
export async function appendChanges(client: Queryable, lines: string): Promise<void> {
  if (lines.length > 0) await copyIn(client, CHANGELOG_COPY, lines);
}

/** Records that these views were emptied and refilled (a rebuild): subscribers re-query. */
export async function appendResets(
  client: Queryable,
  views: readonly string[],
  position: string,
): Promise<void> {
  for (const view of views) {
    await client.query(
      `insert into tributary.view_changes (view, op, key, log_position) values ($1, 'reset', '{}'::json, $2)`,
      [view, position],
    );
  }
}

/** JSON text as a COPY text field: its backslashes doubled (it holds no raw tab, newline or CR). */
function copyField(json: string): string {
  return json.indexOf('\\') === -1 ? json : json.replaceAll('\\', '\\\\');
}
