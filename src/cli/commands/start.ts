import type { Command } from 'commander';
import { createPool } from '../../db/index.js';
import { startCapture } from '../../ingest/index.js';
import { startWorkers } from '../../projections/index.js';
import { type CommandContext, openContext } from '../context.js';
import { startApi } from './serve.js';

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
  const capture = startCapture({ sources, url: context.database.url, logger: context.logger });
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

export function registerStart(program: Command) {
  program
    .command('start')
    .description(
      'Run the change data capture of the configured sources, the projection workers and the GraphQL API until stopped. Start as many processes as you like: each projection runs in one of them at a time, and another takes over when it dies.',
    )
    .option('--no-api', 'run the capture and the projection workers only, without the GraphQL API')
    .action(async (options: { api: boolean }, command: Command) => {
      const context = await openContext(command.optsWithGlobals());
      context.lifecycle.handleSignals();
      for (const service of SERVICES) {
        if (service === startApiService && !options.api) continue;
        await service(context);
      }
      await context.lifecycle.stopped;
      if (context.lifecycle.failure !== undefined) throw context.lifecycle.failure;
    });
}
