import type { Envelope } from '../ingest/index.js';
import type { Projection, Row } from './defineProjection.js';

/**
 * The view keys a batch's handlers will read, guessed before they run, so the runner
 * reads them in one statement per view instead of one round trip per event.
 *
 * A projection may say which keys an envelope needs (`prefetch`). Otherwise the keys are
 * learned: when a handler's read misses the cache, the envelope is searched for the key's
 * values (the stream id, or a field of the data up to a few levels deep), and the paths
 * found are remembered for that event type and view. Later envelopes of that type then
 * yield their values at those paths. A guess only warms the cache: a wrong one costs a
 * key in a read, never a wrong row, since handlers still read through the cache.
 */
export type ViewKeys = Map<string, Row[]>;

/** Paths found for the key columns of one view, per event type, with how often each held. */
type Learned = Map<string, Map<string, ColumnPaths>>;
/** Per key column: each path (its segments joined by '\u0000') and how often it held. */
type ColumnPaths = Map<string, Map<string, number>>;

const learnedByProjection = new WeakMap<Projection, Learned>();

/** Paths kept per key column; guesses per envelope and view stay at most this squared. */
const MAX_PATHS = 3;
/** How deep and how wide the search of an envelope's data goes. */
const MAX_DEPTH = 4;
const MAX_VISITED = 256;

/** The keys the handlers of `envelopes` are expected to read, per view name. */
export function keysToPrefetch(projection: Projection, envelopes: readonly Envelope[]): ViewKeys {
  const keys: ViewKeys = new Map();
  const add = (view: string, key: Row) => {
    const list = keys.get(view);
    if (list) list.push(key);
    else keys.set(view, [key]);
  };
  if (projection.prefetch) {
    for (const envelope of envelopes) {
      try {
        for (const { view, key } of projection.prefetch(envelope)) {
          add(typeof view === 'string' ? view : view.name, key as Row);
        }
      } catch {
        // A guess that fails is no guess: the handler reads its rows one by one.
      }
    }
    return keys;
  }
  const learned = learnedByProjection.get(projection);
  if (!learned) return keys;
  for (const envelope of envelopes) {
    const views = learned.get(envelope.type);
    if (!views) continue;
    for (const [view, columns] of views) {
      for (const key of guesses(envelope, columns)) add(view, key);
    }
  }
  return keys;
}

/**
 * Learns from the keys a handler read one by one while applying `envelope`. True when a
 * path was found that was not known before (the caller may then prefetch the rest of its batch).
 */
export function learnFromMisses(
  projection: Projection,
  envelope: Envelope,
  misses: ReadonlyArray<{ view: string; key: Row }>,
): boolean {
  if (projection.prefetch || misses.length === 0) return false;
  let learnedNew = false;
  const learned = getOrCreate(learnedByProjection, projection, (): Learned => new Map());
  const views = getOrCreate(learned, envelope.type, () => new Map<string, ColumnPaths>());
  for (const { view, key } of misses) {
    const columns = getOrCreate(views, view, (): ColumnPaths => new Map());
    for (const [column, value] of Object.entries(key)) {
      const paths = getOrCreate(columns, column, () => new Map<string, number>());
      for (const path of pathsTo(envelope, value)) {
        const hits = paths.get(path);
        if (hits === undefined) learnedNew = true;
        paths.set(path, (hits ?? 0) + 1);
      }
      if (paths.size > MAX_PATHS) {
        // Keep the paths that held most often.
        const kept = [...paths].sort((a, b) => b[1] - a[1]).slice(0, MAX_PATHS);
        paths.clear();
        for (const [path, hits] of kept) paths.set(path, hits);
      }
    }
  }
  return learnedNew;
}

/** Every key the learned paths give for this envelope (none when a column has no value). */
function guesses(envelope: Envelope, columns: ColumnPaths): Row[] {
  let keys: Row[] = [{}];
  for (const [column, paths] of columns) {
    const values = new Set<unknown>();
    for (const path of paths.keys()) {
      const value = valueAt(envelope, path);
      if (value !== undefined) values.add(value);
    }
    if (values.size === 0) return [];
    const next: Row[] = [];
    for (const key of keys) for (const value of values) next.push({ ...key, [column]: value });
    keys = next;
  }
  return keys;
}

/** Learned paths split into their segments (after 'data'), split once. */
const segmentsOf = new Map<string, string[]>();

function valueAt(envelope: Envelope, path: string): unknown {
  if (path === 'streamId') return envelope.streamId;
  let segments = segmentsOf.get(path);
  if (segments === undefined) {
    segments = path.split('\u0000').slice(1);
    segmentsOf.set(path, segments);
  }
  let value: unknown = envelope.data;
  for (const segment of segments) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<string, unknown>)[segment];
  }
  return value === null || typeof value === 'object' ? undefined : value;
}

/** The paths in the envelope where `value` appears (compared as text: 42 matches '42'). */
function pathsTo(envelope: Envelope, value: unknown): string[] {
  if (value === null || typeof value === 'object') return [];
  const wanted = String(value);
  const found: string[] = [];
  if (envelope.streamId === wanted) found.push('streamId');
  let visited = 0;
  const search = (node: unknown, path: string, depth: number) => {
    if (++visited > MAX_VISITED || found.length >= MAX_PATHS) return;
    if (node === null || node === undefined) return;
    if (typeof node !== 'object') {
      if (String(node) === wanted) found.push(path);
      return;
    }
    if (depth >= MAX_DEPTH || Array.isArray(node)) return;
    for (const [name, child] of Object.entries(node)) search(child, `${path}\u0000${name}`, depth + 1);
  };
  search(envelope.data, 'data', 0);
  return found;
}

/** The value under `key`, created and stored first when missing. */
function getOrCreate<K, V>(
  map: { get(key: K): V | undefined; set(key: K, value: V): unknown },
  key: K,
  create: () => V,
): V {
  let value = map.get(key);
  if (value === undefined) {
    value = create();
    map.set(key, value);
  }
  return value;
}
