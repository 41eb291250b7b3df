import type { Command } from 'commander';
import { createPool } from '../../db/index.js';
import { startCapture } from '../../ingest/index.js';
import { startWorkers } from '../../projections/index.js';
import { type CommandContext, runUntilStopped } from '../context.js';
import { startOperationalServer } from '../operationalService.js';
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
    await pool.end();
  });
  context.logger.info('projection workers started', {
    workerId: workers.workerId,
    projections: projections.map((p) => p.name),
  });
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
  context.logger.info('capture running', { sources: capture.status().map((s) => s.source) });
};

/** The GraphQL API, on api.port. */
export const startApiService: Service = async (context) => {
  await startApi(context);
};

export const SERVICES: Service[] = [startSources, startProjections, startApiService];

export async function startCommand(options: { api: boolean }, command: Command): Promise<void> {
  await runUntilStopped(command.optsWithGlobals(), async (context) => {
    // Refused before anything starts: a config the API cannot serve fails at once.
    if (options.api) apiAuth(context.loaded.config);
    for (const service of SERVICES) {
      if (service === startApiService && !options.api) continue;
      await service(context);
    }
    // Without the API, health and metrics get a port of their own.
    if (!options.api) await startOperationalServer(context, { projections: true, sources: true });
  });
}
