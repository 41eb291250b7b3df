import type { Command } from 'commander';
import { closePool, createPool } from '../../db/index.js';
import { ValidationError } from '../../errors.js';
import { isPosition } from '../../ingest/index.js';
import { ReplayNotSafeError, replayProjection } from '../../projections/index.js';
import { openContext } from '../context.js';
import { createProgressBar } from '../progress.js';
import { findProjection } from '../projectionsOf.js';

export async function replayCommand(
  name: string,
  options: { from: string; force?: boolean },
  command: Command,
): Promise<void> {
  const from = isPosition(options.from) ? options.from : new Date(options.from);
  if (from instanceof Date && Number.isNaN(from.getTime())) {
    throw new ValidationError(`--from '${options.from}' is neither a log position nor a time.`, {
      hint: 'Use a position such as 000000000000a1b2-0000000000000f00, or a time such as 2026-11-21T10:00:00Z.',
    });
  }
  const context = await openContext(command.optsWithGlobals());
  const pool = createPool(context.database.url, { max: 3 });
  try {
    const projection = findProjection(context.loaded.config, name);
    // Refused before anything is touched; the library checks it again.
    if (projection.replay !== 'idempotent' && !options.force) {
      throw new ReplayNotSafeError(projection.name, projection.replay);
    }
    if (projection.replay !== 'idempotent') {
      console.error(
        `tributary: replaying '${name}' although it does not declare replay: 'idempotent' (--force).`,
      );
    }
    const bar = createProgressBar(`replay ${name}`);
    try {
      const { runner } = context.loaded.config;
      const result = await replayProjection({
        pool,
        projection,
        from,
        force: options.force === true,
        logger: context.logger,
        onProgress: (progress) => bar.update(progress),
        ...(runner?.viewSchema ? { viewSchema: runner.viewSchema } : {}),
        ...(runner?.leaseTimeoutMs ? { leaseTimeoutMs: runner.leaseTimeoutMs } : {}),
      });
      bar.finish(result.events);
      if (result.tookOverFrom) {
        console.log(
          `Took ${name} over from its worker ${result.tookOverFrom} at once for the replay; the worker takes it back within seconds.`,
        );
      }
      console.log(`Replayed ${result.events} events to ${name}.`);
    } finally {
      bar.stop();
    }
  } finally {
    await closePool(pool);
    await context.database.stop();
  }
}
