import {
  closePool,
  createPool,
  isConnectionError,
  type Pool,
  qualified,
  quoteIdentifier,
} from '../../../db/index.js';
import { type Logger, silentLogger } from '../../../logger.js';
import { SQL_TYPES } from '../../view.js';
import type { DocumentOp, IndexSpec, SearchBackend, StoredDocument, WriteResult } from '../types.js';

export const DEFAULT_SEARCH_SCHEMA = 'tributary_search';

/** How long a delete's tombstone stays, so that a late write older than the delete cannot resurrect the row. */
const TOMBSTONE_TTL = '10 minutes';

export interface PostgresBackendOptions {
  /** The database of the search tables. */
  url: string;
  /** @default 'tributary_search' */
  schema?: string;
  /** Use this pool (not closed by `close()`). */
  pool?: Pool;
  /**
   * The search tables live in the database of the views: a backfill may build documents in
   * SQL, straight from the view table ({@link SearchBackend.upsertFromSql}). @default false
   */
  inViewDatabase?: boolean;
  logger?: Logger;
}

/**
 * The SQL that fills the search columns from a row of `jsonb_populate_recordset(null::<table>)`
 * aliased `d`: the weighted tsvector of the document's searchable fields, and the text the
 * trigram index reads.
 */
export function searchColumnsSql(spec: IndexSpec): { search: string; text: string } {
  const language = `'${spec.language}'::regconfig`;
  const searchable = spec.fields.filter((field) => field.searchable);
  const value = (name: string) => `coalesce(d."__document"->>'${name.replaceAll("'", "''")}', '')`;
  const search = searchable
    .map((field) => `setweight(to_tsvector(${language}, ${value(field.name)}), '${field.weight}')`)
    .join(' || ');
  const text = searchable.map((field) => value(field.name)).join(` || ' ' || `);
  return { search, text };
}

/**
 * The DDL of a search table: the view's columns (so hits show rows in their canonical form
 * and `where` filters them as it filters the view), the document, its weighted tsvector,
 * the version and a tombstone flag, a GIN index on the tsvector and, with pg_trgm, a
 * trigram index on the searchable text.
 */
export function searchTableStatements(
  schema: string,
  table: string,
  spec: IndexSpec,
  trigram: boolean,
): string[] {
  const view = spec.view;
  const columns = Object.entries(view.columns).map(([column, definition]) => {
    const key = view.primaryKey.includes(column);
    return `${quoteIdentifier(column)} ${SQL_TYPES[definition.type]}${key ? ' not null' : ''}`;
  });
  const name = qualified(schema, table);
  const statements = [
    `create table ${name} (${columns.join(', ')},
       "__document" jsonb, "__search" tsvector, ${trigram ? '"__text" text, ' : ''}
       "__version" bigint not null, "__deleted" boolean not null default false,
       "__updated_at" timestamptz not null default now(),
       primary key (${view.primaryKey.map(quoteIdentifier).join(', ')}))`,
    `create index on ${name} using gin ("__search")`,
  ];
  if (trigram) statements.push(`create index on ${name} using gin ("__text" gin_trgm_ops)`);
  return statements;
}

/** PostgreSQL full-text search: one table per build, a view named after the alias in front. */
export function createPostgresBackend(options: PostgresBackendOptions): SearchBackend & {
  readonly pool: Pool;
  readonly schema: string;
  /** Whether the index has its trigram column (pg_trgm was available when it was built). */
  hasTrigrams(index: string): Promise<boolean>;
} {
  const schema = options.schema ?? DEFAULT_SEARCH_SCHEMA;
  const logger = options.logger ?? silentLogger;
  const ownsPool = options.pool === undefined;
  const pool =
    options.pool ?? createPool(options.url, { max: 3, applicationName: 'tributary-search', logger });
  const specs = new Map<string, { spec: IndexSpec; trigram: boolean }>();
  let lastTombstoneSweep = 0;

  const describe = async (index: string, spec?: IndexSpec) => {
    let known = specs.get(index);
    if (!known && spec) {
      const { rows } = await pool.query<{ trigram: boolean }>(
        `select exists (select 1 from pg_attribute where attrelid = to_regclass($1) and attname = '__text' and not attisdropped) as trigram`,
        [qualified(schema, index)],
      );
      known = { spec, trigram: rows[0]?.trigram === true };
      specs.set(index, known);
    }
    return known;
  };

  const trigramAvailable = async (): Promise<boolean> => {
    try {
      await pool.query('create extension if not exists pg_trgm');
      return true;
    } catch (error) {
      if (isConnectionError(error)) throw error;
      logger.info('pg_trgm is not available: search matches without typo tolerance', {
        error: (error as Error).message,
      });
      return false;
    }
  };

  /** The versioned upsert of the rows of `source`, a from-item aliased `d` with the table's columns. */
  const upsertSql = (index: string, spec: IndexSpec, trigram: boolean, source?: string) => {
    const table = qualified(schema, index);
    const columns = Object.keys(spec.view.columns).map(quoteIdentifier);
    const nonKey = Object.keys(spec.view.columns)
      .filter((column) => !spec.view.primaryKey.includes(column))
      .map(quoteIdentifier);
    const { search, text } = searchColumnsSql(spec);
    const extra = [
      '"__document"',
      '"__search"',
      ...(trigram ? ['"__text"'] : []),
      '"__version"',
      '"__deleted"',
      '"__updated_at"',
    ];
    const values = [
      ...columns.map((c) => `d.${c}`),
      'd."__document"',
      search,
      ...(trigram ? [text] : []),
      'd."__version"',
      'false',
      'now()',
    ];
    const updates = [...nonKey, ...extra].map((c) => `${c} = excluded.${c}`);
    return `insert into ${table} as t (${[...columns, ...extra].join(', ')})
      select ${values.join(', ')} from ${source ?? `jsonb_populate_recordset(null::${table}, $1::jsonb) d`}
      on conflict (${spec.view.primaryKey.map(quoteIdentifier).join(', ')}) do update set ${updates.join(', ')}
      where t."__version" < excluded."__version"
      returning 1`;
  };

  const deleteSql = (index: string, spec: IndexSpec, trigram: boolean) => {
    const table = qualified(schema, index);
    const keys = spec.view.primaryKey.map(quoteIdentifier);
    const cleared = [
      ...Object.keys(spec.view.columns)
        .filter((column) => !spec.view.primaryKey.includes(column))
        .map(quoteIdentifier),
      '"__document"',
      '"__search"',
      ...(trigram ? ['"__text"'] : []),
    ].map((c) => `${c} = null`);
    return `insert into ${table} as t (${keys.join(', ')}, "__version", "__deleted", "__updated_at")
      select ${keys.map((k) => `d.${k}`).join(', ')}, d."__version", true, now()
      from jsonb_populate_recordset(null::${table}, $1::jsonb) d
      on conflict (${keys.join(', ')}) do update set ${[...cleared, '"__version" = excluded."__version"', '"__deleted" = true', '"__updated_at" = now()'].join(', ')}
      where t."__version" < excluded."__version"
      returning 1`;
  };

  const record = (op: DocumentOp): string => {
    const base = op.op === 'upsert' ? { ...op.row, __document: op.document } : { ...op.key };
    return JSON.stringify({ ...base, __version: op.version.toString() });
  };

  /** Applies the writes in one transaction; a refused write fails the whole statement. */
  const apply = async (
    index: string,
    known: { spec: IndexSpec; trigram: boolean },
    ops: readonly DocumentOp[],
  ) => {
    const upserts = ops.filter((op) => op.op === 'upsert');
    const deletes = ops.filter((op) => op.op === 'delete');
    const client = await pool.connect();
    let broken = false;
    try {
      await client.query('begin');
      let applied = 0;
      if (upserts.length > 0) {
        const result = await client.query(upsertSql(index, known.spec, known.trigram), [
          `[${upserts.map(record).join(',')}]`,
        ]);
        applied += result.rowCount ?? 0;
      }
      if (deletes.length > 0) {
        const result = await client.query(deleteSql(index, known.spec, known.trigram), [
          `[${deletes.map(record).join(',')}]`,
        ]);
        applied += result.rowCount ?? 0;
      }
      await client.query('commit');
      return ops.length - applied;
    } catch (error) {
      await client.query('rollback').catch(() => {
        broken = true;
      });
      if (isConnectionError(error)) broken = true;
      throw error;
    } finally {
      client.release(broken);
    }
  };

  /** A statement failed: find the writes it cannot take by halves, apply the rest. */
  const bisect = async (
    index: string,
    known: { spec: IndexSpec; trigram: boolean },
    ops: readonly DocumentOp[],
    result: WriteResult,
  ): Promise<void> => {
    try {
      result.stale += await apply(index, known, ops);
    } catch (error) {
      if (!isRefusal(error)) throw error;
      if (ops.length === 1) {
        result.refused.push({ op: ops[0]!, reason: describePgError(error) });
        return;
      }
      const half = Math.ceil(ops.length / 2);
      await bisect(index, known, ops.slice(0, half), result);
      await bisect(index, known, ops.slice(half), result);
    }
  };

  const sweepTombstones = async (index: string) => {
    if (Date.now() - lastTombstoneSweep < 60_000) return;
    lastTombstoneSweep = Date.now();
    await pool
      .query(
        `delete from ${qualified(schema, index)} where "__deleted" and "__updated_at" < now() - interval '${TOMBSTONE_TTL}'`,
      )
      .catch((error: unknown) => logger.warn('could not sweep search tombstones', { index, error }));
  };

  return {
    kind: 'postgres',
    enforcesVersions: true,
    pool,
    schema,
    async ensureIndex(index, spec) {
      const { rows } = await pool.query<{ exists: boolean }>('select to_regclass($1) is not null as exists', [
        qualified(schema, index),
      ]);
      if (rows[0]?.exists) {
        await describe(index, spec);
        return;
      }
      await pool.query(`select $1::regconfig`, [spec.language]).catch((error: unknown) => {
        if (isConnectionError(error)) throw error;
        throw Object.assign(
          new Error(`'${spec.language}' is not a text search configuration of this PostgreSQL server`),
          {
            code: 'SINK_BAD_LANGUAGE',
          },
        );
      });
      const trigram = spec.fuzzy && (await trigramAvailable());
      const client = await pool.connect();
      try {
        await client.query('begin');
        await client.query('select pg_advisory_xact_lock(hashtext($1))', [`tributary.search:${schema}`]);
        await client.query(`create schema if not exists ${quoteIdentifier(schema)}`);
        const { rows: again } = await client.query<{ exists: boolean }>(
          'select to_regclass($1) is not null as exists',
          [qualified(schema, index)],
        );
        if (!again[0]?.exists) {
          for (const statement of searchTableStatements(schema, index, spec, trigram))
            await client.query(statement);
        }
        await client.query('commit');
      } catch (error) {
        await client.query('rollback').catch(() => {});
        throw error;
      } finally {
        client.release();
      }
      specs.set(index, { spec, trigram });
    },
    async write(index, ops) {
      const known = specs.get(index);
      if (!known) throw new Error(`search table ${schema}.${index} was not prepared (ensureIndex)`);
      const result: WriteResult = { refused: [], stale: 0 };
      if (ops.length > 0) await bisect(index, known, ops, result);
      await sweepTombstones(index);
      return result;
    },
    async swapAlias(alias, index, previous) {
      const client = await pool.connect();
      try {
        await client.query('begin');
        await client.query(`drop view if exists ${qualified(schema, alias)}`);
        await client.query(
          `create view ${qualified(schema, alias)} as select * from ${qualified(schema, index)}`,
        );
        await client.query('commit');
      } catch (error) {
        await client.query('rollback').catch(() => {});
        throw error;
      } finally {
        client.release();
      }
      return { writeTo: index, ...(previous && previous !== index ? { retired: previous } : {}) };
    },
    async count(name) {
      const { rows } = await pool.query<{ n: string }>(
        `select count(*)::text as n from ${qualified(schema, name)} where not "__deleted"`,
      );
      return Number(rows[0]!.n);
    },
    async get(name, ids) {
      const known = [...specs.values()][0];
      const view = known?.spec.view;
      const found = new Map<string, StoredDocument>();
      if (!view || ids.length === 0) return found;
      const { rows } = await pool.query<{ id: string; version: string; document: Record<string, unknown> }>(
        `select ${
          view.primaryKey.length === 1
            ? `${quoteIdentifier(view.primaryKey[0]!)}::text`
            : `json_build_array(${view.primaryKey.map(quoteIdentifier).join(', ')})::text`
        } as id, "__version"::text as version, "__document" as document
         from ${qualified(schema, name)} where not "__deleted"`,
      );
      const wanted = new Set(ids);
      for (const row of rows) {
        if (wanted.has(row.id)) found.set(row.id, { version: BigInt(row.version), document: row.document });
      }
      return found;
    },
    async drop(index) {
      await pool.query(`drop table if exists ${qualified(schema, index)}`);
      specs.delete(index);
    },
    ...(options.inViewDatabase
      ? {
          upsertFromSql(index: string, source: string) {
            const known = specs.get(index);
            if (!known) throw new Error(`search table ${schema}.${index} was not prepared (ensureIndex)`);
            return upsertSql(index, known.spec, known.trigram, source);
          },
        }
      : {}),
    async hasTrigrams(index) {
      const { rows } = await pool.query<{ trigram: boolean }>(
        `select exists (select 1 from pg_attribute where attrelid = to_regclass($1) and attname = '__text' and not attisdropped) as trigram`,
        [qualified(schema, index)],
      );
      return rows[0]?.trigram === true;
    },
    async close() {
      if (ownsPool) await closePool(pool);
    },
  };
}

/** Errors that are about the data of a write (it will fail again), not the server or the connection. */
function isRefusal(error: unknown): boolean {
  const code = (error as { code?: string } | null)?.code;
  // 22: data exception; 23: integrity constraint violation; 54: program limit exceeded (a
  // tsvector over 1 MB, an index row too large).
  return typeof code === 'string' && /^(22|23|54)/.test(code);
}

function describePgError(error: unknown): string {
  const e = error as { message?: string; code?: string; detail?: string };
  return `${e.message ?? String(error)}${e.code ? ` (SQLSTATE ${e.code})` : ''}${e.detail ? `: ${e.detail}` : ''}`;
}
