import type { Command } from 'commander';
import { closePool, createPool } from '../../db/index.js';
import { startCapture } from '../../ingest/index.js';
import { registerSinkMetrics } from '../../observability/index.js';
import { readSinkMetrics, type SinkFigures, startSinks, startWorkers } from '../../projections/index.js';
import { type CommandContext, runUntilStopped } from '../context.js';
import { startOperationalServer } from '../operationalService.js';
import { createSinkBuildReporter } from '../sinkBuildProgress.js';
import { configuredSinks } from '../sinksOf.js';
import { apiAuth, startApi } from './serve.js';

/**
 * Each service `tributary start` runs: it starts, registers its own stop with the
 * lifecycle, and returns. The API and CDC capture are further entries of this list.
 */
type Service = (context: CommandContext) => Promise<void>;

/** Projection workers: every configured projection, shared with other processes through leases. */
export const startProjections: Service = async (context) => {
  const { config } = context.loaded;
  const projections = config.projections ?? [];
  if (projections.length === 0) {
    context.logger.warn('no projections configured; add `projections: [...]` to tributary.config.ts');
    return;
  }
  const pool = createPool(context.database.url, {
    max: Math.min(2 * projections.length + 2, 30),
    applicationName: 'tributary-projections',
    logger: context.logger,
  });
  const workers = startWorkers({
    url: context.database.url,
    pool,
    projections,
    logger: context.logger,
    metrics: context.metrics,
    ...config.runner,
  });
  context.lifecycle.add(async () => {
    await workers.stop();
    await closePool(pool);
  });
  context.logger.info('projection workers started', {
    workerId: workers.workerId,
    projections: projections.map((p) => p.name),
  });
};

/**
 * Sinks: each keeps a search index in step with its view, in the process holding its lease
 * (like the projections), on connections of their own.
 */
export const startSinksService: Service = async (context) => {
  const { config } = context.loaded;
  const sinks = configuredSinks(config);
  if (sinks.length === 0) return;
  const logger = context.logger.child({ component: 'sinks' });
  const workers = startSinks({
    url: context.database.url,
    sinks,
    logger,
    // A build's progress: a bar on a terminal, progress log lines otherwise.
    onBuildProgress: createSinkBuildReporter({ logger }),
    ...(config.runner?.viewSchema ? { viewSchema: config.runner.viewSchema } : {}),
    ...(config.runner?.leaseTimeoutMs ? { leaseTimeoutMs: config.runner.leaseTimeoutMs } : {}),
  });
  context.lifecycle.add(() => workers.stop());
  // Sink lag on /metrics, read from the database at most once a second for all the sinks.
  const pool = createPool(context.database.url, { max: 1 });
  let figures: { at: number; value: Promise<Map<string, SinkFigures>> } | undefined;
  const readFigures = () => {
    if (!figures || Date.now() - figures.at > 1000) {
      const value = readSinkMetrics(pool, sinks).then((list) => new Map(list.map((f) => [f.sink, f])));
      value.catch(() => {});
      figures = { at: Date.now(), value };
    }
    return figures.value;
  };
  const reported = sinks.map((sink) =>
    registerSinkMetrics(context.metrics, {
      sink: sink.name,
      lag: async () => {
        const figure = (await readFigures()).get(sink.name);
        return { events: figure?.lagChanges ?? 0, seconds: figure?.lagSeconds ?? 0 };
      },
    }),
  );
  context.lifecycle.add(async () => {
    for (const sink of reported) sink.remove();
    await closePool(pool);
  });
  context.logger.info('sinks started', { sinks: sinks.map((sink) => sink.name) });
};

/** Change data capture of the configured sources into the log. */
export const startSources: Service = async (context) => {
  const { sources } = context.loaded.config;
  if (!sources || Object.keys(sources).length === 0) return;
  const capture = startCapture({
    sources,
    url: context.database.url,
    logger: context.logger,
    metrics: context.metrics,
  });
  context.lifecycle.add(() => capture.stop());
  // A source that cannot be captured stops the process (exit code 1) instead of retrying forever.
  void capture.failure.then((error) => context.lifecycle.fail(error));
  context.logger.info('capture running', {
    sources: [...capture.status(), ...capture.eventStoreDb()].map((s) => s.source),
  });
};

/** The GraphQL API, on api.port. */
export const startApiService: Service = async (context) => {
  await startApi(context);
};

export const SERVICES: Service[] = [startSources, startProjections, startSinksService, startApiService];

export async function startCommand(options: { api: boolean }, command: Command): Promise<void> {
  await runUntilStopped(command.optsWithGlobals(), async (context) => {
    // Refused before anything starts: a config the API cannot serve fails at once.
    if (options.api) apiAuth(context.loaded.config);
    configuredSinks(context.loaded.config);
    for (const service of SERVICES) {
      if (service === startApiService && !options.api) continue;
      await service(context);
    }
    // Without the API, health and metrics get a port of their own.
    if (!options.api) await startOperationalServer(context, { projections: true, sources: true });
  });
}
