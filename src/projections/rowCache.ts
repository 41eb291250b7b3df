import { type Queryable, qualified } from '../db/index.js';
import type { AnyView, Row } from './defineProjection.js';
import { canonicalSelectList } from './values.js';
import type { ColumnType } from './view.js';

/**
 * Rows a worker remembers between batches, per view and key (null: known absent).
 * It mirrors committed table state only while this worker is the sole writer, so
 * the runner clears it whenever that may not hold (failed commit, foreign write).
 *
 * Each view's rows are bounded by memory, not by count: the least recently used rows
 * go first once the view's share of the budget is spent, so a view far larger than
 * memory keeps its hot keys and a small one stays whole.
 */
export type RowCache = Map<string, ViewRows>;

/** Cached rows of one view, in least-recently-used order (Map insertion order). */
export interface ViewRows extends Map<string, Row | null> {
  /** Every row of the table is in it, so a miss is an absent row. */
  complete?: boolean;
  /** Estimated bytes the cached rows hold. */
  bytes?: number;
}

/** The default memory a projection's row cache may use, across its views. */
export const DEFAULT_CACHE_BYTES = 256 * 1024 * 1024;

/** The cached rows of one view, created empty on first use. */
export function viewRows(cache: RowCache, view: string): ViewRows {
  let rows = cache.get(view);
  if (!rows) {
    rows = new Map();
    cache.set(view, rows);
  }
  return rows;
}

/** Forgets every cached row (they may no longer match the tables). */
export function clearCache(cache: RowCache): void {
  for (const rows of cache.values()) {
    rows.clear();
    rows.complete = false;
    rows.bytes = 0;
  }
}

/** A cached row (null: known absent), marked as just used; undefined when not cached. */
export function cachedRow(rows: ViewRows, key: string): Row | null | undefined {
  const row = rows.get(key);
  if (row === undefined) return undefined;
  // Re-inserting moves the key to the end: the most recently used.
  rows.delete(key);
  rows.set(key, row);
  return row;
}

/** Caches a row (null: absent), evicting the least recently used past `budget` bytes. */
export function cacheRow(rows: ViewRows, key: string, row: Row | null, budget: number): void {
  const previous = rows.get(key);
  let bytes = (rows.bytes ?? 0) + rowBytes(key, row);
  if (previous !== undefined) {
    bytes -= rowBytes(key, previous);
    rows.delete(key);
  }
  rows.set(key, row);
  if (bytes > budget) {
    // Evict a little below the budget, so eviction runs once per many inserts.
    const target = budget * 0.9;
    for (const [oldest, old] of rows) {
      if (bytes <= target || oldest === key) break;
      bytes -= rowBytes(oldest, old);
      rows.delete(oldest);
      rows.complete = false;
    }
  }
  rows.bytes = bytes;
}

/**
 * A row's approximate heap cost: the map entry and object overhead, plus its values
 * (strings at two bytes a character, the worst case; JSON values by their text).
 */
function rowBytes(key: string, row: Row | null): number {
  let bytes = 96 + key.length * 2;
  if (row === null) return bytes;
  for (const column in row) {
    const value = row[column];
    bytes += 32;
    if (typeof value === 'string') bytes += value.length * 2;
    else if (value !== null && typeof value === 'object') bytes += JSON.stringify(value).length * 2;
    else bytes += 8;
  }
  return bytes;
}

/**
 * Loads whole view tables into the cache when they are small (at most `limit` rows),
 * so that a miss needs no query: a run from the start of the log reads nothing.
 */
export async function preloadCache(
  client: Queryable,
  schema: string,
  views: readonly AnyView[],
  cache: RowCache,
  budget: number,
  limit = 20_000,
): Promise<void> {
  for (const view of views) {
    const rows = viewRows(cache, view.name);
    if (rows.complete) continue;
    // Only keys whose value has one written form (numeric 1.5 and 1.50 are the same key).
    if (view.primaryKey.some((c) => !EXACT_KEY_TYPES.has(view.columns[c]!.type))) continue;
    const table = qualified(schema, view.name);
    const { rows: counted } = await client.query<{ n: number }>(
      `select count(*)::int as n from (select 1 from ${table} limit $1) t`,
      [limit + 1],
    );
    if ((counted[0]?.n ?? limit + 1) > limit) continue;
    const { rows: all } = await client.query<Row>(
      `select ${canonicalSelectList(view.columns)} from ${table}`,
    );
    rows.clear();
    rows.bytes = 0;
    rows.complete = true;
    for (const row of all) cacheRow(rows, cacheKey(view, row), row, budget);
  }
}

const EXACT_KEY_TYPES = new Set<ColumnType>(['text', 'integer', 'bigint', 'boolean', 'timestamptz']);

/**
 * The cache key form of one canonical key column value. Numeric keys drop trailing
 * fractional zeros: 1.5 and 1.50 are the same key to PostgreSQL.
 */
function keyPart(type: ColumnType, value: unknown): string {
  if (typeof value !== 'string') return JSON.stringify(value);
  return type === 'numeric' && value.includes('.') ? value.replace(TRAILING_ZEROS, '') : value;
}

const TRAILING_ZEROS = /\.?0+$/;

/**
 * The cache key of a row (or key object) whose key columns are normalized: the value itself
 * for a one-column key (one column has one type, so its values cannot collide), else a JSON array.
 */
export function cacheKey(view: AnyView, values: Row): string {
  const { primaryKey, columns } = view;
  if (primaryKey.length === 1) return keyPart(columns[primaryKey[0]!]!.type, values[primaryKey[0]!]);
  return JSON.stringify(primaryKey.map((column) => keyPart(columns[column]!.type, values[column])));
}
