import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { closePool, createPool, type Pool } from '../../db/index.js';
import { createNotifier, type Position } from '../../ingest/index.js';
import { type Logger, silentLogger } from '../../logger.js';
import { VIEW_CHANGES_CHANNEL } from '../changelog/index.js';
import { DEFAULT_VIEW_SCHEMA } from '../view.js';
import { createBackend } from './backends/index.js';
import { runSink, type SinkBuildProgress, type SinkWorkerStatus } from './runSink.js';
import type { ResolvedSink, SearchBackend } from './types.js';

export interface StartSinksOptions {
  /** Tributary's database (views, changelog, sink checkpoints). */
  url: string;
  sinks: readonly ResolvedSink[];
  /** Schema of the view tables. @default 'tributary_views' */
  viewSchema?: string;
  /** A lease not renewed for this long may be taken over by another process. @default 10000 */
  leaseTimeoutMs?: number;
  /** Polling fallback when no notification arrives. @default 1000 */
  pollIntervalMs?: number;
  /** Rows per backfill chunk. @default 1000; 10,000 when the documents are built in SQL */
  backfillChunk?: number;
  /** Use these backends (by sink name) instead of creating them from the config. */
  backends?: ReadonlyMap<string, SearchBackend>;
  logger?: Logger;
  /** Identifies this process in leases. @default `<host>:<pid>:<random>` */
  workerId?: string;
  onApplied?: (info: { sink: string; index: string; position: Position; documents: number }) => void;
  /** Called as a build of an index goes: when it starts, after each backfill chunk, when it is swapped in. */
  onBuildProgress?: (progress: SinkBuildProgress) => void;
}

export interface SinkWorkers {
  readonly workerId: string;
  /** What each sink is doing in this process. */
  status(): SinkWorkerStatus[];
  /** Finishes the running batches, releases the leases, closes the backends. */
  stop(): Promise<void>;
}

/**
 * Runs the sinks in this process, each while this process holds its lease (like the
 * projections: another process takes a sink over when this one dies). Sinks have their
 * own connections and only read the views and the changelog, so a slow or failing
 * backend never holds projections or capture back.
 */
export function startSinks(options: StartSinksOptions): SinkWorkers {
  const logger = options.logger ?? silentLogger;
  const workerId = options.workerId ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const pool: Pool = createPool(options.url, {
    max: Math.min(4 * options.sinks.length + 2, 24),
    applicationName: 'tributary-sinks',
    logger,
  });
  const notifier = createNotifier(options.url, VIEW_CHANGES_CHANNEL, logger);
  const abort = new AbortController();
  const statuses = new Map<string, SinkWorkerStatus>();
  const backends = new Map<string, SearchBackend>();
  const loops = options.sinks.map(async (sink) => {
    const status: SinkWorkerStatus = { sink: sink.name, state: 'starting' };
    statuses.set(sink.name, status);
    const backend =
      options.backends?.get(sink.name) ??
      (await createBackend(sink, {
        databaseUrl: options.url,
        pool,
        logger: logger.child({ sink: sink.name }),
      }));
    if (!options.backends?.has(sink.name)) backends.set(sink.name, backend);
    await runSink(sink, {
      pool,
      viewSchema: options.viewSchema ?? DEFAULT_VIEW_SCHEMA,
      backend,
      notifier,
      logger: logger.child({ sink: sink.name }),
      workerId,
      leaseTimeoutMs: options.leaseTimeoutMs ?? 10_000,
      pollIntervalMs: options.pollIntervalMs ?? 1000,
      signal: abort.signal,
      status,
      ...(options.backfillChunk ? { backfillChunk: options.backfillChunk } : {}),
      ...(options.onApplied ? { onApplied: options.onApplied } : {}),
      ...(options.onBuildProgress ? { onBuildProgress: options.onBuildProgress } : {}),
    });
  });
  const done = Promise.allSettled(loops).then((results) => {
    for (const result of results) {
      if (result.status === 'rejected') logger.error('sink stopped', { error: result.reason });
    }
  });
  let stopping: Promise<void> | undefined;
  return {
    workerId,
    status: () => [...statuses.values()].map((status) => ({ ...status })),
    stop() {
      stopping ??= (async () => {
        abort.abort();
        await done;
        await notifier.close();
        for (const backend of backends.values()) await backend.close().catch(() => {});
        await closePool(pool);
      })();
      return stopping;
    },
  };
}
