import { Command } from 'commander';
import { registerCdc } from './commands/cdc.js';
import { registerDev } from './commands/dev.js';
import { registerMigrate } from './commands/migrate.js';

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
  registerCdc(program);
  return program;
}
