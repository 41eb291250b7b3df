import type { PreparedEvent } from '../log/index.js';
import type { Relation, SourceTransaction } from './changeEvents.js';
import { snapshotRowEvent } from './changeEvents.js';
import { type Tuple, UNCHANGED_TOAST } from './pgoutputDecoder.js';

/** The prefix of Tributary's watermark messages (pg_logical_emit_message). */
export const WATERMARK_PREFIX = 'tributary_watermark';

export interface Watermark {
  id: string;
  kind: 'low' | 'high';
}

/** A chunk of an incremental snapshot, read between its two watermarks. */
export interface Chunk {
  snapshotId: number;
  /** `schema.table`. */
  table: string;
  relation: Relation;
  /** Rows as PostgreSQL's text forms, in the relation's column order. */
  rows: ReadonlyArray<ReadonlyArray<string | null>>;
  /** Index in a row of each key column, in key order. */
  keyIndexes: readonly number[];
  /** Transactions in progress (32-bit xids) in the snapshot the chunk was read in. */
  inProgress: ReadonlySet<number>;
  /** Key of the last row read (null when the chunk is empty). */
  lastKey: ReadonlyArray<string> | null;
  /** The chunk is the table's last: fewer rows than asked for. */
  last: boolean;
  /** Rows of this snapshot read before this chunk (they number the events). */
  rowsBefore: number;
}

/** What a high watermark adds to the log transaction: the chunk's surviving rows and its progress. */
export interface ChunkOutput {
  windowId: string;
  snapshotId: number;
  events: PreparedEvent[];
  rowsRead: number;
  lastKey: ReadonlyArray<string> | null;
  last: boolean;
}

export interface ChunkResult {
  /** False when the window could not be trusted (a row whose key the stream did not show): read it again. */
  applied: boolean;
  rowsWritten: number;
}

interface Window {
  id: string;
  table: string;
  state: 'expected' | 'open' | 'closed';
  chunk: Chunk | undefined;
  /** Keys the stream changed between the watermarks. */
  changed: Set<string>;
  truncated: boolean;
  /** A change of the table whose key could not be told: the chunk cannot be trusted. */
  unsure: boolean;
  /** Sequence number of the first recent change after the low watermark. */
  lowSeq: number;
  resolve: (result: ChunkResult) => void;
  reject: (error: unknown) => void;
  done: Promise<ChunkResult>;
}

/** Changes of snapshotted tables kept for a while, for transactions that raced the low watermark. */
interface RecentChange {
  seq: number;
  xid: number;
  table: string;
  keys: string[] | null;
}

const RECENT_LIMIT = 4096;
/** Decoded transactions remembered (xid and where they began), for the same race. */
const DECODED_LIMIT = 65_536;

/**
 * The stream side of DBLog's watermark algorithm. For each chunk, the snapshot reader
 * registers a window, writes a low watermark into the source's WAL, reads the chunk, hands it
 * over, and writes a high watermark. The stream, meanwhile, notes every key of the table it
 * sees changing between the two watermarks; at the high watermark the chunk's rows whose key
 * changed are dropped (the stream already carries a newer state of them) and the rest are
 * appended right there, in stream order. So a snapshot row never lands after a newer change of
 * its key, and the stream is never paused.
 *
 * One more case is covered: PostgreSQL writes a transaction's commit record before making it
 * visible, so a transaction decoded just before the low watermark can still be invisible to the
 * chunk's read. Its changes are kept for a while, and keys of transactions the chunk's
 * snapshot saw in progress are dropped too. The snapshot reader follows the table for the whole
 * snapshot (changes between chunks are kept as well); a transaction in progress for the chunk
 * that began before its changes were kept (before the table was followed, or whose changes
 * were since forgotten) makes the chunk untrusted: it is read again.
 */
export function createSnapshotWindows() {
  const windows = new Map<string, Window>();
  const tracked = new Map<string, number>();
  let recent: RecentChange[] = [];
  let seq = 0;
  /** Changes before this sequence number may be missing from `recent`, per followed table. */
  const keptFrom = new Map<string, number>();
  let recentFloor = 0;
  /** Every decoded transaction, in a ring: its xid and the sequence number of its begin. */
  const decodedXids = new Uint32Array(DECODED_LIMIT);
  const decodedBegins = new Float64Array(DECODED_LIMIT).fill(-1);
  let decodedCount = 0;
  let current: { xid: number; seq: number } | null = null;
  /** Where `xid` began, if it was decoded (committed) before sequence number `before`. */
  const decodedBegin = (xid: number, before: number): number | undefined => {
    const oldest = Math.max(0, decodedCount - DECODED_LIMIT);
    for (let i = decodedCount - 1; i >= oldest; i--) {
      const slot = i % DECODED_LIMIT;
      if (decodedXids[slot] === xid && decodedBegins[slot]! < before) return decodedBegins[slot];
    }
    return undefined;
  };

  const track = (table: string, delta: number) => {
    const count = (tracked.get(table) ?? 0) + delta;
    if (count <= 0) {
      tracked.delete(table);
      keptFrom.delete(table);
    } else {
      tracked.set(table, count);
      if (!keptFrom.has(table)) keptFrom.set(table, seq);
    }
    if (tracked.size === 0) recent = [];
  };
  const close = (window: Window) => {
    if (windows.delete(window.id)) track(window.table, -1);
  };

  return {
    /** Whether any table is being snapshotted: the stream checks only this for most changes. */
    get active(): boolean {
      return tracked.size > 0;
    },
    isTracked(table: string): boolean {
      return tracked.has(table);
    },
    /**
     * Keeps noting the table's changes for the whole snapshot, between chunks too: a transaction
     * that races a chunk's low watermark may be decoded before that chunk's window exists.
     * Returns the function that stops it.
     */
    follow(table: string): () => void {
      track(table, 1);
      let followed = true;
      return () => {
        if (followed) track(table, -1);
        followed = false;
      };
    },
    /** Registers a chunk's window before its low watermark is written. */
    expect(id: string, table: string): Promise<ChunkResult> {
      let resolve!: Window['resolve'];
      let reject!: Window['reject'];
      const done = new Promise<ChunkResult>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      windows.set(id, {
        id,
        table,
        state: 'expected',
        chunk: undefined,
        changed: new Set(),
        truncated: false,
        unsure: false,
        lowSeq: 0,
        resolve,
        reject,
        done,
      });
      track(table, 1);
      return done;
    },
    /** Hands the chunk read between the watermarks to its window (before the high watermark). */
    ready(id: string, chunk: Chunk): void {
      const window = windows.get(id);
      if (window !== undefined) window.chunk = chunk;
    },
    /** Gives up a window (its reader failed before the high watermark). */
    forget(id: string): void {
      const window = windows.get(id);
      if (window !== undefined) close(window);
    },
    /** The stream decoded a transaction's begin (any transaction, tracked tables or not). */
    begin(xid: number): void {
      current = { xid, seq: seq++ };
    },
    /** The stream decoded the commit of the transaction begun last. */
    commit(): void {
      if (current === null) return;
      const slot = decodedCount++ % DECODED_LIMIT;
      decodedXids[slot] = current.xid;
      decodedBegins[slot] = current.seq;
      current = null;
    },
    /** A change of a tracked table: `keys` are its row keys (old and new), null when unknown. */
    change(table: string, xid: number, keys: string[] | null): void {
      for (const window of windows.values()) {
        if (window.state !== 'open' || window.table !== table) continue;
        if (keys === null) window.unsure = true;
        else for (const key of keys) window.changed.add(key);
      }
      recent.push({ seq: seq++, xid, table, keys });
      if (recent.length > RECENT_LIMIT * 2) {
        recent = recent.slice(-RECENT_LIMIT);
        recentFloor = recent[0]!.seq;
      }
    },
    truncate(table: string): void {
      for (const window of windows.values()) {
        if (window.state === 'open' && window.table === table) window.truncated = true;
      }
    },
    /**
     * A watermark in the stream. A low one opens its window; a high one closes it and returns
     * what goes into the log at this point. Watermarks of other processes (or deployments
     * sharing the source) and of windows given up are ignored.
     */
    watermark(mark: Watermark, txn: SourceTransaction): ChunkOutput | undefined {
      const window = windows.get(mark.id);
      if (window === undefined) return undefined;
      if (mark.kind === 'low') {
        if (window.state === 'expected') {
          window.state = 'open';
          window.lowSeq = seq;
        }
        return undefined;
      }
      const chunk = window.chunk;
      if (window.state !== 'open' || chunk === undefined) {
        close(window);
        window.resolve({ applied: false, rowsWritten: 0 });
        return undefined;
      }
      window.state = 'closed';
      if (window.unsure) {
        close(window);
        window.resolve({ applied: false, rowsWritten: 0 });
        return undefined;
      }
      const dropped = window.changed;
      if (chunk.inProgress.size > 0) {
        // A transaction the chunk's read did not see, decoded before the low watermark: its
        // changes of the table must be known, or the chunk is read again.
        const known = Math.max(keptFrom.get(window.table) ?? window.lowSeq, recentFloor);
        for (const xid of chunk.inProgress) {
          const began = decodedBegin(xid, window.lowSeq);
          if (began !== undefined && began < known) {
            close(window);
            window.resolve({ applied: false, rowsWritten: 0 });
            return undefined;
          }
        }
        for (const change of recent) {
          if (change.seq >= window.lowSeq || change.table !== window.table) continue;
          if (!chunk.inProgress.has(change.xid)) continue;
          if (change.keys === null) {
            close(window);
            window.resolve({ applied: false, rowsWritten: 0 });
            return undefined;
          }
          for (const key of change.keys) dropped.add(key);
        }
      }
      const events: PreparedEvent[] = [];
      if (!window.truncated) {
        for (let i = 0; i < chunk.rows.length; i++) {
          const row = chunk.rows[i]!;
          if (dropped.size > 0 && dropped.has(keyOf(row, chunk.keyIndexes))) continue;
          events.push(snapshotRowEvent(txn, chunk.relation, row, chunk.snapshotId, chunk.rowsBefore + i));
        }
      }
      return {
        windowId: window.id,
        snapshotId: chunk.snapshotId,
        events,
        rowsRead: chunk.rows.length,
        lastKey: chunk.lastKey,
        last: chunk.last,
      };
    },
    /** The log transaction holding these chunks committed. */
    committed(outputs: readonly ChunkOutput[]): void {
      for (const output of outputs) {
        const window = windows.get(output.windowId);
        if (window === undefined) continue;
        close(window);
        window.resolve({ applied: true, rowsWritten: output.events.length });
      }
    },
    /** The stream stopped: every waiting chunk fails (its reader starts over from the stored progress). */
    abort(error: unknown): void {
      for (const window of [...windows.values()]) {
        close(window);
        window.reject(error);
      }
    },
  };
}

export type SnapshotWindows = ReturnType<typeof createSnapshotWindows>;

/** A row's key as the windows compare it: the key columns' text forms. */
export function keyOf(row: ReadonlyArray<string | null>, keyIndexes: readonly number[]): string {
  let key = '';
  for (const index of keyIndexes) key += `${JSON.stringify(row[index] ?? null)},`;
  return key;
}

/** The key of a decoded tuple, or null when a key column was not sent (an unchanged TOASTed value). */
export function tupleKey(tuple: Tuple, keyIndexes: readonly number[]): string | null {
  let key = '';
  for (const index of keyIndexes) {
    const value = tuple[index];
    if (value === UNCHANGED_TOAST || value === undefined) return null;
    key += `${JSON.stringify(value)},`;
  }
  return key;
}

/** Parses a watermark message's content; undefined when it is not one of this slot's. */
export function parseWatermark(content: string, slot: string): Watermark | undefined {
  try {
    const value = JSON.parse(content) as { slot?: unknown; id?: unknown; kind?: unknown };
    if (value.slot !== slot || typeof value.id !== 'string') return undefined;
    if (value.kind !== 'low' && value.kind !== 'high') return undefined;
    return { id: value.id, kind: value.kind };
  } catch {
    return undefined;
  }
}
