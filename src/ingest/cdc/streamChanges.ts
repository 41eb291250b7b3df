import type { Pool } from '../../db/index.js';
import type { Logger } from '../../logger.js';
import type { TypeResolver } from './changeEvents.js';
import type { Checkpoint } from './checkpoints.js';
import { createLogTransaction, type LogCommit } from './logTransaction.js';
import type { Lsn } from './lsn.js';
import { openReplicationStream } from './replicationStream.js';
import { createSlotConfirmation } from './slotConfirmation.js';
import type { SnapshotWindows } from './snapshotWindows.js';
import { createStreamDecoder } from './streamDecoder.js';
import type { OutboxSettings, ResolvedSource } from './types.js';

/** Tuning of the streaming loop; the defaults suit most sources. */
export interface StreamTuning {
  /** Events decoded before they are sent on to the log transaction's COPY. @default 500 */
  chunkSize?: number;
  /**
   * Most events one log transaction gathers from several small source transactions queued
   * back to back (a backlog). With nothing queued, a log transaction commits at once. @default 20000
   */
  groupEvents?: number;
  /**
   * Longest a log transaction stays open to gather more queued source transactions: each commit
   * waits for PostgreSQL to take in the rows sent so far, so fewer commits drain a backlog faster,
   * while an open log transaction holds the log's readers back. @default 100
   */
  groupMs?: number;
  /**
   * Bytes of decoded messages queued before the replication socket is paused. The queue keeps
   * the source streaming while a log transaction commits. @default 8 MiB
   */
  queueBytes?: number;
}

export interface StreamHooks {
  /** Called after each log commit and each confirmed keepalive. */
  onConfirmed(lsn: Lsn, caughtUp: boolean): void;
  onCheckpoint(checkpoint: LogCommit): void;
}

/**
 * Streams the slot into the log from `checkpoint` until `signal` aborts or the connection
 * fails (then it throws, and the caller reconnects from the stored checkpoint).
 *
 * Each source transaction lands in the log whole, with the checkpoint, in one log
 * transaction; small ones queued back to back share a log transaction. Big ones are
 * appended in chunks as they arrive while the replication socket is paused whenever
 * the queue is full, so memory stays bounded. The slot is confirmed only up to what
 * is committed in the log: the library's own timer and auto-acknowledgement are off
 * (its timer would confirm what was merely received) and status updates are sent here.
 */
export async function streamChanges(options: {
  source: ResolvedSource;
  checkpoint: Checkpoint;
  pool: Pool;
  resolveTypes: TypeResolver;
  keyColumns: ReadonlyMap<string, readonly string[]>;
  /** Outbox tables by `schema.table`. */
  outboxes: ReadonlyMap<string, OutboxSettings>;
  /** The incremental snapshots' windows, fed with watermarks and the changes of snapshotted tables. */
  windows: SnapshotWindows;
  /** Ask for logical decoding messages (PostgreSQL 14 and later): the message watermarks. */
  messages: boolean;
  logger: Logger;
  signal: AbortSignal;
  hooks: StreamHooks;
  tuning?: StreamTuning;
}): Promise<void> {
  const { source, checkpoint, pool, windows, logger, signal, hooks } = options;
  const resumeFrom = checkpoint.endLsn ?? checkpoint.startLsn;
  const stream = openReplicationStream({
    source,
    resumeFrom,
    messages: options.messages,
    queueBytes: options.tuning?.queueBytes ?? 8 * 1024 * 1024,
    signal,
  });
  const idle = () => !decoder.inTransaction && !log.isOpen;
  const slot = createSlotConfirmation({
    stream,
    pool,
    source: source.name,
    checkpoint,
    resumeFrom,
    idle,
    logger,
  });
  const log = createLogTransaction({
    pool,
    source,
    mixed: options.outboxes.size > 0,
    chunkSize: options.tuning?.chunkSize ?? 500,
    groupEvents: options.tuning?.groupEvents ?? 20000,
    groupMs: options.tuning?.groupMs ?? 100,
    backlog: () => stream.queued() > 0,
    committedLsn: checkpoint.commitLsn,
    windows,
    logger,
    onCommitted(commit) {
      hooks.onCheckpoint(commit);
      slot.committed(commit.endLsn);
    },
  });
  const decoder = createStreamDecoder({
    source,
    startLsn: checkpoint.startLsn,
    resolveTypes: options.resolveTypes,
    keyColumns: options.keyColumns,
    outboxes: options.outboxes,
    windows,
    log,
    passed: (endLsn) => slot.passed(endLsn),
    logger,
  });

  try {
    while (!signal.aborted) {
      const item = stream.take();
      if (item === undefined) {
        // Nothing queued: a gathering log transaction commits now rather than wait.
        if (log.isOpen && !decoder.inTransaction) await log.commit();
        if (idle()) hooks.onConfirmed(slot.recorded, true);
        await stream.wait();
      } else if (item.kind === 'keepalive') {
        // Everything before this keepalive's WAL position has been received; with nothing in
        // flight it is all in the log, so the slot may move there (an idle source then pins no WAL).
        slot.passed(item.lsn);
        if (item.reply) slot.reply();
      } else {
        const waiting = decoder.handle(item.message);
        if (waiting !== undefined) await waiting;
      }
    }
  } catch (error) {
    windows.abort(error);
    throw error;
  } finally {
    windows.abort(new Error('replication stream closed'));
    log.abandon();
    slot.stop();
    await stream.close();
    logger.debug('replication stream closed', { confirmed: slot.confirmed });
  }
}
