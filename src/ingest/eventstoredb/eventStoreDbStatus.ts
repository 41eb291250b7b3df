import type { Queryable } from '../../db/index.js';
import type { CdcSourcesConfig } from '../cdc/types.js';
import { reportedState } from '../reportedState.js';
import { readEsdbCheckpoint } from './checkpoints.js';
import { createClientFeed } from './clientFeed.js';
import type { EsdbFeed } from './feed.js';
import { resolveEventStoreDbSources } from './resolveEventStoreDbSources.js';
import type {
  EsdbPosition,
  EventStoreDbCaptureState,
  EventStoreDbSettings,
  EventStoreDbSourceStatus,
} from './types.js';

const RUNNING: ReadonlySet<EventStoreDbCaptureState> = new Set([
  'starting',
  'catching up',
  'live',
  'reconnecting',
  'standing by',
]);
/** How long `status` waits for a server to answer. */
const SERVER_TIMEOUT_MS = 3000;

/**
 * The status of every configured EventStoreDB source, from the log's checkpoint, the running
 * capture's last report and the server's `$all` head.
 */
export async function eventStoreDbStatus(options: {
  sources: CdcSourcesConfig | undefined;
  db: Queryable;
  /** @default a feed over @eventstore/db-client */
  feed?: (source: EventStoreDbSettings) => EsdbFeed;
}): Promise<EventStoreDbSourceStatus[]> {
  return Promise.all(
    resolveEventStoreDbSources(options.sources).map(async (source): Promise<EventStoreDbSourceStatus> => {
      const checkpoint = await readEsdbCheckpoint(options.db, source.name);
      const { rows } = await options.db.query<{
        state: string;
        caught_up_at: Date | null;
        last_error: string | null;
        last_error_at: Date | null;
        updated_at: Date;
        age_ms: number;
      }>(
        `select state, caught_up_at, last_error, last_error_at, updated_at,
                (extract(epoch from now() - updated_at) * 1000)::float8 as age_ms
           from tributary.esdb_progress where source = $1`,
        [source.name],
      );
      const progress = rows[0];
      const state: EventStoreDbCaptureState = reportedState(progress, RUNNING);
      const running = RUNNING.has(state);
      const warnings: string[] = [];
      let head: EsdbPosition | null = null;
      try {
        head = await serverHead((options.feed ?? ((s) => createClientFeed(s.url)))(source));
      } catch (error) {
        warnings.push(`The server did not answer: ${(error as Error).message}`);
      }
      const lagBytes =
        head === null
          ? null
          : Number(head.commit - (checkpoint?.position.commit ?? 0n)) > 0
            ? Number(head.commit - (checkpoint?.position.commit ?? 0n))
            : 0;
      const caughtUp = running && progress?.state === 'live';
      const text = (p: EsdbPosition | null | undefined) =>
        p == null ? null : { commit: p.commit.toString(), prepare: p.prepare.toString() };
      return {
        kind: 'eventstoredb',
        source: source.name,
        server: source.server,
        state,
        running,
        position: text(checkpoint?.position),
        lastEventId: checkpoint?.lastEventId ?? null,
        events: checkpoint?.events ?? 0,
        head: text(head),
        lagBytes,
        lagSeconds: caughtUp
          ? 0
          : progress?.caught_up_at == null
            ? null
            : Math.max(0, (Date.now() - progress.caught_up_at.getTime()) / 1000),
        checkpointTime: checkpoint?.lastEventTime ?? null,
        lastError: progress?.last_error ?? null,
        lastErrorAt: progress?.last_error_at ?? null,
        updatedAt: progress?.updated_at ?? null,
        warnings,
      };
    }),
  );
}

async function serverHead(feed: EsdbFeed): Promise<EsdbPosition | null> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      feed.head(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no answer within ${SERVER_TIMEOUT_MS} ms`)),
          SERVER_TIMEOUT_MS,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
    await feed.close();
  }
}

/** Forgets an EventStoreDB source's checkpoint: the next run starts over (`from`), skipping ids already in the log. */
export async function forgetEventStoreDbSource(db: Queryable, source: string): Promise<void> {
  await db.query('delete from tributary.esdb_checkpoints where source = $1', [source]);
  await db.query('delete from tributary.esdb_progress where source = $1', [source]);
}
