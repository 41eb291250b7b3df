import { type Queryable, qualified, quoteIdentifier } from '../db/index.js';
import { ValidationError } from '../errors.js';
import { appendChanges, changeEntry, changeLine, packedChangeLines } from './changelog/index.js';
import type { AnyView, HandlerContext, Row } from './defineProjection.js';
import { NotPartitionableError } from './errors.js';
import { createKeyedState, type KeyedState } from './keyedState.js';
import {
  cachedRow,
  cacheKey,
  cacheRow,
  DEFAULT_CACHE_BYTES,
  type RowCache,
  type ViewRows,
  viewRows,
} from './rowCache.js';
import {
  type CanonicalValue,
  canonicalJson,
  canonicalSelectList,
  toCanonical,
  ValueTypeError,
} from './values.js';
import { SQL_TYPES } from './view.js';
import { type ViewCopy, viewCopy } from './viewCopy.js';

export { clearCache, preloadCache, type RowCache, type ViewRows } from './rowCache.js';

interface PendingWrite {
  /** Row after the batch; null when deleted. */
  row: Row | null;
  /** Row before the batch; undefined until known. */
  old: Row | null | undefined;
  position: string;
}

interface ViewTarget {
  view: AnyView;
  table: string;
  columns: string[];
  key: string[];
  /** JSON encoders of every column, and of the key columns alone. */
  columnJson: ColumnJson[];
  keyJson: ColumnJson[];
  /** The flush statements and the canonical select list, built once. */
  sql: { delete: string; upsert: string; read: string };
  /** The bulk path for rows known to be new (see viewCopy.ts). */
  copy: ViewCopy | undefined;
  select: string;
  cache: ViewRows;
  pending: Map<string, PendingWrite>;
  /** Every key this writer wrote (flushed or not), which a read on another connection cannot see. */
  written: Set<string>;
}

export interface ViewWriterOptions {
  client: Queryable;
  projection: string;
  views: readonly AnyView[];
  schema: string;
  cache: RowCache;
  /** Memory the cached rows may use, shared evenly by the views. @default 256 MiB */
  cacheBytes?: number;
  replaying?: boolean;
  /** A partition of a partitioned projection: keyed state is refused (see NotPartitionableError). */
  partitioned?: boolean;
}

/**
 * The view-write context of one transaction. Writes are buffered and coalesced per
 * key, then flushed as one multi-row statement per view plus the changelog rows
 * (one per key and batch: the row before and after, at the position of the last
 * event that wrote it). Each event's writes can be undone alone when its handler throws.
 */
export interface ViewWriter {
  readonly ctx: HandlerContext;
  /** Position recorded in the changelog for the writes that follow. */
  setPosition(position: string): void;
  /** Starts recording an event's writes, so `undoEvent` can drop them. */
  beginEvent(): void;
  undoEvent(): void;
  flush(): Promise<void>;
  /** Number of changelog rows written so far. */
  readonly changes: number;
  /** True when a flush happened since `beginEvent` (the event's writes then cannot be undone alone). */
  readonly flushedDuringEvent: boolean;
  /**
   * Reads the rows of these keys that are neither cached nor pending, one statement per
   * view, so the handlers' reads of them cost no round trip. Unknown views are ignored.
   */
  prefetch(keys: ReadonlyMap<string, readonly Record<string, unknown>[]>): Promise<void>;
  /** The keys read from the tables one by one (cache misses) since the last call. */
  takeMisses(): Array<{ view: string; key: Row }>;
  /**
   * Reads, on another connection `db` and while this writer's transaction is still open, the
   * rows of these keys that the next batch will want: keys neither cached nor written by this
   * writer, whose committed rows this transaction does not change. Hand the result to the
   * next batch's writer (`accept`) only if this transaction committed and nothing else wrote
   * the views meanwhile (the runner's cache rule).
   */
  readAhead(db: Queryable, keys: ReadonlyMap<string, readonly Record<string, unknown>[]>): Promise<ReadAhead>;
  /** Caches rows read ahead by the previous batch's writer. */
  accept(ahead: ReadAhead): void;
}

/** Rows read ahead for the next batch, per view: cache key and row (null: absent). */
export type ReadAhead = Map<string, Array<[string, Row | null]>>;

export function createViewWriter(options: ViewWriterOptions): ViewWriter {
  const { client, schema } = options;
  const budget = (options.cacheBytes ?? DEFAULT_CACHE_BYTES) / Math.max(1, options.views.length);
  const targets = new Map<string, ViewTarget>();
  let misses: Array<{ view: string; key: Row }> = [];
  for (const view of options.views) {
    const cache = viewRows(options.cache, view.name);
    targets.set(view.name, {
      view,
      table: qualified(schema, view.name),
      columns: Object.keys(view.columns),
      key: [...view.primaryKey],
      columnJson: Object.keys(view.columns).map((column) => columnJson(view, column)),
      keyJson: view.primaryKey.map((column) => columnJson(view, column)),
      sql: flushStatements(view, qualified(schema, view.name)),
      copy: viewCopy(view, qualified(schema, view.name)),
      select: canonicalSelectList(view.columns),
      cache,
      pending: new Map(),
      written: new Set(),
    });
  }
  // The projection's keyed state commits with the views: same transaction, same cache lifetime.
  const state = createKeyedState({
    client,
    projection: options.projection,
    scope: schema,
    cache: options.cache,
  });
  let position = '';
  let journal: Array<{ target: ViewTarget; key: string; previous: PendingWrite | undefined }> | undefined;
  let changes = 0;
  let flushedDuringEvent = false;

  const target = (view: AnyView | string): ViewTarget => {
    const name = typeof view === 'string' ? view : view.name;
    const found = targets.get(name);
    if (!found) {
      throw new ValidationError(`Projection '${options.projection}' does not declare view '${name}'.`, {
        hint: 'Add the view to the projection’s `views`, or write to one it declares.',
      });
    }
    return found;
  };

  const keyOf = (t: ViewTarget, values: Record<string, unknown>): string => {
    const key: Row = {};
    for (const column of t.key) key[column] = keyValue(t, column, values);
    return cacheKey(t.view, key);
  };

  /** Current row: the batch's writes first, then the cache, then the table. */
  const current = async (t: ViewTarget, key: string, keyValues: Row): Promise<Row | null> => {
    const pending = t.pending.get(key);
    if (pending) return pending.row;
    const cached = cachedRow(t.cache, key);
    if (cached !== undefined) return cached;
    if (t.cache.complete) return null;
    const keyRow: Row = {};
    for (const column of t.key) keyRow[column] = normalize(t, column, keyValues[column]);
    misses.push({ view: t.view.name, key: keyRow });
    const { rows } = await client.query<Row>(
      t.sql.read,
      t.key.map((column) => keyRow[column]),
    );
    const row = rows[0] ?? null;
    remember(t, key, row);
    return row;
  };

  const remember = (t: ViewTarget, key: string, row: Row | null) => cacheRow(t.cache, key, row, budget);

  /** The keys among `keys` that are neither cached, pending nor in `skip`, by cache key. */
  const unknownKeys = (t: ViewTarget, keys: readonly Record<string, unknown>[], skip?: Set<string>) => {
    const wanted = new Map<string, Row>();
    if (t.cache.complete) return wanted;
    for (const values of keys) {
      let key: string;
      const keyRow: Row = {};
      try {
        for (const column of t.key) keyRow[column] = keyValue(t, column, values);
        key = cacheKey(t.view, keyRow);
      } catch {
        continue; // a guess that is not a valid key: the handler will say so if it uses it
      }
      if (!t.pending.has(key) && !t.cache.has(key) && !skip?.has(key)) wanted.set(key, keyRow);
    }
    return wanted;
  };

  /** The rows of `wanted` read in one statement on `db`, absent keys as null. */
  const readWanted = async (db: Queryable, t: ViewTarget, wanted: Map<string, Row>) => {
    const found: Array<[string, Row | null]> = [];
    if (wanted.size === 0) return found;
    const rows = await readByKeys(db, t, [...wanted.values()]);
    const absent = new Map(wanted);
    for (const row of rows) {
      const key = cacheKey(t.view, row);
      if (absent.delete(key)) found.push([key, row]);
    }
    for (const key of absent.keys()) found.push([key, null]);
    return found;
  };

  /** Caches the rows of `keys` not yet known, read in one statement; absent keys as null. */
  const prefetchTarget = async (t: ViewTarget, keys: readonly Record<string, unknown>[]) => {
    for (const [key, row] of await readWanted(client, t, unknownKeys(t, keys))) remember(t, key, row);
  };

  const write = (t: ViewTarget, key: string, row: Row | null) => {
    t.written.add(key);
    const previous = t.pending.get(key);
    journal?.push({ target: t, key, previous });
    const cached = t.cache.get(key);
    const old = previous ? previous.old : cached !== undefined ? cached : t.cache.complete ? null : undefined;
    t.pending.set(key, { row, old, position });
  };

  const normalizeRow = (t: ViewTarget, values: Record<string, unknown>): Row => {
    for (const column of Object.keys(values)) {
      if (!(column in t.view.columns)) {
        throw new ValidationError(`View '${t.view.name}' has no column '${column}'.`, { field: column });
      }
    }
    const row: Row = {};
    for (const column of t.columns) row[column] = normalize(t, column, values[column]);
    return row;
  };

  const ctx: HandlerContext = {
    projection: options.projection,
    replaying: options.replaying ?? false,
    state: options.partitioned ? refusedState(options.projection) : state.api,
    async get(view, key) {
      const t = target(view);
      const row = await current(t, keyOf(t, key), key as Row);
      return (row ? { ...row } : undefined) as never;
    },
    async upsert(view, values) {
      const t = target(view);
      const row = normalizeRow(t, values as Row);
      write(t, keyOf(t, row), row);
    },
    async patch(view, key, changes) {
      const t = target(view);
      const k = keyOf(t, key);
      const existing = await current(t, k, key as Row);
      if (!existing) return undefined;
      const row = normalizeRow(t, { ...existing, ...(changes as Row) });
      if (keyOf(t, row) !== k) {
        throw new ValidationError(`A patch of view '${t.view.name}' cannot change the primary key.`);
      }
      write(t, k, row);
      return { ...row } as never;
    },
    async delete(view, key) {
      const t = target(view);
      const k = keyOf(t, key);
      const existing = await current(t, k, key as Row);
      if (!existing) return false;
      write(t, k, null);
      return true;
    },
    async find(view, where = {}, findOptions = {}) {
      const t = target(view);
      await flushTarget(t);
      const params: unknown[] = [];
      const clauses = Object.entries(where as Row).map(([column, value]) => {
        if (!(column in t.view.columns)) {
          throw new ValidationError(`View '${t.view.name}' has no column '${column}'.`, { field: column });
        }
        if (value === null) return `${quoteIdentifier(column)} is null`;
        params.push(normalize(t, column, value));
        return `${quoteIdentifier(column)} = $${params.length}`;
      });
      params.push(findOptions.limit ?? 10_000);
      const { rows } = await client.query<Row>(
        `select ${t.select} from ${t.table} ${clauses.length ? `where ${clauses.join(' and ')}` : ''}
         order by ${t.key.map(quoteIdentifier).join(', ')} limit $${params.length}`,
        params,
      );
      return rows as never;
    },
  };

  const flushTarget = async (t: ViewTarget) => {
    if (t.pending.size === 0) return;
    flushedDuringEvent = true;
    const entries = [...t.pending.entries()];
    t.pending.clear();
    journal = journal?.filter((entry) => entry.target !== t);

    const unknown = entries.filter(([, write]) => write.old === undefined);
    if (unknown.length > 0) {
      const keys = unknown.flatMap(([, write]) => (write.row === null ? [] : [write.row]));
      const rows = keys.length > 0 ? await readByKeys(client, t, keys) : [];
      const found = new Map(rows.map((row) => [keyOf(t, row), row]));
      for (const [key, write] of unknown) write.old = found.get(key) ?? null;
    }

    // Each row is written as JSON once: the same text feeds the upsert and the changelog.
    // Rows known to be new (no row before the batch) go in by COPY instead.
    const upserts: string[] = [];
    const json: Array<string | null> = [];
    let copied = '';
    const deletes: Row[] = [];
    for (const [key, write] of entries) {
      const text = write.row === null ? null : rowJson(t, write.row);
      json.push(text);
      if (text !== null && write.old === null && t.copy) copied += t.copy.line(write.row!);
      else if (text !== null) upserts.push(text);
      else if (write.old) deletes.push(write.old);
      remember(t, key, write.row);
    }
    if (deletes.length > 0) await client.query(t.sql.delete, [JSON.stringify(deletes)]);
    // The changelog is encoded while the writes run; their errors surface at the await below.
    const inserted = copied.length > 0 ? t.copy!.insert(client, copied) : undefined;
    inserted?.catch(() => {});
    const upserted = upserts.length > 0 ? client.query(t.sql.upsert, [`[${upserts.join(',')}]`]) : undefined;
    upserted?.catch(() => {});
    const logged: string[] = [];
    let single = '';
    let last = '';
    for (let i = 0; i < entries.length; i++) {
      const write = entries[i]![1];
      const old = write.old ?? null;
      if (write.row === null && old === null) continue;
      const oldJson = old === null ? null : rowJson(t, old);
      const [op, key, row] =
        write.row === null
          ? (['delete', membersJson(t.keyJson, old!), null] as const)
          : (['upsert', membersJson(t.keyJson, write.row), json[i]!] as const);
      // A lone change keeps the single-row shape; more are packed into rows of many.
      if (logged.length === 0) single = changeLine(t.view.name, op, key, row, oldJson, write.position);
      logged.push(changeEntry(op, key, row, oldJson));
      if (write.position > last) last = write.position;
    }
    const lines = logged.length === 1 ? single : packedChangeLines(t.view.name, logged, last);
    await inserted;
    await upserted;
    await appendChanges(client, lines);
    changes += logged.length;
  };

  return {
    ctx,
    setPosition(next) {
      position = next;
    },
    beginEvent() {
      journal = [];
      flushedDuringEvent = false;
      state.beginEvent();
    },
    undoEvent() {
      for (const entry of (journal ?? []).reverse()) {
        if (entry.previous) entry.target.pending.set(entry.key, entry.previous);
        else entry.target.pending.delete(entry.key);
      }
      journal = [];
      state.undoEvent();
    },
    async flush() {
      for (const t of targets.values()) await flushTarget(t);
      await state.flush();
    },
    get changes() {
      return changes;
    },
    get flushedDuringEvent() {
      return flushedDuringEvent;
    },
    async prefetch(keys) {
      for (const [view, list] of keys) {
        const t = targets.get(view);
        if (t && list.length > 0) await prefetchTarget(t, list);
      }
    },
    takeMisses() {
      const taken = misses;
      misses = [];
      return taken;
    },
    async readAhead(db, keys) {
      const ahead: ReadAhead = new Map();
      for (const [view, list] of keys) {
        const t = targets.get(view);
        if (!t || list.length === 0) continue;
        // Snapshot the exclusions now: the read below may finish after this batch's flush.
        const wanted = unknownKeys(t, list, t.written);
        if (wanted.size > 0) ahead.set(view, await readWanted(db, t, wanted));
      }
      return ahead;
    },
    accept(ahead) {
      for (const [view, rows] of ahead) {
        const t = targets.get(view);
        if (!t) continue;
        for (const [key, row] of rows) if (!t.pending.has(key) && !t.cache.has(key)) remember(t, key, row);
      }
    },
  };
}

/** The rows of these keys (normalized key columns) that exist, in one statement. */
async function readByKeys(client: Queryable, t: ViewTarget, keys: readonly Row[]): Promise<Row[]> {
  const only = t.key.length === 1 ? t.view.columns[t.key[0]!]!.type : undefined;
  if (only !== undefined && only !== 'jsonb' && only !== 'text[]') {
    const { rows } = await client.query<Row>(
      `select ${t.select} from ${t.table} where ${quoteIdentifier(t.key[0]!)} = any($1::${SQL_TYPES[only]}[])`,
      [keys.map((row) => row[t.key[0]!])],
    );
    return rows;
  }
  const { rows } = await client.query<Row>(
    `select ${canonicalSelectList(t.view.columns, 'v')} from ${t.table} v
     where (${t.key.map((c) => `v.${quoteIdentifier(c)}`).join(', ')}) in
       (select ${t.key.map(quoteIdentifier).join(', ')} from jsonb_populate_recordset(null::${t.table}, $1::jsonb))`,
    [`[${keys.map((row) => membersJson(t.keyJson, row)).join(',')}]`],
  );
  return rows;
}

/** The statements that delete and upsert a batch of rows given as a JSON array. */
function flushStatements(view: AnyView, table: string): { delete: string; upsert: string; read: string } {
  const columns = Object.keys(view.columns);
  const columnList = columns.map(quoteIdentifier).join(', ');
  const keyList = view.primaryKey.map(quoteIdentifier).join(', ');
  // A numeric key column is rewritten too: 1.50 replaces 1.5, so the table keeps the form logged.
  const others = columns.filter(
    (column) => !view.primaryKey.includes(column) || view.columns[column]!.type === 'numeric',
  );
  const onConflict = others.length
    ? `do update set ${others.map((c) => `${quoteIdentifier(c)} = excluded.${quoteIdentifier(c)}`).join(', ')}`
    : 'do nothing';
  return {
    delete: `delete from ${table} where (${keyList}) in
      (select ${keyList} from jsonb_populate_recordset(null::${table}, $1::jsonb))`,
    read: `select ${canonicalSelectList(view.columns)} from ${table}
      where ${view.primaryKey.map((column, i) => `${quoteIdentifier(column)} = $${i + 1}`).join(' and ')}`,
    upsert: `insert into ${table} (${columnList})
      select ${columnList} from jsonb_populate_recordset(null::${table}, $1::jsonb)
      on conflict (${keyList}) ${onConflict}`,
  };
}

/** A row as JSON text, each column in its natural JSON form (timestamps as ISO-8601 strings). */
function rowJson(t: ViewTarget, row: Row): string {
  return membersJson(t.columnJson, row);
}

function membersJson(members: readonly ColumnJson[], row: Row): string {
  let json = '{';
  for (let i = 0; i < members.length; i++) {
    const member = members[i]!;
    json += `${i === 0 ? '' : ','}${member.name}:${member.value(row[member.column])}`;
  }
  return `${json}}`;
}

/** How one column is written in a row's JSON: its quoted name and a value encoder. */
interface ColumnJson {
  column: string;
  name: string;
  value: (value: unknown) => string;
}

function columnJson(view: AnyView, column: string): ColumnJson {
  const type = view.columns[column]!.type;
  return {
    column,
    name: JSON.stringify(column),
    value: (value) => canonicalJson(type, value as CanonicalValue),
  };
}

/** A key column's normalized value; a key column cannot be left out. */
function keyValue(t: ViewTarget, column: string, values: Record<string, unknown>): unknown {
  const value = values[column];
  if (value === undefined || value === null) {
    throw new ValidationError(`The key of view '${t.view.name}' needs column '${column}'.`, {
      field: column,
    });
  }
  return normalize(t, column, value);
}

/** Brings a value to its canonical form (see values.ts), so cached, read and logged rows agree. */
function normalize(t: ViewTarget, column: string, value: unknown): CanonicalValue {
  const spec = t.view.columns[column]!;
  if (value === undefined || value === null) {
    if (spec.nullable === false || t.key.includes(column)) {
      throw new ValidationError(`Column '${t.view.name}.${column}' cannot be null.`, { field: column });
    }
    return null;
  }
  try {
    return toCanonical(spec.type, value);
  } catch (error) {
    if (!(error instanceof ValueTypeError)) throw error;
    const shown = typeof value === 'bigint' ? `${value}n` : (JSON.stringify(value) ?? typeof value);
    throw new ValidationError(
      `Column '${t.view.name}.${column}' is ${spec.type} and ${error.reason}; got ${shown.length > 80 ? `${shown.slice(0, 80)}…` : shown}.`,
      { field: column },
    );
  }
}

/**
 * Keyed state of a partitioned projection: its values (and `clear`, across keys) are shared
 * by every partition, so partitions would read each other's writes in no defined order.
 */
function refusedState(projection: string): KeyedState {
  const refuse = (): never => {
    throw new NotPartitionableError(
      projection,
      'its handler uses keyed state (ctx.state), which all partitions would share.',
      'Keep what the handler remembers in a view keyed by the partition key, or leave out `partitions`.',
    );
  };
  return { get: refuse, set: refuse, delete: refuse, clear: refuse };
}
