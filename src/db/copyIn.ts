import { finished } from 'node:stream/promises';
import { from as copyFrom } from 'pg-copy-streams';
import type { Queryable } from './pool.js';

/**
 * Runs `copy … from stdin` with `data` (COPY text format: one line per row, columns
 * separated by tabs, `\N` for null, see `copyText`). Resolves with the number of rows.
 * Like any statement, it queues behind the client's running query.
 */
export async function copyIn(db: Queryable, sql: string, data: string): Promise<number> {
  const stream = db.query(copyFrom(sql));
  stream.end(data);
  await finished(stream);
  return stream.rowCount;
}

const SPECIAL = /[\\\n\r\t]/;

/** A value as one field of a COPY text line: backslash, newline, carriage return and tab escaped. */
export function copyText(value: string): string {
  if (!SPECIAL.test(value)) return value;
  return value.replace(/[\\\n\r\t]/g, (char) => COPY_ESCAPES[char]!);
}

const COPY_ESCAPES: Record<string, string> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };
