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
