import { type LoadedConfig, loadConfig, type ResolvedDatabase, resolveDatabase } from '../config/index.js';
import { migrate } from '../db/index.js';
import { createLogger, type Logger } from '../logger.js';
import { createLifecycle, type Lifecycle } from './lifecycle.js';

export interface GlobalOptions {
  config?: string;
}

export interface CommandContext {
  logger: Logger;
  loaded: LoadedConfig;
  database: ResolvedDatabase;
  lifecycle: Lifecycle;
}

/** Loads the config, connects to (or starts) the database and migrates it. */
export async function openContext(
  options: GlobalOptions,
  { migrateFirst = true, handleSignals = false } = {},
): Promise<CommandContext> {
  const logger = createLogger();
  const lifecycle = createLifecycle(logger);
  if (!handleSignals) return open(options, logger, lifecycle, migrateFirst);
  // Signals are handled from the start: a Ctrl-C while the embedded server starts still stops it.
  lifecycle.handleSignals();
  const work = lifecycle.starting(open(options, logger, lifecycle, migrateFirst));
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
  migrateFirst: boolean,
): Promise<CommandContext> {
  const loaded = await loadConfig(options.config ? { file: options.config } : {});
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
  return { logger, loaded, database, lifecycle };
}
