import type { Command } from 'commander';
import { createPool } from '../../db/index.js';
import { ValidationError } from '../../errors.js';
import { isPosition } from '../../ingest/index.js';
import { replayProjection } from '../../projections/index.js';
import { openContext } from '../context.js';
import { createProgressBar } from '../progress.js';
import { findProjection } from '../projectionsOf.js';

export function registerReplay(program: Command) {
  program
    .command('replay')
    .description(
      'Re-deliver part of the log (up to its checkpoint) to a projection whose effects are idempotent, e.g. to push a sink again after a fix.',
    )
    .argument('<projection>', 'projection name')
    .requiredOption(
      '--from <position|timestamp>',
      'a log position, or an ISO-8601 time (the first event recorded at or after it)',
    )
    .action(async (name: string, options: { from: string }, command: Command) => {
      const from = isPosition(options.from) ? options.from : new Date(options.from);
      if (from instanceof Date && Number.isNaN(from.getTime())) {
        throw new ValidationError(`--from '${options.from}' is neither a log position nor a time.`, {
          hint: 'Use a position such as 000000000000a1b2-0000000000000f00, or a time such as 2026-11-21T10:00:00Z.',
        });
      }
      const context = await openContext(command.optsWithGlobals());
      const projection = findProjection(context.loaded.config, name);
      const pool = createPool(context.database.url, { max: 3 });
      const bar = createProgressBar(`replay ${name}`);
      try {
        const { runner } = context.loaded.config;
        const result = await replayProjection({
          pool,
          projection,
          from,
          logger: context.logger,
          onProgress: (progress) => bar.update(progress),
          ...(runner?.viewSchema ? { viewSchema: runner.viewSchema } : {}),
          ...(runner?.leaseTimeoutMs ? { leaseTimeoutMs: runner.leaseTimeoutMs } : {}),
        });
        bar.stop();
        console.log(`Replayed ${result.events} events to ${name}.`);
      } finally {
        bar.stop();
        await pool.end();
        await context.database.stop();
      }
    });
}
