import type { Queryable } from '../db/index.js';
import { ValidationError } from '../errors.js';
import type { JsonValue } from '../ingest/index.js';
import type { RowCache, ViewRows } from './viewWriter.js';

/**
 * A projection's own keyed state: JSON values by namespace and key, kept in
 * `tributary.projection_state` and written in the batch transaction, with the views and the
 * checkpoint. What a join remembers of one side while it waits for the other lives here: a crash
 * loses or repeats none of it, a rebuild starts it afresh and swaps it in with the views.
 * Nothing outside the projection reads it (no GraphQL field, no changelog).
 */
export interface KeyedState {
  /** The value under `key` in `namespace` (this batch's writes included), or undefined. */
  get<T = JsonValue>(namespace: string, key: string): Promise<T | undefined>;
  /** Sets the value under `key`. */
  set(namespace: string, key: string, value: JsonValue): Promise<void>;
  /** Removes the value under `key`; true when there was one. */
  delete(namespace: string, key: string): Promise<boolean>;
  /** Removes every value of `namespace` (e.g. the state of a window that has closed). */
  clear(namespace: string): Promise<void>;
}

/** The cache entry holding keyed state values (view names are identifiers: no '#'). */
const CACHE_ENTRY = '#state';
/** A pending write: the value, or null for a deletion. */
type Pending = Map<string, JsonValue | null>;

export interface KeyedStateWriter {
  readonly api: KeyedState;
  /** Starts recording an event's writes, so `undoEvent` can drop them. */
  beginEvent(): void;
  undoEvent(): void;
  flush(): Promise<void>;
}

export interface KeyedStateOptions {
  client: Queryable;
  projection: string;
  /** Whose state: the schema of the view tables written with it (live, or a rebuild's shadow). */
  scope: string;
  /** The worker's cache across batches (the same one as the views'). */
  cache: RowCache;
  /** @default 100_000 values; past it the cache starts over. */
  maxCachedValues?: number;
  /** A table of at most this many values is read whole on first use. @default 20_000 */
  preloadLimit?: number;
}

export function createKeyedState(options: KeyedStateOptions): KeyedStateWriter {
  const { client, projection, scope } = options;
  const maxCached = options.maxCachedValues ?? 100_000;
  let cache = options.cache.get(CACHE_ENTRY) as ViewRows | undefined;
  if (!cache) {
    cache = new Map() as ViewRows;
    options.cache.set(CACHE_ENTRY, cache);
  }
  const values = cache;
  const pending: Pending = new Map();
  const cleared = new Set<string>();
  let journal: Array<() => void> | undefined;

  const id = (namespace: string, key: string) => {
    if (typeof namespace !== 'string' || typeof key !== 'string' || namespace.includes('\u0000')) {
      throw new ValidationError('Keyed state takes a namespace and a key, both strings (no NUL).', {
        field: 'key',
      });
    }
    return `${namespace}\u0000${key}`;
  };
  const split = (full: string) => {
    const at = full.indexOf('\u0000');
    return { namespace: full.slice(0, at), key: full.slice(at + 1) };
  };
  const remember = (full: string, value: JsonValue | null) => {
    if (values.size >= maxCached) {
      values.clear();
      values.complete = false;
    }
    values.set(full, value === null ? null : { v: value });
  };

  /** A small state table is read whole once, so that a miss then needs no query. */
  const preload = async () => {
    if (values.complete || values.size > 0) return;
    const limit = options.preloadLimit ?? 20_000;
    const { rows } = await client.query<{ namespace: string; key: string; value: JsonValue }>(
      `select namespace, key, value from tributary.projection_state
        where projection = $1 and scope = $2 limit $3`,
      [projection, scope, limit + 1],
    );
    if (rows.length > limit) return;
    for (const row of rows) values.set(`${row.namespace}\u0000${row.key}`, { v: row.value });
    values.complete = true;
  };

  const current = async (full: string): Promise<JsonValue | null> => {
    if (pending.has(full)) return pending.get(full) ?? null;
    const { namespace } = split(full);
    if (cleared.has(namespace)) return null;
    await preload();
    const cached = values.get(full);
    if (cached !== undefined) return cached === null ? null : (cached.v as JsonValue);
    if (values.complete) return null;
    const { key } = split(full);
    const { rows } = await client.query<{ value: JsonValue }>(
      `select value from tributary.projection_state
        where projection = $1 and scope = $2 and namespace = $3 and key = $4`,
      [projection, scope, namespace, key],
    );
    const value = rows[0]?.value ?? null;
    remember(full, value);
    return value;
  };

  const write = (full: string, value: JsonValue | null) => {
    const had = pending.has(full);
    const previous = pending.get(full);
    journal?.push(() => {
      if (had) pending.set(full, previous!);
      else pending.delete(full);
    });
    pending.set(full, value);
  };

  const api: KeyedState = {
    async get<T = JsonValue>(namespace: string, key: string) {
      const value = await current(id(namespace, key));
      return (value === null ? undefined : structuredClone(value)) as T | undefined;
    },
    async set(namespace, key, value) {
      if (value === undefined) throw new ValidationError('Keyed state values are JSON; got undefined.');
      write(id(namespace, key), structuredClone(value));
    },
    async delete(namespace, key) {
      const full = id(namespace, key);
      if ((await current(full)) === null) return false;
      write(full, null);
      return true;
    },
    async clear(namespace) {
      id(namespace, '');
      const dropped = [...pending].filter(([full]) => split(full).namespace === namespace);
      const wasCleared = cleared.has(namespace);
      journal?.push(() => {
        for (const [full, value] of dropped) pending.set(full, value);
        if (!wasCleared) cleared.delete(namespace);
      });
      for (const [full] of dropped) pending.delete(full);
      cleared.add(namespace);
    },
  };

  return {
    api,
    beginEvent() {
      journal = [];
    },
    undoEvent() {
      for (const undo of (journal ?? []).reverse()) undo();
      journal = [];
    },
    async flush() {
      if (cleared.size > 0) {
        const namespaces = [...cleared];
        await client.query(
          `delete from tributary.projection_state
            where projection = $1 and scope = $2 and namespace = any ($3::text[])`,
          [projection, scope, namespaces],
        );
        for (const full of [...values.keys()]) {
          if (cleared.has(split(full).namespace)) values.set(full, null);
        }
        cleared.clear();
      }
      if (pending.size === 0) return;
      const sets: { namespace: string; key: string; value: JsonValue }[] = [];
      const deletes: { namespace: string; key: string }[] = [];
      for (const [full, value] of pending) {
        if (value === null) deletes.push(split(full));
        else sets.push({ ...split(full), value });
        remember(full, value);
      }
      pending.clear();
      if (deletes.length > 0) {
        await client.query(
          `delete from tributary.projection_state s
            using unnest($3::text[], $4::text[]) d (namespace, key)
            where s.projection = $1 and s.scope = $2 and s.namespace = d.namespace and s.key = d.key`,
          [projection, scope, deletes.map((d) => d.namespace), deletes.map((d) => d.key)],
        );
      }
      if (sets.length > 0) {
        await client.query(
          `insert into tributary.projection_state (projection, scope, namespace, key, value)
           select $1, $2, s.namespace, s.key, s.value
             from unnest($3::text[], $4::text[], $5::jsonb[]) s (namespace, key, value)
           on conflict (projection, scope, namespace, key) do update set value = excluded.value`,
          [
            projection,
            scope,
            sets.map((s) => s.namespace),
            sets.map((s) => s.key),
            sets.map((s) => JSON.stringify(s.value)),
          ],
        );
      }
    },
  };
}

/** Forgets a projection's state in one scope (a rebuild starts from nothing). */
export async function resetKeyedState(db: Queryable, projection: string, scope: string): Promise<void> {
  await db.query('delete from tributary.projection_state where projection = $1 and scope = $2', [
    projection,
    scope,
  ]);
}

/** Moves a projection's state from one scope to another, replacing what was there (a rebuild's swap). */
export async function moveKeyedState(
  db: Queryable,
  projection: string,
  from: string,
  to: string,
): Promise<void> {
  await resetKeyedState(db, projection, to);
  await db.query('update tributary.projection_state set scope = $3 where projection = $1 and scope = $2', [
    projection,
    from,
    to,
  ]);
}
