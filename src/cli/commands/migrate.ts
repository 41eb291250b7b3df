import type { Command } from 'commander';
import { openContext } from '../context.js';

export function registerMigrate(program: Command) {
  program
    .command('migrate')
    .description(
      "Apply Tributary's pending migrations to the database (safe to run from several processes at once).",
    )
    .action(async (_options, command: Command) => {
      const context = await openContext(command.optsWithGlobals(), { migrateFirst: false });
      try {
        const { migrate } = await import('../../db/index.js');
        const result = await migrate(context.database.url, { logger: context.logger });
        console.log(
          result.applied.length === 0
            ? `Database is up to date (${result.alreadyApplied} migrations applied earlier).`
            : `Applied ${result.applied.length} migration(s): ${result.applied.map((m) => m.name).join(', ')}.`,
        );
      } finally {
        await context.database.stop();
      }
    });
}
