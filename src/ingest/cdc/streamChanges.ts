import type pg from 'pg';
import { LogicalReplicationService } from 'pg-logical-replication';
import type { Pool, PoolClient } from '../../db/index.js';
import type { Logger } from '../../logger.js';
import { appendToStream, EVENTS_CHANNEL, type EventInput } from '../log/index.js';
import {
  changeToEvents,
  type Relation,
  type SourceTransaction,
  type TypeResolver,
  toRelation,
} from './changeEvents.js';
import { advanceCheckpoint, type Checkpoint } from './checkpoints.js';
import { compareLsn, type Lsn, lsnToBigInt } from './lsn.js';
import { type PgoutputMessage, PgoutputTextPlugin } from './pgoutputDecoder.js';
import { SOURCE_SESSION_OPTIONS } from './sourceSetup.js';
import type { ResolvedSource } from './types.js';

/** Tuning of the streaming loop; the defaults suit most sources. */
export interface StreamTuning {
  /** Events appended to the log per statement. @default 2000 */
  chunkSize?: number;
  /** Most events one log transaction gathers from several small source transactions. @default 5000 */
  groupEvents?: number;
  /** Longest a log transaction stays open to gather more source transactions. @default 25 */
  groupMs?: number;
  /** Messages queued before the replication socket is paused. @default 2000 */
  queueHigh?: number;
}

export interface StreamHooks {
  /** Called after each log commit and each confirmed keepalive. */
  onConfirmed(lsn: Lsn, caughtUp: boolean): void;
  onCheckpoint(checkpoint: { commitLsn: Lsn; endLsn: Lsn; commitTime: Date; transactions: number }): void;
}

type Item = { kind: 'data'; message: PgoutputMessage } | { kind: 'keepalive'; lsn: Lsn; reply: boolean };

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
  logger: Logger;
  signal: AbortSignal;
  hooks: StreamHooks;
  tuning?: StreamTuning;
}): Promise<void> {
  const { source, pool, resolveTypes, keyColumns, logger, signal, hooks } = options;
  const chunkSize = options.tuning?.chunkSize ?? 2000;
  const groupEvents = options.tuning?.groupEvents ?? 5000;
  const groupMs = options.tuning?.groupMs ?? 25;
  const queueHigh = options.tuning?.queueHigh ?? 2000;

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
  const queued = () => queue.length - head;
  const push = (item: Item) => {
    queue.push(item);
    if (!paused && queued() >= queueHigh) {
      paused = true;
      internals._connection?.stream.pause();
    }
    wake?.();
  };
  const fail = (error: unknown) => {
    failure ??= error;
    wake?.();
  };

  service.on('data', (_lsn: string, message: PgoutputMessage) => push({ kind: 'data', message }));
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

  // What the slot has been told, and what it may be told next.
  let confirmed: Lsn = resumeFrom;
  let confirmable: Lsn = resumeFrom;
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
  const statusTimer = setInterval(() => {
    try {
      sendStatus(confirmable);
    } catch (error) {
      fail(error);
    }
  }, 100);

  const subscription = service.subscribe(
    new PgoutputTextPlugin({ publication: source.publication }),
    source.slot,
    resumeFrom,
  );
  subscription.then(
    () => fail(new Error('replication stream ended')),
    (error: unknown) => fail(error),
  );

  const relations = new Map<number, Relation>();
  let txn: (SourceTransaction & { skip: boolean }) | null = null;
  let log: { client: PoolClient; openedAt: number; events: number; transactions: number } | null = null;
  let pending: EventInput[] = [];
  let lastCommit: { commitLsn: Lsn; endLsn: Lsn; commitTime: Date } | null = null;

  const openLog = async () => {
    if (log !== null) return log;
    const client = await pool.connect();
    try {
      await client.query('begin');
    } catch (error) {
      client.release(error as Error);
      throw error;
    }
    log = { client, openedAt: Date.now(), events: 0, transactions: 0 };
    return log;
  };
  // One append may run in the database while the next chunk is decoded: a big transaction
  // then costs about the slower of the two, not their sum. Never more than one, so memory
  // stays at two chunks.
  let inflight: Promise<void> | null = null;
  const settle = async () => {
    const running = inflight;
    inflight = null;
    if (running !== null) await running;
  };
  const flush = async () => {
    if (pending.length === 0) return;
    const open = await openLog();
    const events = pending;
    pending = [];
    await settle();
    // Event ids are `<commit LSN>-<ordinal>` and the checkpoint skips committed transactions, so
    // no id repeats: the idempotency probe is skipped (the unique index still refuses a repeat).
    const append = appendToStream(open.client, source.streamId, events, {}, {}, false, true).then(() => {
      open.events += events.length;
    });
    append.catch(() => {}); // surfaced by the next settle()
    inflight = append;
  };
  const commitLog = async () => {
    await flush();
    await settle();
    const open = log;
    if (open === null || lastCommit === null) return;
    await advanceCheckpoint(open.client, source.name, lastCommit, open.transactions);
    await open.client.query('commit');
    open.client.release();
    log = null;
    lastCommitLsn = lastCommit.commitLsn;
    hooks.onCheckpoint({ ...lastCommit, transactions: open.transactions });
    wakeSubscribers();
    confirmable = lastCommit.endLsn;
    sendStatus(confirmable, true);
  };
  // Subscribers are woken after the commit, on another connection: a notification sent
  // inside the transaction would serialize every notifying commit of the database.
  // At most one in flight; commits meanwhile are covered by one more afterwards.
  let notifying = false;
  let notifyAgain = false;
  const wakeSubscribers = () => {
    if (notifying) {
      notifyAgain = true;
      return;
    }
    notifying = true;
    void pool
      .query('select pg_notify($1, $2)', [EVENTS_CHANNEL, ''])
      .catch((error: unknown) => logger.debug('could not notify subscribers', { error }))
      .finally(() => {
        notifying = false;
        if (notifyAgain) {
          notifyAgain = false;
          wakeSubscribers();
        }
      });
  };
  const idle = () => txn === null && log === null;

  const handle = async (item: Item) => {
    if (item.kind === 'keepalive') {
      // Everything before this keepalive's WAL position has been received; with nothing in
      // flight it is all in the log, so the slot may move there (an idle source then pins no WAL).
      if (idle() && compareLsn(item.lsn, confirmable) > 0) confirmable = item.lsn;
      if (item.reply) sendStatus(confirmable, true);
      return;
    }
    const message = item.message;
    logger.debug('message', {
      tag: message.tag,
      ...(message.tag === 'begin' ? { finalLsn: message.finalLsn } : {}),
    });
    switch (message.tag) {
      case 'begin':
        txn = {
          source: source.name,
          finalLsn: message.finalLsn,
          commitTime: message.commitTime,
          xid: message.xid,
          ordinal: 0,
          skip: isApplied(message.finalLsn),
        };
        return;
      case 'relation':
        relations.set(message.relationOid, await toRelation(message, resolveTypes, keyColumns));
        return;
      case 'insert':
      case 'update':
      case 'delete':
      case 'truncate': {
        if (txn === null) throw new Error(`${message.tag} outside a transaction`);
        if (txn.skip) return;
        for (const event of changeToEvents(txn, message, relations)) pending.push(event);
        if (pending.length >= chunkSize) await flush();
        return;
      }
      case 'commit': {
        const current = txn;
        txn = null;
        if (current === null || current.skip || current.ordinal === 0) {
          // Already in the log, or nothing captured: the slot may pass it once nothing is in flight.
          if (log === null && compareLsn(message.endLsn, confirmable) > 0) confirmable = message.endLsn;
          return;
        }
        lastCommit = { commitLsn: message.commitLsn, endLsn: message.endLsn, commitTime: message.commitTime };
        await openLog();
        log!.transactions++;
        const gathered = log!.events + pending.length;
        const more = queued() > 0 && gathered < groupEvents && Date.now() - log!.openedAt < groupMs;
        if (!more) await commitLog();
        return;
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
        if (idle()) hooks.onConfirmed(confirmable, true);
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
      if (paused && queued() < queueHigh / 2) {
        paused = false;
        internals._connection?.stream.resume();
      }
      await handle(item);
    }
  } finally {
    clearInterval(statusTimer);
    signal.removeEventListener('abort', onAbort);
    await settle().catch(() => {});
    const open = log as { client: PoolClient } | null;
    if (open !== null) {
      // A connection that cannot even roll back is broken: keep it out of the pool.
      const broken = await open.client.query('rollback').then(
        () => false,
        () => true,
      );
      open.client.release(broken);
    }
    try {
      sendStatus(confirmable);
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
