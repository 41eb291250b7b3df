import type pg from 'pg';
import { LogicalReplicationService } from 'pg-logical-replication';
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
import {
  changeToEvents,
  openTransaction,
  type Relation,
  type SourceTransaction,
  type TypeResolver,
  toRelation,
} from './changeEvents.js';
import { advanceCheckpoint, type Checkpoint, recordConfirmable } from './checkpoints.js';
import { recordChunk } from './incrementalSnapshots.js';
import { compareLsn, type Lsn, lsnToBigInt } from './lsn.js';
import { outboxEvent, outboxMapping } from './outboxEvents.js';
import { type PgoutputMessage, PgoutputTextPlugin, type Tuple } from './pgoutputDecoder.js';
import {
  type ChunkOutput,
  parseWatermark,
  type SnapshotWindows,
  tupleKey,
  WATERMARK_PREFIX,
} from './snapshotWindows.js';
import { SOURCE_SESSION_OPTIONS } from './sourceSetup.js';
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
  onCheckpoint(checkpoint: {
    commitLsn: Lsn;
    endLsn: Lsn;
    commitTime: Date;
    transactions: number;
    /** Events the log transaction wrote. */
    events: number;
    /** When the log transaction began (ms since the epoch). */
    openedAt: number;
    /** From its last change written to its COMMIT, checkpoint included. */
    commitSeconds: number;
  }): void;
}

type Item =
  | { kind: 'data'; message: PgoutputMessage; bytes: number }
  | { kind: 'keepalive'; lsn: Lsn; reply: boolean };

interface Internals {
  _connection: { stream: { pause(): void; resume(): void }; sendCopyFromChunk(buffer: Buffer): void } | null;
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
  const { source, pool, resolveTypes, keyColumns, outboxes, windows, logger, signal, hooks } = options;
  const signalTable = `${source.signalTable.schema}.${source.signalTable.table}`;
  const chunkSize = options.tuning?.chunkSize ?? 500;
  const groupEvents = options.tuning?.groupEvents ?? 20000;
  const groupMs = options.tuning?.groupMs ?? 100;
  const queueBytes = options.tuning?.queueBytes ?? 8 * 1024 * 1024;

  let lastCommitLsn = options.checkpoint.commitLsn;
  const startLsn = options.checkpoint.startLsn;
  const resumeFrom = options.checkpoint.endLsn ?? startLsn;
  const isApplied = (finalLsn: Lsn) =>
    compareLsn(finalLsn, startLsn) < 0 ||
    (lastCommitLsn !== null && compareLsn(finalLsn, lastCommitLsn) <= 0);

  const service = new LogicalReplicationService(
    {
      connectionString: source.url,
      application_name: 'tributary-cdc',
      options: SOURCE_SESSION_OPTIONS,
    } as pg.ClientConfig,
    { acknowledge: { auto: false, timeoutSeconds: 0 }, flowControl: { enabled: false } },
  );
  const internals = service as unknown as Internals;

  // A queue with a moving head, so shifting stays O(1).
  let queue: Item[] = [];
  let head = 0;
  let paused = false;
  let wake: (() => void) | undefined;
  let failure: unknown;
  let queuedBytes = 0;
  const queued = () => queue.length - head;
  const push = (item: Item) => {
    queue.push(item);
    if (item.kind === 'data') queuedBytes += item.bytes;
    if (!paused && queuedBytes >= queueBytes) {
      paused = true;
      internals._connection?.stream.pause();
    }
    wake?.();
  };
  const fail = (error: unknown) => {
    failure ??= error;
    wake?.();
  };

  const plugin = new PgoutputTextPlugin({ publication: source.publication, messages: options.messages });
  // 'data' follows the plugin's parse of the same message synchronously: its size is the last parsed.
  service.on('data', (_lsn: string, message: PgoutputMessage) =>
    push({ kind: 'data', message, bytes: plugin.lastParsedBytes }),
  );
  service.on('heartbeat', (lsn: string, _time: number, reply: boolean) =>
    push({ kind: 'keepalive', lsn, reply }),
  );
  service.on('error', fail);
  let started = false;
  service.on('start', () => {
    started = true;
  });
  const onAbort = () => wake?.();
  signal.addEventListener('abort', onAbort);

  // What the slot has been told; what it may be told once the log records it (the position
  // after transactions that had nothing to capture, or of an idle keepalive); and what the
  // log has recorded. The slot is never told more than the log recorded, so a slot found
  // confirmed further on a later start was read by someone else.
  let confirmed: Lsn = resumeFrom;
  const known = options.checkpoint.confirmedLsn;
  let recorded: Lsn = known !== null && compareLsn(known, resumeFrom) > 0 ? known : resumeFrom;
  let confirmable: Lsn = recorded;
  let recording = false;
  let lastRecordAt = 0;
  let lastStatusAt = 0;
  const sendStatus = (lsn: Lsn, force = false) => {
    const connection = internals._connection;
    // Status updates are only valid once the server has entered the replication stream.
    if (connection === null || !started) return;
    const now = Date.now();
    if (!force && compareLsn(lsn, confirmed) <= 0 && now - lastStatusAt < 10_000) return;
    const value = lsnToBigInt(lsn);
    const message = Buffer.alloc(34);
    message.write('r', 0);
    message.writeBigUInt64BE(value, 1); // written
    message.writeBigUInt64BE(value, 9); // flushed
    message.writeBigUInt64BE(value, 17); // applied
    message.writeBigUInt64BE(BigInt(now - 946_684_800_000) * 1000n, 25);
    message.writeUInt8(0, 33);
    connection.sendCopyFromChunk(message);
    confirmed = lsn;
    lastStatusAt = now;
  };
  const record = (target: Lsn) => {
    recording = true;
    lastRecordAt = Date.now();
    recordConfirmable(pool, source.name, target).then(
      () => {
        recording = false;
        if (compareLsn(target, recorded) > 0) recorded = target;
      },
      (error: unknown) => {
        recording = false; // the log is unreachable: the next tick tries again
        logger.debug('could not record the confirmable position', { error });
      },
    );
  };
  const statusTimer = setInterval(() => {
    try {
      if (compareLsn(confirmable, recorded) > 0 && !recording && Date.now() - lastRecordAt >= 1000) {
        record(confirmable);
      }
      sendStatus(recorded);
    } catch (error) {
      fail(error);
    }
  }, 100);

  const subscription = service.subscribe(plugin, source.slot, resumeFrom);
  subscription.then(
    () => fail(new Error('replication stream ended')),
    (error: unknown) => fail(error),
  );

  const relations = new Map<number, Relation>();
  let txn: (SourceTransaction & { skip: boolean; output: boolean }) | null = null;
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
  // Events decoded but not yet sent. Row changes of a source without an outbox stream into one
  // COPY into the source's stream (`pending`). With an outbox, row changes and outbox events
  // (which name streams of their own) go together, in source order, through multi-stream
  // appends (`pendingMixed`).
  const mixed = outboxes.size > 0;
  let pending: PreparedEvent[] = [];
  let pendingMixed: StreamEvent[] = [];
  let lastCommit: { commitLsn: Lsn; endLsn: Lsn; commitTime: Date } | null = null;

  const openLog = async () => {
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
  // Rows stream into one COPY per log transaction as they are decoded, so PostgreSQL inserts
  // while the next ones are decoded; a write waits only when the connection is saturated,
  // which (with the paused replication socket) keeps memory bounded for huge transactions.
  const flushRows = async () => {
    if (pending.length === 0) return;
    const open = await openLog();
    open.copy ??= await openStreamCopy(open.client, source.streamId);
    const events = pending;
    pending = [];
    open.events += events.length;
    await open.copy.write(events);
  };
  const flushMixed = async () => {
    if (pendingMixed.length === 0) return;
    const open = await openLog();
    const events = pendingMixed;
    pendingMixed = [];
    open.events += events.length;
    await appendToStreams(open.client, events);
  };
  const flush = () => (mixed ? flushMixed() : flushRows());
  const addRows = (events: readonly PreparedEvent[]): Promise<void> | undefined => {
    if (mixed) {
      for (const event of events) pendingMixed.push({ ...event, streamId: source.streamId });
      return pendingMixed.length >= chunkSize ? flushMixed() : undefined;
    }
    for (const event of events) pending.push(event);
    return pending.length >= chunkSize ? flushRows() : undefined;
  };
  const addOutbox = (event: StreamEvent): Promise<void> | undefined => {
    pendingMixed.push(event);
    return pendingMixed.length >= chunkSize ? flushMixed() : undefined;
  };
  const commitLog = async () => {
    await flush();
    const open = log;
    if (open === null || lastCommit === null) return;
    const committing = performance.now();
    if (open.copy !== null) await open.copy.finish();
    await advanceCheckpoint(open.client, source.name, lastCommit, open.transactions);
    for (const chunk of open.chunks) await recordChunk(open.client, chunk);
    await open.client.query('commit');
    const commitSeconds = (performance.now() - committing) / 1000;
    open.client.release();
    log = null;
    lastCommitLsn = lastCommit.commitLsn;
    hooks.onCheckpoint({
      ...lastCommit,
      transactions: open.transactions,
      events: open.events,
      openedAt: open.openedAt,
      commitSeconds,
    });
    if (open.chunks.length > 0) windows.committed(open.chunks);
    wakeSubscribers();
    confirmable = lastCommit.endLsn;
    if (compareLsn(confirmable, recorded) > 0) recorded = confirmable; // recorded with the checkpoint
    sendStatus(recorded, true);
  };
  // Subscribers are woken after the commit, on another connection: a notification sent
  // inside the transaction would serialize every notifying commit of the database.
  const wakeSubscribers = createWakeUp(pool, logger);
  const idle = () => txn === null && log === null;

  // A watermark of an incremental snapshot: at a high one, the chunk's rows go into the log here.
  const onWatermark = (content: string): Promise<void> | undefined => {
    if (txn === null || txn.skip) return undefined;
    const mark = parseWatermark(content, source.slot);
    if (mark === undefined) return undefined;
    const output = windows.watermark(mark, txn);
    if (output === undefined) return undefined;
    txn.output = true;
    return openLog().then((open) => {
      open.chunks.push(output);
      return addRows(output.events);
    });
  };
  const signalWatermark = (relation: Relation, tuple: Tuple) => {
    const value = (column: string) => tuple[relation.columns.findIndex((c) => c.name === column)];
    const kind = value('kind');
    const id = value('id');
    const slot = value('slot');
    if (typeof kind !== 'string' || typeof id !== 'string' || typeof slot !== 'string') return undefined;
    return onWatermark(JSON.stringify({ slot, id, kind }));
  };
  // Keys of snapshotted tables changing in the stream, for the windows of their chunks.
  const noteChange = (relation: Relation, message: PgoutputMessage) => {
    const table = `${relation.schema}.${relation.name}`;
    if (!windows.isTracked(table)) return;
    const keyOf = (tuple: Tuple | null) => (tuple === null ? null : tupleKey(tuple, relation.keyIndexes));
    let keys: Array<string | null>;
    if (message.tag === 'insert') keys = [keyOf(message.after)];
    else if (message.tag === 'update') {
      // The old key is sent when it changed (or with REPLICA IDENTITY FULL); a new key column
      // not sent (an unchanged TOASTed value) is the old one.
      const old = keyOf(message.key ?? message.old);
      keys = [keyOf(message.after) ?? old, old];
    } else if (message.tag === 'delete') keys = [keyOf(message.key ?? message.old)];
    else return;
    if (keys[0] === null) windows.change(table, txn!.xid, null);
    else
      windows.change(
        table,
        txn!.xid,
        keys.filter((key): key is string => key !== null),
      );
  };

  // Most messages are handled synchronously; only those that wait on the database return a promise.
  const handle = (item: Item): Promise<void> | undefined => {
    if (item.kind === 'keepalive') {
      // Everything before this keepalive's WAL position has been received; with nothing in
      // flight it is all in the log, so the slot may move there (an idle source then pins no WAL).
      if (idle() && compareLsn(item.lsn, confirmable) > 0) confirmable = item.lsn;
      if (item.reply) sendStatus(recorded, true);
      return;
    }
    const message = item.message;
    switch (message.tag) {
      case 'begin':
        txn = { ...openTransaction(source.name, message), skip: isApplied(message.finalLsn), output: false };
        windows.begin(message.xid);
        return;
      case 'relation':
        return toRelation(message, resolveTypes, keyColumns).then((relation) => {
          const name = `${message.schema}.${message.name}`;
          const outbox = outboxes.get(name);
          if (outbox !== undefined) relation.outbox = outboxMapping(relation, outbox);
          if (name === signalTable) relation.signal = true;
          relations.set(message.relationOid, relation);
        });
      case 'insert':
      case 'update':
      case 'delete':
      case 'truncate': {
        if (txn === null) throw new Error(`${message.tag} outside a transaction`);
        if (txn.skip) return;
        if (message.tag === 'insert') {
          const relation = relations.get(message.relationOid);
          if (relation?.outbox !== undefined) {
            const result = outboxEvent(txn, relation, relation.outbox, message.after);
            if ('rejected' in result) {
              logger.warn('an outbox row is not a valid event: appended as rejected', {
                table: `${relation.schema}.${relation.name}`,
                lsn: txn.finalLsn,
              });
              return addRows([result.rejected]);
            }
            return addOutbox(result.event);
          }
          if (relation?.signal === true) return signalWatermark(relation, message.after);
        }
        if (windows.active) {
          if (message.tag === 'truncate') {
            for (const oid of message.relationOids) {
              const relation = relations.get(oid);
              if (relation !== undefined) windows.truncate(`${relation.schema}.${relation.name}`);
            }
          } else {
            const relation = relations.get(message.relationOid);
            if (relation !== undefined) noteChange(relation, message);
          }
        }
        return addRows(changeToEvents(txn, message, relations));
      }
      case 'message':
        if (message.prefix !== WATERMARK_PREFIX) return;
        return onWatermark(message.content);
      case 'commit': {
        const current = txn;
        txn = null;
        windows.commit();
        if (current === null || current.skip || (current.ordinal === 0 && !current.output)) {
          // Already in the log, or nothing captured: the slot may pass it once nothing is in flight.
          if (log === null && compareLsn(message.endLsn, confirmable) > 0) confirmable = message.endLsn;
          return;
        }
        lastCommit = { commitLsn: message.commitLsn, endLsn: message.endLsn, commitTime: message.commitTime };
        return openLog().then((open) => {
          open.transactions++;
          const gathered = open.events + pending.length + pendingMixed.length;
          const more = queued() > 0 && gathered < groupEvents && Date.now() - open.openedAt < groupMs;
          if (!more) return commitLog();
        });
      }
      default:
        return;
    }
  };

  try {
    while (!signal.aborted) {
      if (failure !== undefined) throw failure;
      if (queued() === 0) {
        // Nothing queued: a gathering log transaction commits now rather than wait.
        if (log !== null && txn === null) await commitLog();
        if (idle()) hooks.onConfirmed(recorded, true);
        await new Promise<void>((resolve) => {
          wake = resolve;
          if (queued() > 0 || failure !== undefined || signal.aborted) resolve();
        });
        wake = undefined;
        continue;
      }
      const item = queue[head]!;
      queue[head++] = undefined as unknown as Item;
      if (head > 4096 && head * 2 > queue.length) {
        queue = queue.slice(head);
        head = 0;
      }
      if (item.kind === 'data') queuedBytes -= item.bytes;
      if (paused && queuedBytes < queueBytes / 2) {
        paused = false;
        internals._connection?.stream.resume();
      }
      const waiting = handle(item);
      if (waiting !== undefined) await waiting;
    }
  } catch (error) {
    windows.abort(error);
    throw error;
  } finally {
    windows.abort(new Error('replication stream closed'));
    clearInterval(statusTimer);
    signal.removeEventListener('abort', onAbort);
    const open = log as { client: PoolClient } | null;
    if (open !== null) {
      // The connection may be in the middle of a COPY: close it, and the server rolls the
      // log transaction back with it.
      open.client.release(true);
    }
    try {
      sendStatus(recorded);
    } catch {
      // the connection is already gone
    }
    // subscribe() may still be connecting when asked to stop: stop again until it has ended.
    let ended = false;
    const settled = subscription.then(
      () => {
        ended = true;
      },
      () => {
        ended = true;
      },
    );
    for (let attempt = 0; attempt < 100 && !ended; attempt++) {
      await service.stop().catch(() => {});
      await Promise.race([settled, new Promise((resolve) => setTimeout(resolve, 100))]);
    }
    service.removeAllListeners();
    logger.debug('replication stream closed', { confirmed });
  }
}
