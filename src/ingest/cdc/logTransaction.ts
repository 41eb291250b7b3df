import type { Pool, PoolClient } from '../../db/index.js';
import type { Logger } from '../../logger.js';
import {
  appendToStreams,
  createWakeUp,
  openStreamCopy,
  type PreparedEvent,
  type StreamCopy,
  type StreamEvent,
} from '../log/index.js';
import { advanceCheckpoint } from './checkpoints.js';
import { recordChunk } from './incrementalSnapshots.js';
import type { Lsn } from './lsn.js';
import type { ChunkOutput, SnapshotWindows } from './snapshotWindows.js';
import type { ResolvedSource } from './types.js';

/** A source transaction's commit, as the checkpoint records it. */
export interface SourceCommit {
  commitLsn: Lsn;
  endLsn: Lsn;
  commitTime: Date;
}

/** What one committed log transaction held. */
export interface LogCommit extends SourceCommit {
  /** Source transactions it holds. */
  transactions: number;
  /** Events it wrote. */
  events: number;
  /** When it began (ms since the epoch). */
  openedAt: number;
  /** From its last change written to its COMMIT, checkpoint included. */
  commitSeconds: number;
}

export interface LogTransaction {
  /** True while a log transaction is open. */
  readonly isOpen: boolean;
  /** The commit LSN of the last source transaction committed in the log. */
  readonly committedLsn: Lsn | null;
  /** Row change events of the source's own stream. A promise when they are being written. */
  addRows(events: readonly PreparedEvent[]): Promise<void> | undefined;
  /** An outbox event, which names a stream of its own. A promise when it is being written. */
  addOutbox(event: StreamEvent): Promise<void> | undefined;
  /** An incremental snapshot chunk: its rows, and its progress, which commits with them. */
  addChunk(chunk: ChunkOutput): Promise<void>;
  /**
   * A source transaction ended: it commits with the checkpoint now, or, with more queued
   * behind it, stays open to gather the next ones (see `StreamTuning`).
   */
  sourceCommitted(commit: SourceCommit): Promise<void>;
  /** Commits the open log transaction, if any. */
  commit(): Promise<void>;
  /** Drops the open log transaction: closing its connection rolls it back. */
  abandon(): void;
}

/**
 * The log transaction that source transactions land in, whole, with the checkpoint.
 *
 * Row changes of a source without an outbox stream into one COPY into the source's stream
 * as they are decoded, so PostgreSQL inserts while the next ones are decoded; a write waits
 * only when the connection is saturated, which (with the paused replication socket) keeps
 * memory bounded for huge transactions. With an outbox, row changes and outbox events go
 * together, in source order, through multi-stream appends. Either way they are sent on in
 * chunks of `chunkSize`. Small source transactions queued back to back share a log
 * transaction, up to `groupEvents` events and `groupMs` open.
 */
export function createLogTransaction(options: {
  pool: Pool;
  source: ResolvedSource;
  /** Row changes and outbox events go together through multi-stream appends. */
  mixed: boolean;
  chunkSize: number;
  groupEvents: number;
  groupMs: number;
  /** True when more source transactions are queued behind the one that ended. */
  backlog: () => boolean;
  /** The commit LSN the checkpoint holds. */
  committedLsn: Lsn | null;
  /** Told which chunks committed. */
  windows: Pick<SnapshotWindows, 'committed'>;
  logger: Logger;
  /** Called after each commit. */
  onCommitted(commit: LogCommit): void;
}): LogTransaction {
  const { pool, source, mixed, chunkSize, windows } = options;
  let committedLsn = options.committedLsn;
  let log: {
    client: PoolClient;
    /** The COPY into the source's stream, open while row changes are being written. */
    copy: StreamCopy | null;
    openedAt: number;
    transactions: number;
    events: number;
    /** Incremental snapshot chunks this log transaction appends (their progress commits with it). */
    chunks: ChunkOutput[];
  } | null = null;
  // Events decoded but not yet sent: `pending` for the COPY, `pendingMixed` for multi-stream appends.
  let pending: PreparedEvent[] = [];
  let pendingMixed: StreamEvent[] = [];
  let lastCommit: SourceCommit | null = null;
  // Readers are woken after the commit, on another connection: a notification sent inside
  // the transaction would serialize every notifying commit of the database.
  const wakeSubscribers = createWakeUp(pool, options.logger);

  const open = async () => {
    if (log !== null) return log;
    const client = await pool.connect();
    try {
      await client.query('begin');
      log = { client, copy: null, openedAt: Date.now(), transactions: 0, events: 0, chunks: [] };
    } catch (error) {
      client.release(error as Error);
      throw error;
    }
    return log;
  };
  const flushRows = async () => {
    if (pending.length === 0) return;
    const opened = await open();
    opened.copy ??= await openStreamCopy(opened.client, source.streamId);
    const events = pending;
    pending = [];
    opened.events += events.length;
    await opened.copy.write(events);
  };
  const flushMixed = async () => {
    if (pendingMixed.length === 0) return;
    const opened = await open();
    const events = pendingMixed;
    pendingMixed = [];
    opened.events += events.length;
    await appendToStreams(opened.client, events);
  };
  const addRows = (events: readonly PreparedEvent[]): Promise<void> | undefined => {
    if (mixed) {
      for (const event of events) pendingMixed.push({ ...event, streamId: source.streamId });
      return pendingMixed.length >= chunkSize ? flushMixed() : undefined;
    }
    for (const event of events) pending.push(event);
    return pending.length >= chunkSize ? flushRows() : undefined;
  };
  const commit = async () => {
    await (mixed ? flushMixed() : flushRows());
    const opened = log;
    if (opened === null || lastCommit === null) return;
    const committing = performance.now();
    if (opened.copy !== null) await opened.copy.finish();
    await advanceCheckpoint(opened.client, source.name, lastCommit, opened.transactions);
    for (const chunk of opened.chunks) await recordChunk(opened.client, chunk);
    await opened.client.query('commit');
    const commitSeconds = (performance.now() - committing) / 1000;
    opened.client.release();
    log = null;
    committedLsn = lastCommit.commitLsn;
    options.onCommitted({
      ...lastCommit,
      transactions: opened.transactions,
      events: opened.events,
      openedAt: opened.openedAt,
      commitSeconds,
    });
    if (opened.chunks.length > 0) windows.committed(opened.chunks);
    wakeSubscribers();
  };

  return {
    get isOpen() {
      return log !== null;
    },
    get committedLsn() {
      return committedLsn;
    },
    addRows,
    addOutbox(event) {
      pendingMixed.push(event);
      return pendingMixed.length >= chunkSize ? flushMixed() : undefined;
    },
    async addChunk(chunk) {
      const opened = await open();
      opened.chunks.push(chunk);
      await addRows(chunk.events);
    },
    async sourceCommitted(source) {
      lastCommit = source;
      const opened = await open();
      opened.transactions++;
      const gathered = opened.events + pending.length + pendingMixed.length;
      const more =
        options.backlog() && gathered < options.groupEvents && Date.now() - opened.openedAt < options.groupMs;
      if (!more) await commit();
    },
    commit,
    abandon() {
      // The connection may be in the middle of a COPY: close it, and the server rolls the
      // log transaction back with it.
      log?.client.release(true);
      log = null;
    },
  };
}
