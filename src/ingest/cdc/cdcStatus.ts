import type { Queryable } from '../../db/index.js';
import { readCheckpoint } from './checkpoints.js';
import { resolveSources } from './resolveSources.js';
import { connectSource, inspectSlot } from './sourceSetup.js';
import type { CaptureState, CdcSourcesConfig, SourceStatus } from './types.js';

/** A capture that has not reported for this long is taken to be not running. */
const STALE_MS = 15_000;

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
  const sources = resolveSources(options.sources);
  return Promise.all(
    sources.map(async (source): Promise<SourceStatus> => {
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
      let state: CaptureState = (progress?.state as CaptureState | undefined) ?? 'not running';
      if (progress && progress.age_ms > STALE_MS && state !== 'failed') state = 'not running';

      let slotExists: boolean | null = null;
      let slotProblem: string | null = null;
      let confirmedLsn: string | null = progress?.confirmed_lsn ?? null;
      let lagBytes: number | null = null;
      const client = connectSource(source, { applicationName: 'tributary-cdc-status' });
      client.on('error', () => {});
      try {
        await client.connect();
        const slot = await inspectSlot(client, source.slot);
        slotExists = slot !== undefined;
        slotProblem = slot?.problem ?? null;
        if (slot?.confirmedLsn) {
          confirmedLsn = slot.confirmedLsn;
          const { rows: lag } = await client.query<{ lag: string }>(
            'select greatest(0, pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn))::bigint as lag',
            [slot.confirmedLsn],
          );
          lagBytes = Number(lag[0]!.lag);
        }
      } catch (error) {
        slotProblem = `source unreachable: ${(error as Error).message}`;
      } finally {
        await client.end().catch(() => {});
      }
      const lagSeconds =
        lagBytes === null
          ? null
          : lagBytes === 0 || progress?.caught_up_at == null
            ? lagBytes === 0
              ? 0
              : null
            : Math.max(0, (Date.now() - progress.caught_up_at.getTime()) / 1000);
      const snapshotDone = checkpoint !== undefined;
      return {
        source: source.name,
        slot: source.slot,
        publication: source.publication,
        streamId: source.streamId,
        state,
        slotExists,
        slotProblem,
        confirmedLsn,
        checkpointLsn: checkpoint?.commitLsn ?? checkpoint?.startLsn ?? null,
        checkpointTime: checkpoint?.commitTime ?? null,
        transactions: checkpoint?.transactions ?? 0,
        lagBytes,
        lagSeconds,
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
        lastError: progress?.last_error ?? null,
        lastErrorAt: progress?.last_error_at ?? null,
        updatedAt: progress?.updated_at ?? null,
      };
    }),
  );
}
