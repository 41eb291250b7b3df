import { type LoadedConfig, loadConfig, type ResolvedDatabase, resolveDatabase } from '../config/index.js';
import { migrate } from '../db/index.js';
import { createLogger, type Logger } from '../logger.js';
import { createMetrics, type Metrics } from '../observability/index.js';
import { findInstance, type InstanceRecord, withInstance } from './instance.js';
import { createLifecycle, type Lifecycle } from './lifecycle.js';

export interface GlobalOptions {
  config?: string;
}

export interface CommandContext {
  logger: Logger;
  loaded: LoadedConfig;
  database: ResolvedDatabase;
  lifecycle: Lifecycle;
  /** The running `tributary dev` this command attached to, if any. */
  instance: InstanceRecord | undefined;
  /** The process's metrics: the API, the workers and the capture record into it. */
  metrics: Metrics;
}

export interface ContextOptions {
  /** @default true */
  migrateFirst?: boolean;
  /** Install the SIGINT/SIGTERM handlers first (long-running commands). @default false */
  handleSignals?: boolean;
  /**
   * Use the `tributary dev` running from this directory, when neither --config nor
   * DATABASE_URL says otherwise. @default true
   */
  useInstance?: boolean;
}

/**
 * The config of a command: the one of the `tributary dev` running from this directory
 * (with its database and sources) when there is one and neither --config nor DATABASE_URL
 * is given, else tributary.config.ts (or --config).
 */
export async function loadCommandConfig(
  options: GlobalOptions,
  logger: Logger,
  useInstance = true,
): Promise<{ loaded: LoadedConfig; instance: InstanceRecord | undefined }> {
  const instance =
    useInstance && !options.config && !process.env.DATABASE_URL
      ? await findInstance(process.cwd(), logger)
      : undefined;
  if (instance) {
    const loaded = await loadConfig(instance.config ? { file: instance.config } : {});
    logger.debug('using the running `tributary dev`', { pid: instance.pid, config: instance.config });
    return { loaded: { ...loaded, config: withInstance(loaded.config, instance) }, instance };
  }
  return { loaded: await loadConfig(options.config ? { file: options.config } : {}), instance: undefined };
}

/** Loads the config, connects to (or starts) the database and migrates it. */
export async function openContext(
  options: GlobalOptions,
  contextOptions: ContextOptions = {},
): Promise<CommandContext> {
  const logger = createLogger();
  const lifecycle = createLifecycle(logger);
  if (!contextOptions.handleSignals) return open(options, logger, lifecycle, contextOptions);
  // Signals are handled from the start: a Ctrl-C while the embedded server starts still stops it.
  lifecycle.handleSignals();
  const work = lifecycle.starting(open(options, logger, lifecycle, contextOptions));
  try {
    return await work;
  } catch (error) {
    await lifecycle.shutdown('startup failed');
    throw error;
  }
}

async function open(
  options: GlobalOptions,
  logger: Logger,
  lifecycle: Lifecycle,
  { migrateFirst = true, useInstance = true }: ContextOptions,
): Promise<CommandContext> {
  const { loaded, instance } = await loadCommandConfig(options, logger, useInstance);
  if (loaded.file) logger.debug('config loaded', { file: loaded.file });
  const database = await resolveDatabase(loaded.config, logger);
  lifecycle.add(() => database.stop());
  if (migrateFirst) {
    try {
      await migrate(database.url, { logger });
    } catch (error) {
      await database.stop();
      throw error;
    }
  }
  let metrics: Metrics | undefined;
  return {
    logger,
    loaded,
    database,
    lifecycle,
    instance,
    // Made on first use: a one-shot command never starts the event-loop monitor.
    get metrics() {
      metrics ??= createMetrics();
      return metrics;
    },
  };
}

/**
 * Runs a command that serves until stopped (dev, start, serve, cdc run): opens the context,
 * starts the services, and waits for a signal. A failure while starting stops what did
 * start and is thrown, so the command exits at once with its message instead of hanging.
 */
export async function runUntilStopped(
  options: GlobalOptions,
  start: (context: CommandContext) => Promise<void>,
  contextOptions: Omit<ContextOptions, 'handleSignals'> = {},
): Promise<void> {
  const context = await openContext(options, {
    ...contextOptions,
    handleSignals: true,
  });
  if (context.lifecycle.stopping) return context.lifecycle.stopped;
  try {
    await context.lifecycle.starting(start(context));
  } catch (error) {
    await context.lifecycle.shutdown('startup failed');
    throw error;
  }
  await context.lifecycle.stopped;
  // A service that failed for good (e.g. a capture whose source refuses it) stopped the rest.
  if (context.lifecycle.failure !== undefined) throw context.lifecycle.failure;
}
