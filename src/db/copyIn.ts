import { finished } from 'node:stream/promises';
import { from as copyFrom } from 'pg-copy-streams';
import type { Queryable } from './pool.js';

/**
 * Runs `copy … from stdin` with `data` (COPY text format: one line per row, columns
 * separated by tabs, `\N` for null, backslashes doubled). Resolves with the number of rows.
 */
export async function copyIn(db: Queryable, sql: string, data: string): Promise<number> {
  const stream = db.query(copyFrom(sql));
  stream.end(data);
  await finished(stream);
  return stream.rowCount;
}

const NEEDS_ESCAPE = /[\\\t\n\r]/;

/** A value in COPY's text format: backslash, tab, newline and carriage return escaped. */
export function escapeCopyText(value: string): string {
  if (!NEEDS_ESCAPE.test(value)) return value;
  return value.replace(/[\\\t\n\r]/g, (c) =>
    c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r',
  );
}
