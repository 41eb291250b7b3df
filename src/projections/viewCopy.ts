import { copyIn, escapeCopyText, type Queryable, quoteIdentifier } from '../db/index.js';
import type { AnyView, Row } from './defineProjection.js';
import type { CanonicalValue } from './values.js';
import type { ColumnType } from './view.js';

/**
 * The bulk path for rows a batch adds to a view: rows whose key the writer knows is not in the
 * table go in by one COPY, the cheapest way PostgreSQL takes rows, instead of the upsert. The
 * view writer decides which rows qualify (it knows what the table held from its cache or its
 * lookups); a row that does exist after all breaks the primary key, and the batch is retried
 * like any batch that breaks a constraint, with the cache read afresh.
 */
export interface ViewCopy {
  /** The COPY text line of a row in canonical form. */
  line(row: Row): string;
  /** Writes the lines in the caller's transaction. */
  insert(client: Queryable, lines: string): Promise<number>;
}

/** The COPY path of a view, or undefined when a column type has no simple COPY text (text[]). */
export function viewCopy(view: AnyView, table: string): ViewCopy | undefined {
  const columns = Object.keys(view.columns);
  const encoders: ((value: CanonicalValue) => string)[] = [];
  for (const column of columns) {
    const encode = COPY_TEXT[view.columns[column]!.type];
    if (!encode) return undefined;
    encoders.push(encode);
  }
  const sql = `copy ${table} (${columns.map(quoteIdentifier).join(', ')}) from stdin`;
  return {
    line(row) {
      let line = '';
      for (let i = 0; i < columns.length; i++) {
        const value = row[columns[i]!] as CanonicalValue;
        line += `${i === 0 ? '' : '\t'}${value === null || value === undefined ? '\\N' : encoders[i]!(value)}`;
      }
      return `${line}\n`;
    },
    insert: (client, lines) => copyIn(client, sql, lines),
  };
}

/**
 * Canonical values (see values.ts) in COPY's text format. PostgreSQL reads each back as the
 * same value the upsert would store: the canonical forms are what it prints itself.
 */
const COPY_TEXT: Partial<Record<ColumnType, (value: CanonicalValue) => string>> = {
  text: (value) => escapeCopyText(value as string),
  integer: String,
  bigint: String,
  numeric: String,
  double: String,
  boolean: (value) => (value ? 't' : 'f'),
  timestamptz: String,
  jsonb: (value) => escapeCopyText(JSON.stringify(value)),
};
