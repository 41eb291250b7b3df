import type pg from 'pg';
import { type Pool, qualified, withTransaction } from '../../src/db/index.js';
import { defineView, resolveSinks, type SinkConfig } from '../../src/projections/index.js';
import { canonicalSelectList } from '../../src/projections/values.js';

/** A small catalogue view: what the sink tests index. */
export const items = defineView({
  name: 'items',
  columns: {
    id: { type: 'integer' },
    name: { type: 'text', nullable: false },
    description: { type: 'text' },
    price: { type: 'numeric' },
    updated_at: { type: 'timestamptz' },
  },
  primaryKey: ['id'],
  search: { fields: ['name', 'description'] },
});

/** The sink of `items` named `name` on the PostgreSQL backend (`extra` overrides). */
export function itemsSink(name: string, extra: Partial<SinkConfig> = {}) {
  return resolveSinks({ [name]: { view: 'items', backend: { kind: 'postgres' }, ...extra } as SinkConfig }, [
    items,
  ])[0]!;
}

export function itemRow(id: number, name: string, description = `about ${name}`) {
  return { id, name, description, price: `${id}.50`, updated_at: '2026-01-02T03:04:05.123456Z' };
}

/** The view's rows, canonical, by key. */
export async function viewRows(db: pg.Pool | pg.Client, schema = 'tributary_views') {
  const { rows } = await db.query<Record<string, unknown>>(
    `select ${canonicalSelectList(items.columns, 't')} from ${qualified(schema, 'items')} t order by id`,
  );
  return rows;
}

/**
 * The documents behind a search alias (or table) on the PostgreSQL backend, canonical, with
 * their versions.
 */
export async function indexRows(db: pg.Pool | pg.Client, name: string, schema = 'tributary_search') {
  const { rows } = await db.query<Record<string, unknown> & { __version: string }>(
    `select ${canonicalSelectList(items.columns, 't')}, t."__version"::text as "__version"
       from ${qualified(schema, name)} t where not t."__deleted" order by id`,
  );
  return rows;
}

/** The last change of each key of `items` still in the changelog: its sequence number, by id. */
export async function lastChangeSeq(db: pg.Pool | pg.Client): Promise<Map<number, bigint>> {
  const { rows } = await db.query<{ id: number; seq: string }>(
    `select distinct on ((key->>'id')::int) (key->>'id')::int as id, seq::text
       from tributary.view_change_entries where view = 'items' order by (key->>'id')::int, transaction_id desc, seq desc, entry desc`,
  );
  return new Map(rows.map((row) => [row.id, BigInt(row.seq)]));
}

/** The index holds exactly the view's rows, none at a version older than its row's last change. */
export async function assertIndexEqualsView(db: pg.Pool | pg.Client, alias: string, searchDb = db) {
  const view = await viewRows(db);
  const index = await indexRows(searchDb, alias);
  const seqs = await lastChangeSeq(db);
  const stale = index.filter((doc) => BigInt(doc.__version) < (seqs.get(doc.id as number) ?? 0n));
  return {
    view,
    index: index.map(({ __version, ...rest }) => rest),
    stale,
  };
}

/**
 * Writes rows of `items` and their changelog entries in one transaction, as a projection
 * batch does: the changelog holds each row in canonical form (numeric with its scale,
 * timestamps with microseconds), as the view writer records it.
 */
export async function writeItems(
  db: Pool,
  changes: readonly { op: 'upsert' | 'delete'; row: Record<string, unknown> }[],
): Promise<void> {
  await withTransaction(db, async (client) => {
    const table = qualified('tributary_views', 'items');
    const names = Object.keys(items.columns);
    for (const change of changes) {
      const id = change.row.id;
      // Read through the driver, which gives numeric as PostgreSQL's text: canonical JSON.
      const current = async () =>
        (
          await client.query<Record<string, unknown>>(
            `select ${canonicalSelectList(items.columns, 't')} from ${table} t where id = $1`,
            [id],
          )
        ).rows[0] ?? null;
      const old = await current();
      if (change.op === 'delete') {
        await client.query(`delete from ${table} where id = $1`, [id]);
        await client.query(
          `insert into tributary.view_changes (view, op, key, row, old) values ('items', 'delete', $1, null, $2)`,
          [JSON.stringify({ id }), old === null ? null : JSON.stringify(old)],
        );
        continue;
      }
      await client.query(
        `insert into ${table} (${names.join(', ')}) values (${names.map((_, i) => `$${i + 1}`).join(', ')})
         on conflict (id) do update set ${names.map((n) => `${n} = excluded.${n}`).join(', ')}`,
        names.map((n) => change.row[n] ?? null),
      );
      await client.query(
        `insert into tributary.view_changes (view, op, key, row, old) values ('items', 'upsert', $1, $2, $3)`,
        [JSON.stringify({ id }), JSON.stringify(await current()), old === null ? null : JSON.stringify(old)],
      );
    }
  });
}
