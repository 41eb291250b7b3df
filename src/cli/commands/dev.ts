import type { Command } from 'commander';
import { openContext } from '../context.js';

export function registerDev(program: Command) {
  program
    .command('dev')
    .description(
      'Run everything locally for development: the embedded PostgreSQL (unless DATABASE_URL is set), migrated.',
    )
    .action(async (_options, command: Command) => {
      const context = await openContext(command.optsWithGlobals(), { handleSignals: true });
      if (context.lifecycle.stopping) return context.lifecycle.stopped;
      const { logger, database } = context;
      logger.info('tributary dev is running', {
        database: database.kind === 'embedded' ? `${database.url} (embedded)` : 'DATABASE_URL',
      });
      console.log(`\nTributary dev is running.\n  Database: ${database.url}\n  Press Ctrl-C to stop.\n`);
      await context.lifecycle.stopped;
    });
}
