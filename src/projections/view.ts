import { assertIdentifier } from '../db/index.js';
import { ValidationError } from '../errors.js';
import type { JsonValue } from '../ingest/index.js';

/** Column types a view can have. The same names drive the table DDL and the GraphQL types. */
export type ColumnType =
  | 'text'
  | 'integer'
  | 'bigint'
  | 'numeric'
  | 'double'
  | 'boolean'
  | 'timestamptz'
  | 'jsonb'
  | 'text[]';

export interface ColumnDefinition {
  type: ColumnType;
  /** Key columns are never nullable. @default true */
  nullable?: boolean;
  description?: string;
}

export interface IndexDefinition {
  columns: readonly string[];
  unique?: boolean;
}

export interface ViewDefinition<
  Columns extends Record<string, ColumnDefinition> = Record<string, ColumnDefinition>,
> {
  /** Lower-case identifier; also the table name and the GraphQL field base name. */
  name: string;
  columns: Columns;
  primaryKey: readonly (keyof Columns & string)[];
  indexes?: readonly IndexDefinition[];
  /**
   * How full PostgreSQL packs the table's pages (percent). The room left lets an update keep
   * the new row version on its page without touching the primary key's index (a HOT update),
   * which is most of what a projection does to a large view. 100 suits views whose rows are
   * only inserted. It applies when the table is created (a rebuild creates it anew).
   * @default 90
   */
  fillfactor?: number;
  /** Columns pushed to a search index by a sink, if one is configured. */
  search?: { fields: readonly (keyof Columns & string)[] };
  description?: string;
}

/**
 * The TypeScript value of each column type as handlers and readers get it back: its
 * canonical form (see values.ts), the same through `ctx.get`, queries and subscriptions.
 */
export interface ColumnValues {
  text: string;
  integer: number;
  /** Exact: digits as PostgreSQL prints them. */
  bigint: string;
  /** Exact: as PostgreSQL prints it, scale kept (`80.00`). */
  numeric: string;
  double: number;
  boolean: boolean;
  /** ISO 8601 in UTC with microseconds: `2026-11-30T21:14:05.010000Z`. */
  timestamptz: string;
  jsonb: JsonValue;
  'text[]': string[];
}

/** What a handler may write for each column type; it is brought to the canonical form. */
export interface ColumnInputs extends Omit<ColumnValues, 'bigint' | 'numeric' | 'timestamptz'> {
  bigint: string | number | bigint;
  numeric: string | number | bigint;
  timestamptz: string | Date;
}

export type RowOf<V extends ViewDefinition> = {
  [K in keyof V['columns']]:
    | ColumnValues[V['columns'][K]['type']]
    | (V['columns'][K]['nullable'] extends false ? never : null);
};

export const COLUMN_TYPES: readonly ColumnType[] = [
  'text',
  'integer',
  'bigint',
  'numeric',
  'double',
  'boolean',
  'timestamptz',
  'jsonb',
  'text[]',
];

/** SQL type for each column type. */
export const SQL_TYPES: Record<ColumnType, string> = {
  text: 'text',
  integer: 'integer',
  bigint: 'bigint',
  numeric: 'numeric',
  double: 'double precision',
  boolean: 'boolean',
  timestamptz: 'timestamptz',
  jsonb: 'jsonb',
  'text[]': 'text[]',
};

/** Declares a view; checks names, types and the key up front so mistakes surface at load time. */
export function defineView<const Columns extends Record<string, ColumnDefinition>>(
  definition: ViewDefinition<Columns>,
): ViewDefinition<Columns> {
  assertIdentifier(definition.name, 'view name');
  const columns = Object.keys(definition.columns);
  if (columns.length === 0) throw new ValidationError(`View '${definition.name}' has no columns.`);
  for (const [column, spec] of Object.entries(definition.columns)) {
    assertIdentifier(column, `column name of view '${definition.name}'`);
    if (!COLUMN_TYPES.includes(spec.type)) {
      throw new ValidationError(
        `Column '${definition.name}.${column}' has unknown type '${String(spec.type)}'.`,
        {
          hint: `Use one of: ${COLUMN_TYPES.join(', ')}.`,
        },
      );
    }
  }
  if (definition.primaryKey.length === 0) {
    throw new ValidationError(`View '${definition.name}' needs a primary key.`);
  }
  const known = new Set(columns);
  const check = (list: readonly string[], what: string) => {
    for (const column of list) {
      if (!known.has(column)) {
        throw new ValidationError(`${what} of view '${definition.name}' names unknown column '${column}'.`);
      }
    }
  };
  check(definition.primaryKey, 'The primary key');
  for (const index of definition.indexes ?? []) check(index.columns, 'An index');
  check(definition.search?.fields ?? [], 'The search fields');
  const { fillfactor } = definition;
  if (fillfactor !== undefined && (!Number.isInteger(fillfactor) || fillfactor < 10 || fillfactor > 100)) {
    throw new ValidationError(`View '${definition.name}' has fillfactor ${String(fillfactor)}.`, {
      field: 'fillfactor',
      hint: 'Give a whole percentage from 10 to 100, or leave it out (90).',
    });
  }
  return definition;
}

/** How full view tables' pages are packed, unless a view says otherwise. */
export const DEFAULT_VIEW_FILLFACTOR = 90;

/** Default schema for view tables; configurable in tributary.config.ts. */
export const DEFAULT_VIEW_SCHEMA = 'tributary_views';
