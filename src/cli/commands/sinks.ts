import type { Command } from 'commander';
import { closePool, createPool } from '../../db/index.js';
import { TributaryError } from '../../errors.js';
import { getSinkStatuses, loadSinks, requestSink, type SinkStatus } from '../../projections/index.js';
import { sleep } from '../../sleep.js';
import { openContext } from '../context.js';
import { createProgressBar } from '../progress.js';
import { configuredSinks, findSink } from '../sinksOf.js';
import { formatColumns } from '../table.js';

export async function sinksStatusCommand(options: { json?: boolean }, command: Command): Promise<void> {
  const context = await openContext(command.optsWithGlobals());
  const pool = createPool(context.database.url, { max: 2 });
  try {
    const statuses = await getSinkStatuses(pool, configuredSinks(context.loaded.config));
    if (options.json) console.log(JSON.stringify(statuses, null, 2));
    else console.log(formatSinksTable(statuses));
  } finally {
    await closePool(pool);
    await context.database.stop();
  }
}

export function formatSinksTable(statuses: readonly SinkStatus[]): string {
  if (statuses.length === 0) return 'No sinks configured (add `sinks: { ... }` to tributary.config.ts).';
  const header = [
    'SINK',
    'VIEW',
    'BACKEND',
    'STATE',
    'INDEX',
    'LAG',
    'LAG (s)',
    'DOCS/S',
    'ERRORS',
    'DEAD',
    'LEASE',
  ];
  const rows = statuses.map((s) => [
    s.name,
    s.view,
    s.backend,
    s.build
      ? `${s.state} (${s.build.phase} ${s.build.index}: ${s.build.done}/${s.build.total}, ${s.build.reason})`
      : s.state,
    s.index ? `${s.alias} → ${s.index}` : `${s.alias} (none yet)`,
    String(s.lagChanges),
    String(s.lagSeconds),
    String(s.documentsPerSecond),
    String(s.errors),
    String(s.deadLetters),
    s.leaseOwner ?? '-',
  ]);
  const out = formatColumns(header, rows);
  for (const s of statuses) {
    if (s.lastError) out.push(`\n${s.name}: last error at ${s.lastError.at}: ${s.lastError.message}`);
    if (s.deadLetters > 0)
      out.push(
        `${s.name}: ${s.deadLetters} dead letter(s) (documents the backend refused; see --json or tributary.sink_dead_letters)`,
      );
  }
  return out.join('\n');
}

export async function sinkRequestCommand(
  request: 'pause' | 'resume',
  name: string,
  command: Command,
): Promise<void> {
  const context = await openContext(command.optsWithGlobals());
  const pool = createPool(context.database.url, { max: 2 });
  try {
    findSink(context.loaded.config, name);
    if (!(await requestSink(pool, name, request))) throw notStarted(name);
    console.log(
      request === 'pause'
        ? `Paused ${name}: it stops after its current batch; its checkpoint holds the changes it has not applied.`
        : `Resumed ${name}.`,
    );
  } finally {
    await closePool(pool);
    await context.database.stop();
  }
}

/**
 * Asks the process running the sink to build a new index beside the one that serves, catch
 * it up and swap it in, and follows its progress until the swap (Ctrl-C stops following,
 * not the reindex).
 */
export async function sinkReindexCommand(
  name: string,
  options: { wait: boolean },
  command: Command,
): Promise<void> {
  const context = await openContext(command.optsWithGlobals());
  const pool = createPool(context.database.url, { max: 2 });
  const abort = new AbortController();
  const onSignal = () => abort.abort();
  process.once('SIGINT', onSignal);
  try {
    const sink = findSink(context.loaded.config, name);
    const [before] = await loadSinks(pool, [name]);
    if (!before || !(await requestSink(pool, name, 'reindex'))) throw notStarted(name);
    const [status] = await getSinkStatuses(pool, [sink]);
    if (!options.wait) {
      console.log(`Reindex of ${name} requested.`);
      return;
    }
    if (!status?.leaseOwner) {
      console.log(
        `Reindex of ${name} requested; no process runs this sink now: it starts when \`tributary start\` or \`dev\` runs it.`,
      );
      return;
    }
    const bar = createProgressBar(`reindex ${name}`, { unit: 'docs' });
    let started = false;
    try {
      while (!abort.signal.aborted) {
        const [row] = await loadSinks(pool, [name]);
        if (!row) throw notStarted(name);
        if (row.build_index) {
          started = true;
          bar.update({ done: Number(row.build_done), total: Number(row.build_total) });
        } else if ((started || row.builds > before.builds) && !row.reindex_requested) {
          bar.finish(Number(row.build_done || row.build_total));
          console.log(`Reindexed ${name}: ${row.alias} → ${row.index_name}.`);
          return;
        }
        await sleep(300, abort.signal);
      }
      bar.stop();
      console.log(`Stopped following; the reindex of ${name} goes on (see \`tributary sinks status\`).`);
    } finally {
      bar.stop();
    }
  } finally {
    process.off('SIGINT', onSignal);
    await closePool(pool);
    await context.database.stop();
  }
}

function notStarted(name: string): TributaryError {
  return new TributaryError('NOT_FOUND', `Sink '${name}' has not run yet.`, {
    hint: 'Start it with `tributary start` (or `tributary dev`); it builds its index first.',
  });
}
