import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import { createPool } from '../../db/index.js';
import { cdcStatus, dropSource, type SourceStatus } from '../../ingest/index.js';
import { openContext, runUntilStopped } from '../context.js';
import { startOperationalServer } from '../operationalService.js';
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
    const slot = result.slotDropped
      ? 'dropped'
      : result.slotKept
        ? `left in place: it ${result.slotKept}`
        : 'was already gone';
    const publication = result.publicationDropped
      ? 'dropped'
      : result.publicationKept
        ? `left in place (${result.publicationKept})`
        : 'was already gone';
    console.log(
      `Source '${name}': slot '${result.slot}' ${slot}; publication '${result.publication}' ${publication}; checkpoint forgotten. The next run takes a new snapshot.`,
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
    await startOperationalServer(context, { projections: false, sources: true });
  });
}

function formatStatus(s: SourceStatus, now = Date.now()): string {
  const snapshot = s.snapshot.done
    ? `done (${s.snapshot.rows} rows)`
    : s.snapshot.progress
      ? `${s.snapshot.progress.rowsDone} / ~${s.snapshot.progress.rowsTotal} rows${s.snapshot.progress.table ? ` (${s.snapshot.progress.table})` : ''}`
      : 'not started';
  const at = (time: Date) => `${time.toISOString()}, ${ago(now - time.getTime())}`;
  const capture = s.running
    ? `running (reported ${ago(now - s.updatedAt!.getTime())})`
    : s.updatedAt
      ? `not running (last report ${at(s.updatedAt)})`
      : 'not running (never ran against this log)';
  const slotNotes = [
    s.slotExists === false ? (s.snapshot.done ? 'MISSING' : 'not created yet') : null,
    s.slotProblem,
    s.slotActive ? 'in use' : s.slotExists ? 'idle' : null,
    s.walStatus ? `wal_status ${s.walStatus}` : null,
  ].filter((note) => note !== null);
  const lines = [
    `${s.source}  [${s.state}]  stream ${s.streamId}`,
    `  capture       ${capture}`,
    `  slot          ${s.slot}${slotNotes.length > 0 ? `  (${slotNotes.join(', ')})` : ''}`,
    `  confirmed LSN ${s.confirmedLsn ?? '-'}   checkpoint ${s.checkpointLsn ?? '-'}${s.checkpointTime ? ` at ${s.checkpointTime.toISOString()}` : ''}`,
    `  lag           ${s.lagSize ?? '-'} to read${s.lagSeconds === null ? '' : `, ${s.lagSeconds.toFixed(1)} s`}`,
    `  WAL held      ${s.retainedSize ?? '-'} on the source (from restart_lsn)${s.safeWalSize ? `, ${s.safeWalSize} more before the slot is invalidated` : ''}`,
    `  snapshot      ${snapshot}`,
    `  transactions  ${s.transactions}`,
  ];
  if (s.lastError)
    lines.push(`  last error    ${s.lastErrorAt ? `${at(s.lastErrorAt)}: ` : ''}${s.lastError}`);
  for (const warning of s.warnings) lines.push(`  WARNING       ${warning}`);
  return lines.join('\n');
}

function ago(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 120) return `${seconds} s ago`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 172_800) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86_400)} days ago`;
}
