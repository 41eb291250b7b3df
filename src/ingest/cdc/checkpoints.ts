import type { Queryable } from '../../db/index.js';
import type { Lsn } from './lsn.js';
import type { CaptureState } from './types.js';

/** Where the log stands for one source; written only in the transaction that appends its changes. */
export interface Checkpoint {
  source: string;
  slotName: string;
  publicationName: string;
  streamId: string;
  startLsn: Lsn;
  snapshotRows: number;
  commitLsn: Lsn | null;
  endLsn: Lsn | null;
  commitTime: Date | null;
  transactions: number;
  /**
   * The furthest position this log allowed the slot to be confirmed to (recorded before the
   * slot is told); null in checkpoints written before Tributary recorded it.
   */
  confirmedLsn: Lsn | null;
}

export async function readCheckpoint(db: Queryable, source: string): Promise<Checkpoint | undefined> {
  const { rows } = await db.query<{
    source: string;
    slot_name: string;
    publication_name: string;
    stream_id: string;
    start_lsn: string;
    snapshot_rows: string;
    commit_lsn: string | null;
    end_lsn: string | null;
    commit_time: Date | null;
    transactions: string;
    confirmed_lsn: string | null;
  }>(
    `select source, slot_name, publication_name, stream_id, start_lsn::text, snapshot_rows, commit_lsn::text,
            end_lsn::text, commit_time, transactions, confirmed_lsn::text
       from tributary.cdc_checkpoints where source = $1`,
    [source],
  );
  const row = rows[0];
  if (row === undefined) return undefined;
  return {
    source: row.source,
    slotName: row.slot_name,
    publicationName: row.publication_name,
    streamId: row.stream_id,
    startLsn: row.start_lsn,
    snapshotRows: Number(row.snapshot_rows),
    commitLsn: row.commit_lsn,
    endLsn: row.end_lsn,
    commitTime: row.commit_time,
    transactions: Number(row.transactions),
    confirmedLsn: row.confirmed_lsn,
  };
}

/** Records a finished snapshot (or a slot created without one): streaming starts at `startLsn`. */
export async function insertCheckpoint(
  db: Queryable,
  checkpoint: Pick<
    Checkpoint,
    'source' | 'slotName' | 'publicationName' | 'streamId' | 'startLsn' | 'snapshotRows'
  >,
): Promise<void> {
  await db.query(
    `insert into tributary.cdc_checkpoints (source, slot_name, publication_name, stream_id, start_lsn, snapshot_rows,
        confirmed_lsn)
     values ($1, $2, $3, $4, $5::pg_lsn, $6, $5::pg_lsn)`,
    [
      checkpoint.source,
      checkpoint.slotName,
      checkpoint.publicationName,
      checkpoint.streamId,
      checkpoint.startLsn,
      checkpoint.snapshotRows,
    ],
  );
}

/** Moves the checkpoint to the last source transaction of a log transaction, inside it. */
export async function advanceCheckpoint(
  db: Queryable,
  source: string,
  last: { commitLsn: Lsn; endLsn: Lsn; commitTime: Date },
  transactions: number,
): Promise<void> {
  const { rowCount } = await db.query(
    `update tributary.cdc_checkpoints
        set commit_lsn = $2::pg_lsn, end_lsn = $3::pg_lsn, commit_time = $4,
            transactions = transactions + $5, confirmed_lsn = greatest(confirmed_lsn, $3::pg_lsn),
            updated_at = now()
      where source = $1 and (commit_lsn is null or commit_lsn < $2::pg_lsn)`,
    [source, last.commitLsn, last.endLsn, last.commitTime, transactions],
  );
  if (rowCount !== 1) {
    // Another process captured the same transactions first: roll back rather than double them.
    throw new Error(`checkpoint of source '${source}' moved concurrently past ${last.commitLsn}`);
  }
}

/**
 * Records that the slot may be confirmed up to `lsn` although no captured transaction ends
 * there (the transactions in between had nothing for this log). Called before the slot is
 * told, so the slot is never confirmed beyond what the log records.
 */
export async function recordConfirmable(db: Queryable, source: string, lsn: Lsn): Promise<void> {
  await db.query(
    `update tributary.cdc_checkpoints set confirmed_lsn = $2::pg_lsn
      where source = $1 and (confirmed_lsn is null or confirmed_lsn < $2::pg_lsn)`,
    [source, lsn],
  );
}

/** Forgets everything this log knows of a source's capture: checkpoint, progress, slot and names. */
export async function deleteCheckpoint(db: Queryable, source: string): Promise<void> {
  await db.query('delete from tributary.cdc_checkpoints where source = $1', [source]);
  await db.query('delete from tributary.cdc_progress where source = $1', [source]);
  await db.query('delete from tributary.cdc_slots where source = $1', [source]);
  await db.query('delete from tributary.cdc_tables where source = $1', [source]);
  await db.query('delete from tributary.cdc_snapshots where source = $1', [source]);
}

export interface ProgressUpdate {
  state: CaptureState;
  slotName: string;
  snapshotTable?: string | null;
  snapshotRowsDone?: number | null;
  snapshotRowsTotal?: number | null;
  confirmedLsn?: Lsn | null;
  caughtUpAt?: Date | null;
  lastError?: string | null;
}

/** Best-effort report of the running capture, outside any log transaction. */
export async function writeProgress(db: Queryable, source: string, update: ProgressUpdate): Promise<void> {
  await db.query(
    `insert into tributary.cdc_progress as p (source, state, slot_name, snapshot_table, snapshot_rows_done,
        snapshot_rows_total, confirmed_lsn, caught_up_at, last_error, last_error_at, updated_at)
     values ($1, $2, $3, $4, $5, $6, $7::pg_lsn, $8, $9, case when $9::text is null then null else now() end, now())
     on conflict (source) do update set
       state = excluded.state,
       slot_name = excluded.slot_name,
       snapshot_table = coalesce(excluded.snapshot_table, p.snapshot_table),
       snapshot_rows_done = coalesce(excluded.snapshot_rows_done, p.snapshot_rows_done),
       snapshot_rows_total = coalesce(excluded.snapshot_rows_total, p.snapshot_rows_total),
       confirmed_lsn = coalesce(excluded.confirmed_lsn, p.confirmed_lsn),
       caught_up_at = coalesce(excluded.caught_up_at, p.caught_up_at),
       last_error = case when $10 then excluded.last_error else p.last_error end,
       last_error_at = case when $10 then excluded.last_error_at else p.last_error_at end,
       updated_at = now()`,
    [
      source,
      update.state,
      update.slotName,
      update.snapshotTable ?? null,
      update.snapshotRowsDone ?? null,
      update.snapshotRowsTotal ?? null,
      update.confirmedLsn ?? null,
      update.caughtUpAt ?? null,
      update.lastError ?? null,
      update.lastError !== undefined,
    ],
  );
}
