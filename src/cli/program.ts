import { Command } from 'commander';
import { registerCdc } from './commands/cdc.js';
import { registerDeadLetters } from './commands/deadletters.js';
import { registerDev } from './commands/dev.js';
import { registerMigrate } from './commands/migrate.js';
import { registerRebuild } from './commands/rebuild.js';
import { registerReplay } from './commands/replay.js';
import { registerStart } from './commands/start.js';
import { registerStatus } from './commands/status.js';

export function createProgram(): Command {
  const program = new Command()
    .name('tributary')
    .description(
      'Event sourcing and change data capture on PostgreSQL: one log, exactly-once projections, GraphQL views.',
    )
    .option('-c, --config <file>', 'config file (default: tributary.config.ts in the current directory)')
    .showHelpAfterError('(run with --help for usage)');
  registerMigrate(program);
  registerDev(program);
  registerStart(program);
  registerStatus(program);
  registerRebuild(program);
  registerReplay(program);
  registerDeadLetters(program);
  registerCdc(program);
  return program;
}
