import type pg from 'pg';
import { LogicalReplicationService } from 'pg-logical-replication';
import { type Lsn, lsnToBigInt } from './lsn.js';
import { type PgoutputMessage, PgoutputTextPlugin } from './pgoutputDecoder.js';
import { SOURCE_SESSION_OPTIONS } from './sourceSetup.js';
import type { ResolvedSource } from './types.js';

/** What the replication connection delivers, in WAL order. */
export type ReplicationItem =
  | { kind: 'data'; message: PgoutputMessage; bytes: number }
  | { kind: 'keepalive'; lsn: Lsn; reply: boolean };

export interface ReplicationStream {
  /** The next item, or undefined when none is queued; throws once the connection has failed. */
  take(): ReplicationItem | undefined;
  /** Resolves when an item is queued, the connection fails or the signal aborts. */
  wait(): Promise<void>;
  /** Items queued and not yet taken. */
  queued(): number;
  /** Ends the stream with this error: the next `take` throws it. */
  fail(error: unknown): void;
  /**
   * Sends a standby status update saying `lsn` is written, flushed and applied. False when the
   * server has not entered the replication stream yet (status updates are only valid after).
   */
  sendStatus(lsn: Lsn, now: number): boolean;
  /** Stops the replication connection, waiting until it has ended. */
  close(): Promise<void>;
}

interface Internals {
  _connection: { stream: { pause(): void; resume(): void }; sendCopyFromChunk(buffer: Buffer): void } | null;
}

/**
 * Opens the slot's replication stream from `resumeFrom` and queues what it delivers.
 *
 * The queue keeps the source streaming while a log transaction commits, and holds memory
 * bounded: past `queueBytes` of decoded messages the replication socket is paused, and it
 * resumes once the queue has drained to half. The library's own status timer and
 * auto-acknowledgement are off (its timer would confirm what was merely received): status
 * updates are sent through `sendStatus` only.
 */
export function openReplicationStream(options: {
  source: ResolvedSource;
  resumeFrom: Lsn;
  /** Ask for logical decoding messages (PostgreSQL 14 and later). */
  messages: boolean;
  queueBytes: number;
  signal: AbortSignal;
}): ReplicationStream {
  const { source, queueBytes, signal } = options;
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
  let queue: ReplicationItem[] = [];
  let head = 0;
  let paused = false;
  let wake: (() => void) | undefined;
  let failure: unknown;
  let queuedBytes = 0;
  const queued = () => queue.length - head;
  const push = (item: ReplicationItem) => {
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

  const subscription = service.subscribe(plugin, source.slot, options.resumeFrom);
  subscription.then(
    () => fail(new Error('replication stream ended')),
    (error: unknown) => fail(error),
  );

  return {
    take() {
      if (failure !== undefined) throw failure;
      if (queued() === 0) return undefined;
      const item = queue[head]!;
      queue[head++] = undefined as unknown as ReplicationItem;
      if (head > 4096 && head * 2 > queue.length) {
        queue = queue.slice(head);
        head = 0;
      }
      if (item.kind === 'data') queuedBytes -= item.bytes;
      if (paused && queuedBytes < queueBytes / 2) {
        paused = false;
        internals._connection?.stream.resume();
      }
      return item;
    },
    async wait() {
      await new Promise<void>((resolve) => {
        wake = resolve;
        if (queued() > 0 || failure !== undefined || signal.aborted) resolve();
      });
      wake = undefined;
    },
    queued,
    fail,
    sendStatus(lsn, now) {
      const connection = internals._connection;
      if (connection === null || !started) return false;
      const value = lsnToBigInt(lsn);
      const message = Buffer.alloc(34);
      message.write('r', 0);
      message.writeBigUInt64BE(value, 1); // written
      message.writeBigUInt64BE(value, 9); // flushed
      message.writeBigUInt64BE(value, 17); // applied
      message.writeBigUInt64BE(BigInt(now - 946_684_800_000) * 1000n, 25);
      message.writeUInt8(0, 33);
      connection.sendCopyFromChunk(message);
      return true;
    },
    async close() {
      signal.removeEventListener('abort', onAbort);
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
    },
  };
}
