import type { Command } from 'commander';
import { closePool, createPool } from '../../db/index.js';
import { rebuildProjection } from '../../projections/index.js';
import { openContext } from '../context.js';
import { createProgressBar } from '../progress.js';
import { findProjection } from '../projectionsOf.js';

export async function rebuildCommand(
  name: string,
  options: { inPlace?: boolean },
  command: Command,
): Promise<void> {
  const context = await openContext(command.optsWithGlobals());
  const pool = createPool(context.database.url, { max: 3 });
  const abort = new AbortController();
  const onSignal = () => abort.abort();
  process.once('SIGINT', onSignal);
  try {
    const projection = findProjection(context.loaded.config, name);
    const bar = createProgressBar(`rebuild ${name} v${projection.version}`);
    try {
      const { runner } = context.loaded.config;
      const result = await rebuildProjection({
        pool,
        projection,
        logger: context.logger,
        inPlace: options.inPlace === true,
        signal: abort.signal,
        onProgress: (progress) => bar.update(progress),
        ...(runner?.viewSchema ? { viewSchema: runner.viewSchema } : {}),
        ...(runner?.leaseTimeoutMs ? { leaseTimeoutMs: runner.leaseTimeoutMs } : {}),
        ...(runner?.batchSize ? { batchSize: runner.batchSize } : {}),
      });
      bar.finish(result.events);
      console.log(
        options.inPlace
          ? `Rebuilt ${name} v${projection.version} in place: ${result.events} events.`
          : `Rebuilt ${name} v${projection.version} (${result.events} events${result.resumed ? ', resumed' : ''}) and swapped it in.`,
      );
    } finally {
      bar.stop();
    }
  } finally {
    process.off('SIGINT', onSignal);
    await closePool(pool);
    await context.database.stop();
  }
}
