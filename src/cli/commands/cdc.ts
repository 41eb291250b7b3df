import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import { createPool } from '../../db/index.js';
import { cdcStatus, dropSource, type SourceStatus } from '../../ingest/index.js';
import { openContext, runUntilStopped } from '../context.js';
import { startSources } from './start.js';

export async function cdcStatusCommand(options: { json?: boolean }, command: Command): Promise<void> {
  const context = await openContext(command.optsWithGlobals());
  const pool = createPool(context.database.url, { max: 2 });
  try {
    const statuses = await cdcStatus({ sources: context.loaded.config.sources, db: pool });
    if (options.json) console.log(JSON.stringify(statuses, null, 2));
    else if (statuses.length === 0)
      console.log('No sources configured (add `sources` to tributary.config.ts).');
    else for (const status of statuses) console.log(formatStatus(status));
  } finally {
    await pool.end();
    await context.database.stop();
  }
}

export async function cdcDropCommand(
  name: string,
  options: { yes?: boolean },
  command: Command,
): Promise<void> {
  const context = await openContext(command.optsWithGlobals());
  const pool = createPool(context.database.url, { max: 2 });
  try {
    if (!options.yes) {
      if (!process.stdin.isTTY) {
        console.error(
          'tributary: refusing to drop without confirmation on a non-interactive input; pass --yes.',
        );
        process.exitCode = 1;
        return;
      }
      const rl = createInterface({ input: process.stdin, output: process.stdout });
      const answer = await rl.question(
        `Drop the slot and publication of source '${name}'? Changes made meanwhile will not be captured, and the next run takes a new snapshot. Type the source name to confirm: `,
      );
      rl.close();
      if (answer.trim() !== name) {
        console.log('Not dropped.');
        return;
      }
    }
    const result = await dropSource({ sources: context.loaded.config.sources, source: name, db: pool });
    console.log(
      `Source '${name}': slot ${result.slotDropped ? 'dropped' : 'was already gone'}, publication ${result.publicationDropped ? 'dropped' : 'was already gone'}, checkpoint forgotten.`,
    );
  } finally {
    await pool.end();
    await context.database.stop();
  }
}

export async function cdcRunCommand(command: Command): Promise<void> {
  await runUntilStopped(command.optsWithGlobals(), async (context) => {
    const sources = context.loaded.config.sources;
    if (!sources || Object.keys(sources).length === 0) {
      context.logger.warn('no sources configured; add `sources` to tributary.config.ts');
    }
    await startSources(context);
  });
}

function formatStatus(s: SourceStatus): string {
  const snapshot = s.snapshot.done
    ? `done (${s.snapshot.rows} rows)`
    : s.snapshot.progress
      ? `${s.snapshot.progress.rowsDone} / ~${s.snapshot.progress.rowsTotal} rows${s.snapshot.progress.table ? ` (${s.snapshot.progress.table})` : ''}`
      : 'not started';
  const lines = [
    `${s.source}  [${s.state}]  stream ${s.streamId}`,
    `  slot          ${s.slot}${s.slotExists === false ? '  (MISSING)' : ''}${s.slotProblem ? `  (${s.slotProblem})` : ''}`,
    `  confirmed LSN ${s.confirmedLsn ?? '-'}   checkpoint ${s.checkpointLsn ?? '-'}${s.checkpointTime ? ` at ${s.checkpointTime.toISOString()}` : ''}`,
    `  lag           ${s.lagBytes === null ? '-' : `${s.lagBytes} bytes`}, ${s.lagSeconds === null ? '-' : `${s.lagSeconds.toFixed(1)} s`}`,
    `  snapshot      ${snapshot}`,
    `  transactions  ${s.transactions}`,
  ];
  if (s.lastError)
    lines.push(`  last error    ${s.lastError}${s.lastErrorAt ? ` (${s.lastErrorAt.toISOString()})` : ''}`);
  return lines.join('\n');
}
