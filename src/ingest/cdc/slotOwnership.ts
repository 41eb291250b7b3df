import type pg from 'pg';
import { type Queryable, quoteIdentifier } from '../../db/index.js';
import type { Checkpoint } from './checkpoints.js';
import { compareLsn, type Lsn } from './lsn.js';
import type { SlotInfo, SourceServer } from './sourceSetup.js';
import type { ResolvedSource } from './types.js';

/** What this log recorded about the slot and publication it uses for one source. */
export interface SlotClaim {
  source: string;
  slotName: string;
  publicationName: string;
  publicationCreated: boolean;
  sourceSystemId: string | null;
  sourceDatabase: string;
  /** The source's WAL position just before the slot was asked for (null before that). */
  requestedLsn: Lsn | null;
  /** The slot's consistent point (null until the slot exists). */
  createdLsn: Lsn | null;
}

export async function readSlotClaim(db: Queryable, source: string): Promise<SlotClaim | undefined> {
  const { rows } = await db.query<{
    slot_name: string;
    publication_name: string;
    publication_created: boolean;
    source_system_id: string | null;
    source_database: string;
    requested_lsn: string | null;
    created_lsn: string | null;
  }>(
    `select slot_name, publication_name, publication_created, source_system_id, source_database,
            requested_lsn::text, created_lsn::text
       from tributary.cdc_slots where source = $1`,
    [source],
  );
  const row = rows[0];
  if (row === undefined) return undefined;
  return {
    source,
    slotName: row.slot_name,
    publicationName: row.publication_name,
    publicationCreated: row.publication_created,
    sourceSystemId: row.source_system_id,
    sourceDatabase: row.source_database,
    requestedLsn: row.requested_lsn,
    createdLsn: row.created_lsn,
  };
}

/**
 * Records the names a source uses, before anything is created on the source. A row already
 * there (another process of this deployment, or an earlier run) is kept as it is.
 */
export async function claimNames(
  db: Queryable,
  source: ResolvedSource,
  server: SourceServer,
  createdLsn: Lsn | null = null,
): Promise<SlotClaim> {
  await db.query(
    `insert into tributary.cdc_slots (source, slot_name, publication_name, source_system_id, source_database, created_lsn)
     values ($1, $2, $3, $4, $5, $6::pg_lsn)
     on conflict (source) do nothing`,
    [source.name, source.slot, source.publication, server.systemId, server.database, createdLsn],
  );
  return (await readSlotClaim(db, source.name))!;
}

export async function notePublicationCreated(db: Queryable, source: string): Promise<void> {
  await db.query('update tributary.cdc_slots set publication_created = true where source = $1', [source]);
}

/**
 * Creates the slot over a replication connection, recording first where the source's WAL
 * stood and then the slot's consistent point: the two facts that later tell this slot
 * from another one of the same name.
 */
export async function createOwnSlot(options: {
  db: Queryable;
  source: ResolvedSource;
  server: SourceServer;
  /** A plain connection to the source. */
  client: Pick<pg.Client, 'query'>;
  /** A replication connection to the source (replication: 'database'). */
  replication: Pick<pg.Client, 'query'>;
  snapshot: 'export' | 'nothing';
}): Promise<{ consistentPoint: Lsn; snapshotName: string | null }> {
  const { db, source, server, client, replication, snapshot } = options;
  const { rows: walRows } = await client.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn');
  await db.query(
    `update tributary.cdc_slots
        set slot_name = $2, source_system_id = $3, source_database = $4, requested_lsn = $5::pg_lsn,
            created_lsn = null, created_at = now()
      where source = $1`,
    [source.name, source.slot, server.systemId, server.database, walRows[0]!.lsn],
  );
  const { rows } = await replication.query<{ consistent_point: string; snapshot_name: string | null }>(
    createSlotCommand(server.version, source.slot, snapshot),
  );
  const consistentPoint = rows[0]!.consistent_point;
  await db.query('update tributary.cdc_slots set created_lsn = $2::pg_lsn where source = $1', [
    source.name,
    consistentPoint,
  ]);
  return { consistentPoint, snapshotName: rows[0]!.snapshot_name };
}

/**
 * The replication command that creates a logical slot for pgoutput. PostgreSQL 15 took the
 * options into parentheses; 13 and 14 know only the bare keywords (which 15 to 18 still accept).
 */
export function createSlotCommand(
  serverVersion: number,
  slot: string,
  snapshot: 'export' | 'nothing',
): string {
  const head = `CREATE_REPLICATION_SLOT ${quoteIdentifier(slot)} LOGICAL pgoutput`;
  if (serverVersion >= 150000) return `${head} (SNAPSHOT '${snapshot}')`;
  return `${head} ${snapshot === 'export' ? 'EXPORT_SNAPSHOT' : 'NOEXPORT_SNAPSHOT'}`;
}

export type Ownership = { owned: true } | { owned: false; reason: string };

/**
 * Whether the slot on the source is the one this log created and is the only reader of.
 * With a checkpoint, the slot must not have been confirmed past what this log recorded
 * as confirmable (it always records before it confirms): a slot further on was read by
 * someone else, or is a new slot of the same name, and the changes in between are not in
 * this log. Without a checkpoint (a snapshot was interrupted), the slot must sit exactly
 * where this log created it.
 */
export function judgeSlot(options: {
  slot: SlotInfo;
  server: SourceServer;
  claim: SlotClaim | undefined;
  checkpoint: Checkpoint | undefined;
}): Ownership {
  const { slot, server, claim, checkpoint } = options;
  if (slot.database !== server.database) {
    return { owned: false, reason: `belongs to another database of that server ('${slot.database ?? '-'}')` };
  }
  if (slot.plugin !== 'pgoutput') {
    return { owned: false, reason: `is not a pgoutput slot (plugin '${slot.plugin ?? 'none: physical'}')` };
  }
  if (claim?.sourceSystemId != null && server.systemId !== null && claim.sourceSystemId !== server.systemId) {
    return {
      owned: false,
      reason: `was created by this log on another PostgreSQL cluster (system identifier ${claim.sourceSystemId}; the source is now ${server.systemId})`,
    };
  }
  const confirmed = slot.confirmedLsn;
  if (checkpoint !== undefined) {
    // A checkpoint written before the confirmable position was recorded: nothing to hold the slot to.
    if (checkpoint.confirmedLsn === null) return { owned: true };
    const reach = latest([checkpoint.confirmedLsn, checkpoint.endLsn, checkpoint.startLsn]);
    if (confirmed !== null && compareLsn(confirmed, reach) > 0) {
      return {
        owned: false,
        reason: `has been read past this log's checkpoint (the slot is confirmed up to ${confirmed}; this log holds everything up to ${reach}): another deployment or client consumed it, or dropped it and created a new slot of the same name`,
      };
    }
    return { owned: true };
  }
  if (claim === undefined || claim.slotName !== slot.name) {
    return { owned: false, reason: 'already exists on the source, and this log did not create it' };
  }
  if (claim.createdLsn !== null) {
    return confirmed !== null && compareLsn(confirmed, claim.createdLsn) === 0
      ? { owned: true }
      : {
          owned: false,
          reason: `is not the slot this log created (that one began at ${claim.createdLsn}; this one is at ${confirmed ?? '-'})`,
        };
  }
  // Interrupted between creating the slot and recording where: ours if it began after we asked.
  if (claim.requestedLsn !== null && confirmed !== null && compareLsn(confirmed, claim.requestedLsn) >= 0) {
    return { owned: true };
  }
  return { owned: false, reason: 'already exists on the source, and this log did not create it' };
}

function latest(lsns: Array<Lsn | null>): Lsn {
  return lsns.reduce<Lsn>((a, b) => (b !== null && compareLsn(b, a) > 0 ? b : a), '0/0');
}
