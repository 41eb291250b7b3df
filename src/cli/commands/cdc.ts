import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import { closePool, createPool, type Pool } from '../../db/index.js';
import {
  cancelSnapshots,
  cdcStatus,
  dropSource,
  type EventStoreDbSourceStatus,
  eventStoreDbStatus,
  findSource,
  forgetEventStoreDbSource,
  type IncrementalSnapshotStatus,
  readSnapshotStatuses,
  requestSnapshots,
  resolveEventStoreDbSources,
  type SourceStatus,
} from '../../ingest/index.js';
import { sleep } from '../../sleep.js';
import { openContext, runUntilStopped } from '../context.js';
import { startOperationalServer } from '../operationalService.js';
import { createProgressBar } from '../progress.js';
import { startSources } from './start.js';

export async function cdcStatusCommand(options: { json?: boolean }, command: Command): Promise<void> {
  const context = await openContext(command.optsWithGlobals());
  const pool = createPool(context.database.url, { max: 2 });
  try {
    const { sources } = context.loaded.config;
    const [postgres, eventStores] = await Promise.all([
      cdcStatus({ sources, db: pool }),
      eventStoreDbStatus({ sources, db: pool }),
    ]);
    // In the order of the config.
    const order = Object.keys(sources ?? {});
    const statuses = [...postgres, ...eventStores].sort(
      (a, b) => order.indexOf(a.source) - order.indexOf(b.source),
    );
    if (options.json) console.log(JSON.stringify(statuses, null, 2));
    else if (statuses.length === 0)
      console.log('No sources configured (add `sources` to tributary.config.ts).');
    else
      for (const status of statuses)
        console.log(status.kind === 'eventstoredb' ? formatEventStoreDbStatus(status) : formatStatus(status));
  } finally {
    await closePool(pool);
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
    if (resolveEventStoreDbSources(context.loaded.config.sources).some((s) => s.name === name)) {
      await forgetEventStoreDbSource(pool, name);
      console.log(
        `Source '${name}': checkpoint forgotten. The next run reads $all again from its start (or end, with from: 'end'); events whose ids are already in their log streams are skipped.`,
      );
      return;
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
    await closePool(pool);
    await context.database.stop();
  }
}

export async function cdcSnapshotCommand(
  name: string,
  tables: string[],
  options: { wait: boolean; cancel?: boolean },
  command: Command,
): Promise<void> {
  const context = await openContext(command.optsWithGlobals());
  const pool = createPool(context.database.url, { max: 2 });
  try {
    const source = findSource(context.loaded.config.sources, name);
    if (options.cancel) {
      const cancelled = await cancelSnapshots(pool, source.name, tables);
      console.log(
        `Source '${name}': ${cancelled} snapshot(s) cancelled (a chunk being read finishes first; rows already appended stay in the log).`,
      );
      return;
    }
    const ids = await requestSnapshots(pool, source, tables);
    const requested = await readSnapshotStatuses(pool, source.name, ids);
    console.log(
      `Source '${name}': incremental snapshot of ${requested.map((s) => `${s.table} (#${s.id})`).join(', ')} requested.`,
    );
    const [status] = await cdcStatus({
      sources: { [name]: context.loaded.config.sources![name]! },
      db: pool,
    });
    if (!status?.running) {
      console.log(
        `No capture of '${name}' is running: the snapshot starts when one runs (\`tributary cdc run\` or \`tributary start\`).`,
      );
    }
    if (!options.wait) return;
    const finished = await followSnapshots(pool, source.name, ids);
    for (const s of finished) console.log(describeSnapshot(s));
    if (finished.some((s) => s.state === 'failed')) process.exitCode = 1;
  } finally {
    await closePool(pool);
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

/** Shows a progress bar until every snapshot is done, cancelled or failed (Ctrl-C stops following only). */
async function followSnapshots(
  pool: Pool,
  source: string,
  ids: number[],
): Promise<IncrementalSnapshotStatus[]> {
  const bar = createProgressBar('snapshot');
  const stop = new AbortController();
  const onSignal = () => {
    bar.stop();
    console.log(
      'Stopped following: the snapshot goes on in the capture (`tributary cdc status` shows it; `--cancel` stops it).',
    );
    stop.abort();
  };
  process.once('SIGINT', onSignal);
  try {
    for (;;) {
      const statuses = await readSnapshotStatuses(pool, source, ids);
      const done = statuses.reduce((sum, s) => sum + s.rowsRead, 0);
      const total = statuses.reduce((sum, s) => sum + Math.max(s.rowsTotal ?? 0, s.rowsRead), 0);
      if (statuses.some((s) => s.state === 'running' || done > 0)) bar.update({ done, total, position: '' });
      if (statuses.every((s) => s.state !== 'requested' && s.state !== 'running')) {
        bar.stop();
        return statuses;
      }
      await sleep(500, stop.signal);
      if (stop.signal.aborted) process.exit(130);
    }
  } finally {
    process.off('SIGINT', onSignal);
  }
}

function describeSnapshot(s: IncrementalSnapshotStatus): string {
  const stale = s.rowsRead - s.rowsWritten;
  const rows = `${s.rowsRead} rows read, ${s.rowsWritten} appended${stale > 0 ? ` (${stale} had a newer change in the stream)` : ''}`;
  const when = s.finishedAt
    ? ` at ${s.finishedAt.toISOString()}`
    : s.startedAt
      ? ` since ${s.startedAt.toISOString()}`
      : '';
  return `  ${s.table} #${s.id}  ${s.state}${when}: ${rows}${s.lastError ? ` — ${s.lastError}` : ''}`;
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
  for (const snapshot of s.incrementalSnapshots) {
    const progress =
      snapshot.state === 'running' || snapshot.state === 'requested'
        ? `${snapshot.rowsRead} / ~${Math.max(snapshot.rowsTotal ?? 0, snapshot.rowsRead)} rows`
        : `${snapshot.rowsRead} rows read, ${snapshot.rowsWritten} appended`;
    lines.push(
      `  incremental   ${snapshot.table} #${snapshot.id} ${snapshot.state} (${snapshot.reason}): ${progress}${snapshot.lastError ? ` — ${snapshot.lastError}` : ''}`,
    );
  }
  if (s.lastError)
    lines.push(`  last error    ${s.lastErrorAt ? `${at(s.lastErrorAt)}: ` : ''}${s.lastError}`);
  for (const warning of s.warnings) lines.push(`  WARNING       ${warning}`);
  return lines.join('\n');
}

function formatEventStoreDbStatus(s: EventStoreDbSourceStatus, now = Date.now()): string {
  const at = (time: Date) => `${time.toISOString()}, ${ago(now - time.getTime())}`;
  const position = (p: { commit: string; prepare: string } | null) =>
    p ? `C:${p.commit}/P:${p.prepare}` : '-';
  const capture = s.running
    ? `running (reported ${ago(now - s.updatedAt!.getTime())})`
    : s.updatedAt
      ? `not running (last report ${at(s.updatedAt)})`
      : 'not running (never ran against this log)';
  const lines = [
    `${s.source}  [${s.state}]  eventstoredb ${s.server}`,
    `  capture       ${capture}`,
    `  position      ${position(s.position)}${s.checkpointTime ? ` (event of ${s.checkpointTime.toISOString()})` : ''}   head ${position(s.head)}`,
    `  lag           ${s.lagBytes === null ? '-' : `${s.lagBytes} bytes of the server's log`}${s.lagSeconds === null ? '' : `, ${s.lagSeconds.toFixed(1)} s`}`,
    `  events        ${s.events}`,
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
