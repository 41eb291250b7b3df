import type { Queryable } from '../../db/index.js';
import type { EsdbPosition, EventStoreDbCaptureState } from './types.js';

/** Where the log stands in one source's `$all`; written only with the events it covers. */
export interface EsdbCheckpoint {
  source: string;
  position: EsdbPosition;
  lastEventId: string | null;
  events: number;
  lastEventTime: Date | null;
}

export async function readEsdbCheckpoint(db: Queryable, source: string): Promise<EsdbCheckpoint | undefined> {
  const { rows } = await db.query<{
    commit_position: string;
    prepare_position: string;
    last_event_id: string | null;
    events: string;
    last_event_time: Date | null;
  }>(
    `select commit_position::text, prepare_position::text, last_event_id, events, last_event_time
       from tributary.esdb_checkpoints where source = $1`,
    [source],
  );
  const row = rows[0];
  if (row === undefined) return undefined;
  return {
    source,
    position: { commit: BigInt(row.commit_position), prepare: BigInt(row.prepare_position) },
    lastEventId: row.last_event_id,
    events: Number(row.events),
    lastEventTime: row.last_event_time,
  };
}

/**
 * Moves the checkpoint from `from` (undefined: none yet) to `to`, inside the transaction that
 * appends the events up to `to`. Refuses (throws) when another process moved it meanwhile,
 * so that the transaction rolls back rather than append the same events twice.
 */
export async function advanceEsdbCheckpoint(
  db: Queryable,
  source: string,
  from: EsdbPosition | undefined,
  to: { position: EsdbPosition; lastEventId: string | null; events: number; lastEventTime: Date | null },
): Promise<void> {
  const values = [
    source,
    to.position.commit.toString(),
    to.position.prepare.toString(),
    to.lastEventId,
    to.events,
    to.lastEventTime,
  ];
  const { rowCount } =
    from === undefined
      ? await db.query(
          `insert into tributary.esdb_checkpoints (source, commit_position, prepare_position, last_event_id, events, last_event_time)
           values ($1, $2, $3, $4, $5, $6) on conflict (source) do nothing`,
          values,
        )
      : await db.query(
          `update tributary.esdb_checkpoints
              set commit_position = $2, prepare_position = $3, last_event_id = coalesce($4, last_event_id),
                  events = events + $5, last_event_time = coalesce($6, last_event_time), updated_at = now()
            where source = $1 and commit_position = $7 and prepare_position = $8`,
          [...values, from.commit.toString(), from.prepare.toString()],
        );
  if (rowCount !== 1) {
    throw new Error(`checkpoint of source '${source}' moved concurrently`);
  }
}

export interface EsdbProgressUpdate {
  state: EventStoreDbCaptureState;
  server: string;
  caughtUpAt?: Date | null;
  lastError?: string | null;
}

/** Best-effort report of the running capture, outside any log transaction. */
export async function writeEsdbProgress(
  db: Queryable,
  source: string,
  update: EsdbProgressUpdate,
): Promise<void> {
  await db.query(
    `insert into tributary.esdb_progress as p (source, state, server, caught_up_at, last_error, last_error_at, updated_at)
     values ($1, $2, $3, $4, $5, case when $5::text is null then null else now() end, now())
     on conflict (source) do update set
       state = excluded.state, server = excluded.server,
       caught_up_at = coalesce(excluded.caught_up_at, p.caught_up_at),
       last_error = case when $6 then excluded.last_error else p.last_error end,
       last_error_at = case when $6 then excluded.last_error_at else p.last_error_at end,
       updated_at = now()`,
    [
      source,
      update.state,
      update.server,
      update.caughtUpAt ?? null,
      update.lastError ?? null,
      update.lastError !== undefined,
    ],
  );
}
