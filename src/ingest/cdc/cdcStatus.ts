import type { Queryable } from '../../db/index.js';
import { reportedState } from '../reportedState.js';
import { readCheckpoint } from './checkpoints.js';
import { readSnapshotStatuses } from './incrementalSnapshots.js';
import { resolveSources } from './resolveSources.js';
import { resolveSourceNames } from './sourceNames.js';
import { connectSource, inspectSlot, type SlotInfo } from './sourceSetup.js';
import type { CaptureState, CdcSourcesConfig, ResolvedSource, SourceStatus } from './types.js';

const RUNNING: ReadonlySet<CaptureState> = new Set(['starting', 'snapshotting', 'streaming', 'reconnecting']);

/**
 * The status of every configured source, from the log's checkpoints, the running
 * capture's last report and the source's slot (lag in bytes from the source's WAL end).
 * Works from any process: the CLI and the API call it.
 */
export interface CdcStatusOptions {
  sources: CdcSourcesConfig | undefined;
  /** Tributary's database. */
  db: Queryable;
}

export async function cdcStatus(options: CdcStatusOptions): Promise<SourceStatus[]> {
  return Promise.all(
    resolveSources(options.sources).map(async (settings): Promise<SourceStatus> => {
      const source = await resolveSourceNames(options.db, settings);
      const checkpoint = await readCheckpoint(options.db, source.name);
      const { rows } = await options.db.query<{
        state: string;
        snapshot_table: string | null;
        snapshot_rows_done: string | null;
        snapshot_rows_total: string | null;
        confirmed_lsn: string | null;
        caught_up_at: Date | null;
        last_error: string | null;
        last_error_at: Date | null;
        updated_at: Date;
        age_ms: number;
      }>(
        `select state, snapshot_table, snapshot_rows_done, snapshot_rows_total, confirmed_lsn::text, caught_up_at,
                last_error, last_error_at, updated_at,
                (extract(epoch from now() - updated_at) * 1000)::float8 as age_ms
           from tributary.cdc_progress where source = $1`,
        [source.name],
      );
      const progress = rows[0];
      // An error the capture stopped on stays visible as the last error.
      const state: CaptureState = reportedState(progress, RUNNING);
      const running = RUNNING.has(state);

      const wal = await inspectSource(source);
      const lagBytes = wal.slot?.lagBytes ?? null;
      const lagSeconds =
        lagBytes === null
          ? null
          : lagBytes === 0
            ? 0
            : progress?.caught_up_at == null
              ? null
              : Math.max(0, (Date.now() - progress.caught_up_at.getTime()) / 1000);
      const snapshotDone = checkpoint !== undefined;
      const status: SourceStatus = {
        kind: 'postgres',
        source: source.name,
        slot: source.slot,
        publication: source.publication,
        streamId: source.streamId,
        state,
        running,
        slotExists: wal.reachable ? wal.slot !== undefined : null,
        slotActive: wal.slot?.active ?? null,
        slotProblem: wal.problem,
        confirmedLsn: wal.slot?.confirmedLsn ?? progress?.confirmed_lsn ?? null,
        checkpointLsn: checkpoint?.commitLsn ?? checkpoint?.startLsn ?? null,
        checkpointTime: checkpoint?.commitTime ?? null,
        transactions: checkpoint?.transactions ?? 0,
        lagBytes,
        lagSize: wal.sizes.lag,
        lagSeconds,
        retainedBytes: wal.slot?.retainedBytes ?? null,
        retainedSize: wal.sizes.retained,
        walStatus: wal.slot?.walStatus ?? null,
        safeWalSizeBytes: wal.slot?.safeWalSizeBytes ?? null,
        safeWalSize: wal.sizes.safe,
        snapshot: {
          done: snapshotDone,
          rows: checkpoint?.snapshotRows ?? 0,
          progress:
            !snapshotDone && progress?.snapshot_rows_done != null
              ? {
                  table: progress.snapshot_table,
                  rowsDone: Number(progress.snapshot_rows_done),
                  rowsTotal: Number(progress.snapshot_rows_total ?? 0),
                }
              : null,
        },
        incrementalSnapshots: await readSnapshotStatuses(options.db, source.name),
        lastError: progress?.last_error ?? null,
        lastErrorAt: progress?.last_error_at ?? null,
        updatedAt: progress?.updated_at ?? null,
        warnings: [],
      };
      status.warnings = warningsFor(status, source, wal);
      return status;
    }),
  );
}

interface SourceWal {
  reachable: boolean;
  slot: SlotInfo | undefined;
  problem: string | null;
  /** pg_size_pretty of lag, retained WAL, safe WAL size and the warning threshold. */
  sizes: { lag: string | null; retained: string | null; safe: string | null; threshold: string | null };
}

async function inspectSource(source: ResolvedSource): Promise<SourceWal> {
  const none = { lag: null, retained: null, safe: null, threshold: null };
  const client = connectSource(source, { applicationName: 'tributary-cdc-status' });
  client.on('error', () => {});
  try {
    await client.connect();
    const slot = await inspectSlot(client, source.slot);
    // Sizes as the source's own pg_size_pretty writes them, so they read like its docs and views.
    const { rows } = await client.query<SourceWal['sizes']>(
      `select pg_size_pretty($1::bigint) as lag, pg_size_pretty($2::bigint) as retained,
              pg_size_pretty($3::bigint) as safe, pg_size_pretty($4::bigint) as threshold`,
      [
        slot?.lagBytes ?? null,
        slot?.retainedBytes ?? null,
        slot?.safeWalSizeBytes ?? null,
        source.retainedWalWarningBytes,
      ],
    );
    return { reachable: true, slot, problem: slot?.problem ?? null, sizes: rows[0] ?? none };
  } catch (error) {
    return {
      reachable: false,
      slot: undefined,
      problem: `source unreachable: ${(error as Error).message}`,
      sizes: none,
    };
  } finally {
    await client.end().catch(() => {});
  }
}

function warningsFor(status: SourceStatus, source: ResolvedSource, wal: SourceWal): string[] {
  const warnings: string[] = [];
  const slot = wal.slot;
  if (slot === undefined) return warnings;
  const threshold = source.retainedWalWarningBytes;
  if (!status.running && threshold > 0 && (slot.retainedBytes ?? 0) > threshold) {
    warnings.push(
      `Capture is not running and slot '${slot.name}' holds ${wal.sizes.retained} of WAL on the source (warning threshold ${wal.sizes.threshold}): the source cannot remove it, and it grows, until capture resumes. Start the capture, or run \`tributary cdc drop ${source.name} --yes\` if this source is retired.`,
    );
  }
  if (slot.walStatus === 'unreserved') {
    warnings.push(
      `Slot '${slot.name}' holds more WAL than max_slot_wal_keep_size lets the source keep (wal_status unreserved): the source will invalidate it at its next checkpoint unless capture catches up, and a new snapshot will be needed.`,
    );
  }
  if (!status.running && slot.active) {
    warnings.push(
      `Slot '${slot.name}' is being read by process ${slot.activePid ?? '?'} on the source, but no capture of this log is running: another deployment or client may be reading it.`,
    );
  }
  return warnings;
}
