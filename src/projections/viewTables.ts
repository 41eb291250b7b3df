import { createHash } from 'node:crypto';
import { assertIdentifier, type Queryable, qualified, quoteIdentifier } from '../db/index.js';
import type { AnyView } from './defineProjection.js';
import { DEFAULT_VIEW_FILLFACTOR, DEFAULT_VIEW_SCHEMA, SQL_TYPES } from './view.js';

/**
 * Hash of what shapes the tables of these views (columns, types, nullability, key,
 * indexes). Descriptions and search fields do not change the tables and are left out.
 */
export function viewsFingerprint(views: readonly AnyView[]): string {
  const canonical = views.map((view) => ({
    name: view.name,
    columns: Object.entries(view.columns).map(([column, spec]) => [
      column,
      spec.type,
      view.primaryKey.includes(column) ? false : spec.nullable !== false,
    ]),
    primaryKey: view.primaryKey,
    indexes: (view.indexes ?? []).map((index) => [index.columns, index.unique === true]),
  }));
  return createHash('sha256').update(JSON.stringify(canonical)).digest('hex').slice(0, 32);
}

/** CREATE TABLE and CREATE INDEX statements for one view in `schema`. */
export function viewTableStatements(view: AnyView, schema: string, table = view.name): string[] {
  assertIdentifier(schema, 'view schema');
  const columns = Object.entries(view.columns).map(([column, spec]) => {
    const notNull = view.primaryKey.includes(column) || spec.nullable === false;
    return `${quoteIdentifier(column)} ${SQL_TYPES[spec.type]}${notNull ? ' not null' : ''}`;
  });
  const key = view.primaryKey.map(quoteIdentifier).join(', ');
  const statements = [
    `create table ${qualified(schema, table)} (${columns.join(', ')}, primary key (${key})) with (fillfactor = ${view.fillfactor ?? DEFAULT_VIEW_FILLFACTOR})`,
  ];
  // Index names are left to PostgreSQL: they stay unique when a rebuild swaps tables between schemas.
  for (const index of view.indexes ?? []) {
    statements.push(
      `create ${index.unique ? 'unique ' : ''}index on ${qualified(schema, table)} (${index.columns.map(quoteIdentifier).join(', ')})`,
    );
  }
  return statements;
}

/** Creates the schema and the tables of `views` that do not exist yet. Call inside a transaction. */
export async function createViewTables(
  db: Queryable,
  views: readonly AnyView[],
  schema: string = DEFAULT_VIEW_SCHEMA,
): Promise<void> {
  await ensureSchema(db, schema);
  for (const view of views) {
    const { rows } = await db.query('select to_regclass($1) is not null as exists', [
      qualified(schema, view.name),
    ]);
    if (rows[0]?.exists) continue;
    for (const statement of viewTableStatements(view, schema)) await db.query(statement);
  }
}

/**
 * `create schema if not exists` is not safe against itself: two transactions creating the
 * same schema at once both pass the check and the second fails on pg_namespace's unique
 * index (two projections starting for the first time do exactly that). A missing schema
 * is therefore created under a transaction-level advisory lock on its name, which the
 * second transaction waits for and then finds the schema made. An existing schema takes
 * no lock. Call inside a transaction.
 */
export async function ensureSchema(db: Queryable, schema: string): Promise<void> {
  assertIdentifier(schema, 'view schema');
  const { rows } = await db.query<{ exists: boolean }>(
    'select exists (select 1 from pg_namespace where nspname = $1) as exists',
    [schema],
  );
  if (rows[0]?.exists) return;
  await db.query('select pg_advisory_xact_lock(hashtext($1))', [`tributary.schema:${schema}`]);
  await db.query(`create schema if not exists ${quoteIdentifier(schema)}`);
}
