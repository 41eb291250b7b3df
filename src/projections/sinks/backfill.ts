import type pg from 'pg';
import { connectGuarded, type Pool, type PoolClient, qualified, quoteIdentifier } from '../../db/index.js';
import { formatPosition, type Position } from '../../ingest/index.js';
import { lastVisibleSeq } from '../changelog/index.js';
import type { AnyView } from '../defineProjection.js';
import { canonicalJsonbSql, canonicalSelectList } from '../values.js';

/**
 * A view read in one snapshot, in chunks, without holding the view's table for the whole
 * read: one connection keeps a repeatable-read transaction open that touches no table and
 * exports its snapshot; each chunk is a short transaction that imports it. So a projection's
 * rebuild can still swap its tables meanwhile (a long read would block the swap, and the
 * swap would block the projection); the sink then sees the swap's reset and builds again.
 *
 * Where the tail starts: the changelog is written in the same transactions as the view, so
 * the rows read hold exactly the changes of the transactions visible in the snapshot. Those
 * are every transaction below the snapshot's xmin, and some between xmin and xmax. The tail
 * therefore starts at (xmin, 0) and leaves out the changes of transactions the snapshot
 * sees (`pg_visible_in_snapshot`) until it has passed xmax: no change is missed at the
 * boundary, and none is applied twice.
 */
export interface ViewSnapshot {
  /** The snapshot, as `pg_snapshot` text (`xmin:xmax:xip,...`). */
  readonly snapshot: string;
  /** Where the tail starts: (xmin, 0). */
  readonly position: Position;
  /**
   * Reads the next chunk in key order, canonical values; empty when the view is read whole.
   * With `prefetch` (the default) the chunk after it is read meanwhile.
   */
  next(limit: number, prefetch?: boolean): Promise<Record<string, unknown>[]>;
  /**
   * Writes the next chunk without its rows leaving PostgreSQL, in one transaction on the
   * snapshot: `upsert(source)` is the statement that writes what `source` selects, a
   * from-item aliased `d` with the view's columns, `document` (a SQL expression over the
   * row aliased `c`) as `"__document"` and `version` as `"__version"`. Returns the rows
   * written, 0 when the view is read whole. A chunk that fails is not passed: `next` reads
   * it again.
   */
  copyNext(
    limit: number,
    document: string,
    version: bigint,
    upsert: (source: string) => string,
  ): Promise<number>;
  /** Rows in the view (in the snapshot). */
  total(): Promise<number>;
  /** Version for the rows read: the sequence number of the last change of the view the snapshot sees. */
  version(): Promise<bigint>;
  close(): Promise<void>;
}

export async function openViewSnapshot(pool: Pool, schema: string, view: AnyView): Promise<ViewSnapshot> {
  const holder = await connectGuarded(pool);
  let id: string;
  let snapshot: string;
  try {
    await holder.query('begin isolation level repeatable read read only');
    const { rows } = await holder.query<{ id: string; snapshot: string }>(
      'select pg_export_snapshot() as id, pg_current_snapshot()::text as snapshot',
    );
    id = rows[0]!.id;
    snapshot = rows[0]!.snapshot;
  } catch (error) {
    holder.release(true);
    throw error;
  }
  const xmin = snapshot.split(':')[0]!;
  const table = qualified(schema, view.name);
  const keys = view.primaryKey.map(quoteIdentifier);
  const select = canonicalSelectList(view.columns, 't');
  let last: Record<string, unknown> | undefined;
  let closed = false;

  const inSnapshot = async <T>(fn: (client: PoolClient) => Promise<T>, readOnly = true): Promise<T> => {
    const client = await pool.connect();
    let broken = false;
    try {
      await client.query(`begin isolation level repeatable read${readOnly ? ' read only' : ''}`);
      await client.query(`set transaction snapshot '${id}'`);
      const result = await fn(client);
      await client.query('commit');
      return result;
    } catch (error) {
      broken = true;
      throw error;
    } finally {
      client.release(broken);
    }
  };

  let prefetched: { limit: number; rows: Promise<Record<string, unknown>[]> } | undefined;
  /** The rows after the last one read, in key order: `from` and `where` of the chunk's query, `$2` the last key. */
  const after = () =>
    last
      ? `, jsonb_populate_record(null::${table}, $2::jsonb) k where (${keys.map((k) => `t.${k}`).join(', ')}) > (${keys
          .map((k) => `k.${k}`)
          .join(', ')})`
      : '';
  const read = (limit: number) =>
    inSnapshot(async (client) => {
      const { rows } = await (client as pg.ClientBase).query<Record<string, unknown>>(
        `select ${select} from ${table} t${after()} order by ${keys.map((k) => `t.${k}`).join(', ')} limit $1`,
        last ? [limit, JSON.stringify(last)] : [limit],
      );
      const tail = rows.at(-1);
      if (tail) last = Object.fromEntries(view.primaryKey.map((k) => [k, tail[k]]));
      return rows;
    });

  return {
    snapshot,
    position: formatPosition(xmin, 0n),
    async next(limit, prefetch = true) {
      // The chunk after this one is read while the caller writes this one: reading the view
      // and building the index then overlap.
      const current = prefetched?.limit === limit ? prefetched.rows : read(limit);
      prefetched = undefined;
      const rows = await current;
      if (prefetch && rows.length === limit && !closed) {
        const ahead = read(limit);
        ahead.catch(() => {});
        prefetched = { limit, rows: ahead };
      }
      return rows;
    },
    async copyNext(limit, document, version, upsert) {
      if (prefetched) throw new Error('copyNext after a prefetching next: that chunk was read already');
      const columns = Object.keys(view.columns).map(quoteIdentifier);
      const order = keys.map((k) => `c.${k}`).join(', ');
      const lastKey = `jsonb_build_object(${view.primaryKey
        .map(
          (k) =>
            `'${k.replaceAll("'", "''")}', ${canonicalJsonbSql(`c.${quoteIdentifier(k)}`, view.columns[k]!.type)}`,
        )
        .join(', ')})`;
      const versionParam = last ? '$3' : '$2';
      // offset 0 keeps the subquery from being flattened: the document is built once per
      // row, not once more for each field the tsvector reads from it.
      const source = `(select ${columns.map((c) => `c.${c}`).join(', ')}, ${document} as "__document",
          ${versionParam}::bigint as "__version" from chunk c offset 0) d`;
      const sql = `with chunk as materialized (
          select ${columns.map((c) => `t.${c}`).join(', ')} from ${table} t${after()}
           order by ${keys.map((k) => `t.${k}`).join(', ')} limit $1),
        written as (${upsert(source)})
        select (select count(*)::int from chunk) as rows,
               (select ${lastKey} from chunk c order by ${order.replaceAll(',', ' desc,')} desc limit 1) as last`;
      const params = last ? [limit, JSON.stringify(last), version.toString()] : [limit, version.toString()];
      const result = await inSnapshot(async (client) => {
        const { rows } = await client.query<{ rows: number; last: Record<string, unknown> | null }>(
          sql,
          params,
        );
        return rows[0]!;
      }, false);
      // Only once committed: a chunk that failed is read again.
      if (result.last) last = result.last;
      return result.rows;
    },
    total: () =>
      inSnapshot(async (client) => {
        const { rows } = await client.query<{ n: string }>(`select count(*)::text as n from ${table}`);
        return Number(rows[0]!.n);
      }),
    version: () => inSnapshot((client) => lastVisibleSeq(client, view.name)),
    async close() {
      if (closed) return;
      closed = true;
      await prefetched?.rows.catch(() => {});
      await holder.query('commit').catch(() => {});
      holder.release();
    },
  };
}

/** True once a reader at `position` has passed every transaction `snapshot` could see. */
export function pastSnapshot(position: Position, snapshot: string): boolean {
  const xmax = BigInt(snapshot.split(':')[1]!);
  return position >= formatPosition(xmax, 0n);
}
