import type { Command } from 'commander';
import { closePool, createPool } from '../../db/index.js';
import { getProjectionStatuses, type ProjectionStatus } from '../../projections/index.js';
import { openContext } from '../context.js';
import { formatColumns } from '../table.js';

export async function statusCommand(options: { json?: boolean }, command: Command): Promise<void> {
  const context = await openContext(command.optsWithGlobals());
  const pool = createPool(context.database.url, { max: 2 });
  try {
    const statuses = await getProjectionStatuses(pool, context.loaded.config.projections ?? []);
    if (options.json) console.log(JSON.stringify(statuses, null, 2));
    else console.log(formatStatusTable(statuses));
  } finally {
    await closePool(pool);
    await context.database.stop();
  }
}

export function formatStatusTable(statuses: readonly ProjectionStatus[]): string {
  if (statuses.length === 0)
    return 'No projections configured (add `projections: [...]` to tributary.config.ts).';
  const header = ['PROJECTION', 'STATE', 'VERSION', 'LAG', 'LAG (s)', 'EV/S', 'DEAD', 'LEASE', 'POSITION'];
  const rows = statuses.map((s) => [
    s.name,
    s.rebuild
      ? `${s.state} (rebuilding v${s.rebuild.version}: ${s.rebuild.done}/${s.rebuild.total})`
      : s.needsRebuild
        ? `${s.state}, needs-rebuild`
        : s.state,
    (s.version === s.configuredVersion
      ? String(s.version ?? '-')
      : `${s.version ?? '-'} (config: ${s.configuredVersion})`) +
      (s.partitionCount !== undefined && s.partitionCount !== s.configuredPartitions
        ? ` (partitions ${s.partitionCount}, config: ${s.configuredPartitions})`
        : ''),
    `${s.lagEstimated ? '~' : ''}${s.lagEvents}`,
    String(s.lagSeconds),
    String(s.eventsPerSecond),
    String(s.deadLetters),
    s.leaseOwner ?? '-',
    s.position,
  ]);
  const out = formatColumns(header, rows);
  for (const s of statuses) {
    if (!s.partitions) continue;
    out.push(`\n${s.name}: ${s.partitions.length} partitions`);
    out.push(
      ...formatColumns(
        ['PARTITION', 'STATE', 'LAG', 'LAG (s)', 'EV/S', 'LEASE', 'POSITION'],
        s.partitions.map((p) => [
          String(p.partition),
          p.state,
          `${p.lagEstimated ? '~' : ''}${p.lagEvents}`,
          String(p.lagSeconds),
          String(p.eventsPerSecond),
          p.leaseOwner ?? '-',
          p.position,
        ]),
      ).map((text) => `  ${text}`),
    );
  }
  for (const s of statuses) {
    if (s.lastError) {
      out.push(
        `\n${s.name}: last error${s.lastError.position ? ` at ${s.lastError.position}` : ''}${s.lastError.eventType ? ` (${s.lastError.eventType})` : ''}: ${s.lastError.message}`,
      );
    }
  }
  return out.join('\n');
}
