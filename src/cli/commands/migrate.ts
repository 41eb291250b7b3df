import type { Command } from 'commander';
import { migrate } from '../../db/index.js';
import { openContext } from '../context.js';

export async function migrateCommand(command: Command): Promise<void> {
  const context = await openContext(command.optsWithGlobals(), { migrateFirst: false });
  try {
    const result = await migrate(context.database.url, { logger: context.logger });
    console.log(
      result.applied.length === 0
        ? `Database is up to date (${result.alreadyApplied} migrations applied earlier).`
        : `Applied ${result.applied.length} migration(s): ${result.applied.map((m) => m.name).join(', ')}.`,
    );
  } finally {
    await context.database.stop();
  }
}
