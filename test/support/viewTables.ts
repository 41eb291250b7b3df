import { type Pool, qualified, quoteIdentifier, withTransaction } from '../../src/db/index.js';
import type { AnyView } from '../../src/projections/index.js';
import { DEFAULT_VIEW_SCHEMA, SQL_TYPES } from '../../src/projections/view.js';

/** Creates the live table of a view from its definition (what the projection runner does). */
export async function createViewTable(pool: Pool, view: AnyView, schema = DEFAULT_VIEW_SCHEMA) {
  const columns = Object.entries(view.columns).map(
    ([name, column]) =>
      `${quoteIdentifier(name)} ${SQL_TYPES[column.type]}${column.nullable === false || view.primaryKey.includes(name) ? ' not null' : ''}`,
  );
  await pool.query(`create schema if not exists ${quoteIdentifier(schema)}`);
  await pool.query(
    `create table ${qualified(schema, view.name)} (${columns.join(', ')}, primary key (${view.primaryKey.map(quoteIdentifier).join(', ')}))`,
  );
}

export type TestRow = Record<string, unknown>;

/**
 * Writes rows to a view table and its changelog entries in one transaction, as a projection
 * batch does: `upsert` rows replace by key, `delete` rows name the key.
 */
export async function writeChanges(
  pool: Pool,
  view: AnyView,
  changes: readonly { op: 'upsert' | 'delete'; row: TestRow }[],
  schema = DEFAULT_VIEW_SCHEMA,
): Promise<void> {
  await withTransaction(pool, async (client) => {
    const table = qualified(schema, view.name);
    const names = Object.keys(view.columns);
    const keyOf = (row: TestRow) => Object.fromEntries(view.primaryKey.map((k) => [k, row[k]]));
    const keyWhere = view.primaryKey.map((k, i) => `${quoteIdentifier(k)} = $${i + 1}`).join(' and ');
    for (const change of changes) {
      const key = keyOf(change.row);
      const { rows: before } = await client.query<{ old: TestRow }>(
        `select to_jsonb(t) as old from ${table} t where ${keyWhere}`,
        view.primaryKey.map((k) => key[k]),
      );
      const old = before[0]?.old ?? null;
      if (change.op === 'delete') {
        await client.query(
          `delete from ${table} where ${keyWhere}`,
          view.primaryKey.map((k) => key[k]),
        );
        await client.query(
          `insert into tributary.view_changes (view, op, key, row, old) values ($1, 'delete', $2, null, $3)`,
          [view.name, JSON.stringify(key), old === null ? null : JSON.stringify(old)],
        );
        continue;
      }
      const values = names.map((n) => {
        const value = change.row[n] ?? null;
        return view.columns[n]!.type === 'jsonb' && value !== null ? JSON.stringify(value) : value;
      });
      const { rows } = await client.query<{ row: TestRow }>(
        `insert into ${table} (${names.map(quoteIdentifier).join(', ')})
         values (${names.map((_, i) => `$${i + 1}`).join(', ')})
         on conflict (${view.primaryKey.map(quoteIdentifier).join(', ')}) do update set
           ${names.map((n) => `${quoteIdentifier(n)} = excluded.${quoteIdentifier(n)}`).join(', ')}
         returning to_jsonb(${table}.*) as row`,
        values,
      );
      await client.query(
        `insert into tributary.view_changes (view, op, key, row, old) values ($1, 'upsert', $2, $3, $4)`,
        [
          view.name,
          JSON.stringify(key),
          JSON.stringify(rows[0]!.row),
          old === null ? null : JSON.stringify(old),
        ],
      );
    }
  });
}
