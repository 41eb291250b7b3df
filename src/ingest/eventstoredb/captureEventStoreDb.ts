import type { Pool } from '../../db/index.js';
import { isTributaryError, type TributaryError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import { sleep } from '../../sleep.js';
import { appendToStreams, createWakeUp, type StreamEvent } from '../log/index.js';
import {
  advanceEsdbCheckpoint,
  type EsdbCheckpoint,
  readEsdbCheckpoint,
  writeEsdbProgress,
} from './checkpoints.js';
import { createClientFeed } from './clientFeed.js';
import { EsdbCheckpointError, EventStoreDbSourceError } from './errors.js';
import { compareEsdbPositions, type EsdbFeed, type EsdbRecordedEvent } from './feed.js';
import { mapEvent, rejectedStream, serverFilter } from './mapEvent.js';
import type { EsdbPosition, EventStoreDbCaptureState, EventStoreDbSettings } from './types.js';

/** What the running capture knows about one EventStoreDB source. */
export interface LiveEventStoreDbStatus {
  source: string;
  server: string;
  state: EventStoreDbCaptureState;
  position: EsdbPosition | null;
  events: number;
  caughtUpAt: Date | null;
  lastError: string | null;
  lastErrorAt: Date | null;
}

export interface EventStoreDbRunOptions {
  source: EventStoreDbSettings;
  pool: Pool;
  logger: Logger;
  signal: AbortSignal;
  live: LiveEventStoreDbStatus;
  /** Called once when the source stops on an error that retrying cannot fix. */
  fail: (error: TributaryError) => void;
  /** @default a feed over @eventstore/db-client */
  feed?: (source: EventStoreDbSettings) => EsdbFeed;
  /** @default 2000 */
  reportIntervalMs?: number;
}

const LOCK_CLASS = 0x54524945;
/** A subscription with nothing for this long is live (servers before 23.10 do not say so). */
const IDLE_MS = 1000;

/**
 * Captures one EventStoreDB source into the log until `signal` aborts: subscribes to `$all`
 * after the checkpoint, maps each event, and appends each batch together with the new
 * checkpoint (the `$all` position of its last event) in one PostgreSQL transaction, so a crash
 * at any point leaves each event in the log exactly once. Reconnects with backoff; stops (and
 * calls `fail`) when the server does not know the checkpoint or refuses the source.
 */
export async function runEventStoreDbSource(options: EventStoreDbRunOptions): Promise<void> {
  const { source, pool, logger, signal, live } = options;
  const report = async (withError = false) => {
    await writeEsdbProgress(pool, source.name, {
      state: live.state,
      server: source.server,
      caughtUpAt: live.caughtUpAt,
      ...(withError ? { lastError: live.lastError } : {}),
    }).catch((error: unknown) => logger.debug('could not record capture progress', { error }));
  };
  const reporter = setInterval(() => void report(), options.reportIntervalMs ?? 2000);
  let attempt = 0;
  try {
    while (!signal.aborted) {
      try {
        await captureOnce(
          options,
          () => {
            attempt = 0;
          },
          () => void report(),
        );
      } catch (error) {
        if (signal.aborted) break;
        const permanent = asPermanent(error, source.name);
        live.lastError = isTributaryError(permanent ?? error)
          ? (permanent ?? (error as TributaryError)).describe()
          : String((error as Error)?.message ?? error);
        live.lastErrorAt = new Date();
        if (permanent !== undefined) {
          live.state = 'failed';
          logger.error('CAPTURE STOPPED', {
            code: permanent.code,
            message: permanent.message,
            hint: permanent.hint,
          });
          clearInterval(reporter);
          await report(true);
          options.fail(permanent);
          return;
        }
        const delay = Math.min(30_000, 500 * 2 ** Math.min(attempt, 6));
        attempt++;
        if (error instanceof StandingBy) {
          live.state = 'standing by';
          logger.warn('another process captures this source; standing by', { retryInMs: delay });
        } else {
          live.state = 'reconnecting';
          logger.error('capture failed; retrying', { message: live.lastError, retryInMs: delay });
        }
        await report(true);
        await sleep(error instanceof StandingBy ? 2000 : delay, signal);
      }
    }
  } finally {
    clearInterval(reporter);
  }
  live.state = 'stopped';
  await report();
}

class StandingBy extends Error {}

function asPermanent(error: unknown, source: string): TributaryError | undefined {
  if (error instanceof EsdbCheckpointError || error instanceof EventStoreDbSourceError) return error;
  const type = (error as { type?: unknown })?.type;
  if (type === 'access-denied') {
    return new EventStoreDbSourceError(source, `the server denied access: ${(error as Error).message}`, {
      hint: `Check the credentials in sources.${source}.url: the user must be allowed to read $all (an admin, or an ACL on $all).`,
      cause: error,
    });
  }
  if (type === 'invalid-argument') {
    return new EventStoreDbSourceError(
      source,
      `the server refused the subscription: ${(error as Error).message}`,
      {
        hint: `Check sources.${source}.filter (a regular expression the server cannot use?).`,
        cause: error,
      },
    );
  }
  return undefined;
}

async function captureOnce(
  options: EventStoreDbRunOptions,
  onProgress: () => void,
  onState: () => void,
): Promise<void> {
  const { source, pool, logger, signal, live } = options;
  // One process captures a source at a time: a session lock on the log database, held on a
  // connection of its own for as long as this capture runs.
  const lock = await pool.connect();
  const { rows } = await lock.query<{ locked: boolean }>(
    'select pg_try_advisory_lock($1, hashtext($2)) as locked',
    [LOCK_CLASS, source.name],
  );
  if (!rows[0]?.locked) {
    lock.release();
    throw new StandingBy();
  }
  const feed = (options.feed ?? ((s) => createClientFeed(s.url)))(source);
  const wakeSubscribers = createWakeUp(pool, logger);
  try {
    live.state = 'starting';
    let checkpoint = await readEsdbCheckpoint(pool, source.name);
    if (checkpoint !== undefined) await checkServerKnows(feed, source, checkpoint, logger);
    else if (source.from === 'end') checkpoint = await startAtEnd(feed, source, pool);
    live.position = checkpoint?.position ?? null;
    live.events = checkpoint?.events ?? 0;
    const subscription = feed.subscribe(checkpoint?.position ?? 'start', serverFilter(source));
    live.state = 'catching up';
    onState();
    logger.info('subscribed to $all', {
      server: source.server,
      from: checkpoint === undefined ? 'start' : positionText(checkpoint.position),
    });
    try {
      let idleSince = Date.now();
      while (!signal.aborted) {
        const first = await subscription.next(200);
        if (first === null) {
          if (subscription.caughtUp || Date.now() - idleSince >= IDLE_MS) {
            live.caughtUpAt = new Date();
            if (live.state !== 'live') {
              live.state = 'live';
              logger.info('caught up; following $all live', {});
              onState();
            }
          }
          continue;
        }
        const batch: EsdbRecordedEvent[] = [first];
        while (batch.length < source.batchSize) {
          const next = await subscription.next(0);
          if (next === null) break;
          batch.push(next);
        }
        checkpoint = await commitBatch(pool, source, checkpoint, batch, logger);
        wakeSubscribers();
        live.position = checkpoint.position;
        live.events = checkpoint.events;
        idleSince = Date.now();
        if (live.state === 'live') live.caughtUpAt = new Date();
        onProgress();
      }
    } finally {
      await subscription.close();
    }
  } finally {
    await feed.close();
    await lock
      .query('select pg_advisory_unlock($1, hashtext($2))', [LOCK_CLASS, source.name])
      .catch(() => {});
    lock.release();
  }
}

/**
 * The server must still hold the checkpoint's position: its `$all` reaches it, and the event
 * there (when still there) is the one captured last. Anything else means the server's history
 * is not the one this log followed.
 */
async function checkServerKnows(
  feed: EsdbFeed,
  source: EventStoreDbSettings,
  checkpoint: EsdbCheckpoint,
  logger: Logger,
): Promise<void> {
  const head = await feed.head();
  if (head === null || compareEsdbPositions(head, checkpoint.position) < 0) {
    throw new EsdbCheckpointError(
      source.name,
      `the server's $all ends ${head === null ? 'before any event (it is empty)' : `at ${positionText(head)}`}, before this log's checkpoint ${positionText(checkpoint.position)}: it was wiped, restored from an older backup, or is another server`,
    );
  }
  if (checkpoint.lastEventId === null) return;
  const at = await feed.eventAt(checkpoint.position);
  if (at !== undefined && compareEsdbPositions(at.position, checkpoint.position) === 0) {
    if (at.id !== checkpoint.lastEventId) {
      throw new EsdbCheckpointError(
        source.name,
        `the server holds event ${at.id} (stream '${at.streamId}') at this log's checkpoint ${positionText(checkpoint.position)}, where this log read event ${checkpoint.lastEventId}: it is another server, or its history was replaced`,
      );
    }
    return;
  }
  // Scavenged after deletion, say: the position still orders $all, so reading after it is right.
  logger.info('the last event captured is no longer on the server; resuming after its position', {
    position: positionText(checkpoint.position),
    eventId: checkpoint.lastEventId,
  });
}

/** A new source that starts at the end of $all: the current end is recorded first, so nothing after it is missed. */
async function startAtEnd(
  feed: EsdbFeed,
  source: EventStoreDbSettings,
  pool: Pool,
): Promise<EsdbCheckpoint | undefined> {
  const head = await feed.head();
  if (head === null) return undefined;
  const last = await feed.eventAt(head);
  const to = { position: head, lastEventId: last?.id ?? null, events: 0, lastEventTime: null };
  await advanceEsdbCheckpoint(pool, source.name, undefined, to);
  return { source: source.name, ...to };
}

async function commitBatch(
  pool: Pool,
  source: EventStoreDbSettings,
  checkpoint: EsdbCheckpoint | undefined,
  batch: readonly EsdbRecordedEvent[],
  logger: Logger,
): Promise<EsdbCheckpoint> {
  const mapped = batch.map((event) => ({ event, mapped: mapEvent(source, event) }));
  const last = batch[batch.length - 1]!;
  const next: EsdbCheckpoint = {
    source: source.name,
    position: last.position,
    lastEventId: last.id,
    events: (checkpoint?.events ?? 0) + batch.length,
    lastEventTime: last.created,
  };
  const client = await pool.connect();
  try {
    await client.query('begin');
    const ifKnown = mapped.flatMap(({ mapped: m }) =>
      m.kind === 'marker' && m.ifKnown ? [m.event.streamId] : [],
    );
    const known = new Set<string>();
    if (ifKnown.length > 0) {
      const { rows } = await client.query<{ stream_id: string }>(
        'select stream_id from tributary.streams where stream_id = any ($1::text[])',
        [ifKnown],
      );
      for (const row of rows) known.add(row.stream_id);
    }
    const events: StreamEvent[] = [];
    for (const { event, mapped: m } of mapped) {
      if (m.kind === 'skip') continue;
      if (m.kind === 'marker' && m.ifKnown && !known.has(m.event.streamId)) continue;
      if (m.kind === 'rejected') {
        logger.warn('an event cannot be stored in the log as it is: kept in the rejected stream', {
          stream: event.streamId,
          eventId: event.id,
          reason: m.reason,
          rejectedStream: rejectedStream(source),
        });
      }
      events.push(m.event);
    }
    await appendToStreams(client, events);
    await advanceEsdbCheckpoint(client, source.name, checkpoint?.position, {
      position: next.position,
      lastEventId: next.lastEventId,
      events: batch.length,
      lastEventTime: next.lastEventTime,
    });
    await client.query('commit');
    client.release();
    return next;
  } catch (error) {
    client.release(true);
    throw error;
  }
}

export const positionText = (position: EsdbPosition) => `C:${position.commit}/P:${position.prepare}`;
