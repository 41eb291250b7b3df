import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { escapeCopyText } from '../../db/index.js';
import { formatPosition } from './position.js';
import { translateStreamOrder } from './streamOrder.js';
import type { AppendResult, EventInput } from './types.js';
import { type LimitOptions, type PreparedEvent, prepareEvents, validateStreamId } from './validation.js';

const LOCK_SQL = `insert into tributary.streams as s (stream_id, version) values ($1, 0)
  on conflict (stream_id) do update set updated_at = now()
  returning s.version::text as version, now() as now`;

const COPY_SQL =
  'copy tributary.events (stream_id, stream_position, event_id, event_id_given, type, data, metadata, event_time) from stdin';

const FINISH_SQL = `update tributary.streams set version = $2, updated_at = now() where stream_id = $1
  returning pg_current_xact_id()::text as xid,
            currval(pg_get_serial_sequence('tributary.events', 'global_position'))::text as gp`;

/**
 * Events streamed into one stream through a single COPY, inside the caller's transaction.
 * Rows reach PostgreSQL as they are written, so the server inserts while the producer
 * prepares the next ones, and PostgreSQL writes them a page at a time, not a row at a time.
 */
export interface StreamCopy {
  /** Sends events; the promise waits only while the connection is saturated (backpressure). */
  write(events: readonly PreparedEvent[]): Promise<void>;
  /** Events written so far. */
  readonly count: number;
  /**
   * Ends the COPY and records the stream's new version. The caller then commits (or rolls
   * back) its transaction. Null when nothing was written.
   */
  finish(): Promise<AppendResult | null>;
}

/**
 * Opens a COPY into `streamId` for a writer that appends many events at a time and never
 * repeats an event id (CDC: its checkpoint skips what is already in the log).
 *
 * `client` must be inside a transaction and is busy with the COPY until `finish`. The stream
 * row is locked first (created if missing), so appends to the same stream wait for the
 * transaction, and versions follow on from the stream's. There is no expected-version check
 * and no idempotency probe. Ids the caller gave (`idGiven`) are indexed like any append's, so
 * repeating one of those fails the transaction; other ids (generated, or derived like CDC's)
 * are not indexed for idempotence. Events without an event time get the transaction's time,
 * as with `appendToStream`.
 */
export async function openStreamCopy(client: pg.ClientBase, streamId: string): Promise<StreamCopy> {
  const locked = await client.query<{ version: string; now: Date }>(LOCK_SQL, [streamId]);
  const base = Number(locked.rows[0]!.version);
  const now = locked.rows[0]!.now.toISOString();
  const stream = escapeCopyText(streamId);
  let count = 0;
  let copy: ReturnType<typeof copyFrom> | null = null;
  let failure: Error | undefined;

  const started = () => {
    if (copy === null) {
      copy = client.query(copyFrom(COPY_SQL));
      copy.on('error', (error: Error) => {
        failure ??= error;
      });
    }
    return copy;
  };
  const settled = (stream: NonNullable<typeof copy>, event: 'drain' | 'finish') =>
    new Promise<void>((resolve, reject) => {
      const onDone = () => {
        stream.off('error', onError);
        resolve();
      };
      const onError = (error: Error) => {
        stream.off(event, onDone);
        reject(error);
      };
      stream.once(event, onDone);
      stream.once('error', onError);
    });

  return {
    get count() {
      return count;
    },
    async write(events) {
      if (failure !== undefined) throw failure;
      if (events.length === 0) return;
      let text = '';
      // Captured changes share their transaction's time: format each distinct time once.
      let lastTime: Date | null = null;
      let at = now;
      for (let i = 0; i < events.length; i++) {
        const e = events[i]!;
        if (e.eventTime !== lastTime) {
          lastTime = e.eventTime;
          at = lastTime === null ? now : lastTime.toISOString();
        }
        count++;
        text += `${stream}\t${base + count}\t${escapeCopyText(e.id)}\t${e.idGiven ? 't' : 'f'}\t${escapeCopyText(e.type)}\t${escapeCopyText(e.data)}\t${escapeCopyText(e.metadata)}\t${at}\n`;
      }
      const target = started();
      if (!target.write(text)) await settled(target, 'drain');
    },
    async finish() {
      if (failure !== undefined) throw failure;
      if (copy === null) return null;
      const target: NonNullable<typeof copy> = copy;
      const done = settled(target, 'finish');
      target.end();
      await done;
      const last = await client
        .query<{ xid: string; gp: string }>(FINISH_SQL, [streamId, base + count])
        .catch((error: unknown) => {
          throw translateStreamOrder(error);
        });
      return {
        nextExpectedVersion: base + count,
        position: formatPosition(last.rows[0]!.xid, last.rows[0]!.gp),
        appended: true,
      };
    },
  };
}

/**
 * Appends events to one stream through COPY, in the caller's transaction: `openStreamCopy`
 * for one batch (same guarantees: no expected-version check, no idempotency probe).
 */
export async function copyToStream(
  client: pg.ClientBase,
  streamId: string,
  events: readonly EventInput[],
  limits: LimitOptions = {},
): Promise<AppendResult> {
  validateStreamId(streamId);
  const prepared = prepareEvents(events, limits);
  const copy = await openStreamCopy(client, streamId);
  await copy.write(prepared);
  return (await copy.finish())!;
}
