import pg from 'pg';
import { quoteIdentifier } from '../../db/index.js';
import type { Logger } from '../../logger.js';
import { CdcSourceError } from './errors.js';
import type { Lsn } from './lsn.js';
import type { ResolvedSource, SourceSettings, TableName } from './types.js';

/** Session settings every connection to a source uses: value conversion relies on them. */
export const SOURCE_SESSION_OPTIONS =
  '-c TimeZone=UTC -c DateStyle=ISO -c bytea_output=hex -c extra_float_digits=3';

export function connectSource(
  source: Pick<SourceSettings, 'url'>,
  { replication = false, applicationName = 'tributary-cdc' } = {},
): pg.Client {
  const client = new pg.Client({
    connectionString: source.url,
    application_name: applicationName,
    options: SOURCE_SESSION_OPTIONS,
    ...(replication ? { replication: 'database' } : {}),
  } as pg.ClientConfig);
  return client;
}

export interface TableInfo extends TableName {
  oid: number;
  /** Primary key columns, else the replica identity index's; empty with REPLICA IDENTITY FULL and no key. */
  keyColumns: string[];
}

const qualifiedName = (t: TableName) => `${t.schema}.${t.table}`;

/** Checks wal_level and every table: it exists and can be captured (a key or a replica identity). */
export async function checkSourceTables(client: pg.Client, source: SourceSettings): Promise<TableInfo[]> {
  const { rows: walRows } = await client.query<{ wal_level: string }>('show wal_level');
  if (walRows[0]?.wal_level !== 'logical') {
    throw new CdcSourceError(source.name, `wal_level is '${walRows[0]?.wal_level}', not 'logical'.`, {
      hint: "Run `ALTER SYSTEM SET wal_level = 'logical'` on the source server and restart it.",
    });
  }
  const infos: TableInfo[] = [];
  for (const table of source.tables) {
    const { rows } = await client.query<{ oid: number; relreplident: string; relkind: string }>(
      `select c.oid::int as oid, c.relreplident, c.relkind
         from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = $1 and c.relname = $2`,
      [table.schema, table.table],
    );
    const row = rows[0];
    if (row === undefined || (row.relkind !== 'r' && row.relkind !== 'p')) {
      throw new CdcSourceError(source.name, `table ${qualifiedName(table)} does not exist on the source.`, {
        hint: 'Create it, or remove it from `tables` in tributary.config.ts.',
      });
    }
    const keyColumns = async (condition: string) =>
      (
        await client.query<{ name: string }>(
          `select a.attname as name
             from pg_index i
             join lateral unnest(i.indkey) with ordinality as k(attnum, ord) on true
             join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
            where i.indrelid = $1 and ${condition}
            order by k.ord`,
          [row.oid],
        )
      ).rows.map((r) => r.name);
    const primaryKey = await keyColumns('i.indisprimary');
    const identityIndex = row.relreplident === 'i' ? await keyColumns('i.indisreplident') : [];
    const capturable =
      row.relreplident === 'f' ||
      (row.relreplident === 'd' && primaryKey.length > 0) ||
      (row.relreplident === 'i' && identityIndex.length > 0);
    if (!capturable) {
      const name = `${quoteIdentifier(table.schema)}.${quoteIdentifier(table.table)}`;
      throw new CdcSourceError(
        source.name,
        `table ${qualifiedName(table)} has no primary key and no replica identity, so its updates and deletes cannot be captured.`,
        {
          hint: `Add a primary key (ALTER TABLE ${name} ADD PRIMARY KEY (...)), or run ALTER TABLE ${name} REPLICA IDENTITY FULL.`,
        },
      );
    }
    infos.push({
      ...table,
      oid: row.oid,
      keyColumns: primaryKey.length > 0 ? primaryKey : identityIndex,
    });
  }
  return infos;
}

/**
 * Checks every outbox table: it exists and has the configured columns. An outbox needs no key:
 * only its inserts are captured.
 */
export async function checkOutboxTables(client: pg.Client, source: SourceSettings): Promise<void> {
  for (const outbox of source.outbox) {
    const { rows } = await client.query<{ name: string }>(
      `select a.attname as name
         from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = $1 and c.relname = $2 and c.relkind in ('r', 'p') and a.attnum > 0 and not a.attisdropped`,
      [outbox.schema, outbox.table],
    );
    if (rows.length === 0) {
      throw new CdcSourceError(
        source.name,
        `outbox table ${qualifiedName(outbox)} does not exist on the source.`,
        {
          hint: 'Create it, or remove it from `outbox` in tributary.config.ts.',
        },
      );
    }
    const have = new Set(rows.map((r) => r.name));
    const missing = Object.entries(outbox.columns).filter(
      (entry): entry is [string, string] => entry[1] !== null && !have.has(entry[1]),
    );
    if (missing.length > 0) {
      throw new CdcSourceError(
        source.name,
        `outbox table ${qualifiedName(outbox)} has no column ${missing.map(([field, column]) => `'${column}' (outbox.${field})`).join(', ')}.`,
        { hint: `Its columns are ${[...have].join(', ')}: name those in sources.${source.name}.outbox.` },
      );
    }
  }
}

/** The oldest source version capture supports (wal_status in pg_replication_slots came with 13). */
const MIN_SOURCE_VERSION = 130000;

/** The source server as capture needs to know it. */
export interface SourceServer {
  /** server_version_num, e.g. 150004. */
  version: number;
  /** pg_control_system().system_identifier, or null where the role may not read it. */
  systemId: string | null;
  database: string;
}

/** Reads the source's version, cluster and database; refuses a server older than 13. */
export async function describeSourceServer(client: pg.Client, source: string): Promise<SourceServer> {
  const { rows } = await client.query<{ version: number; version_text: string; database: string }>(
    `select current_setting('server_version_num')::int as version, current_setting('server_version') as version_text,
            current_database() as database`,
  );
  const row = rows[0]!;
  if (row.version < MIN_SOURCE_VERSION) {
    throw new CdcSourceError(
      source,
      `the source runs PostgreSQL ${row.version_text}; capture needs PostgreSQL 13 or later.`,
      { hint: 'Upgrade the source server, or capture from a newer one.' },
    );
  }
  let systemId: string | null = null;
  try {
    const { rows: control } = await client.query<{ id: string }>(
      'select system_identifier::text as id from pg_control_system()',
    );
    systemId = control[0]?.id ?? null;
  } catch {
    // Revoked on some managed services: the slot is then told apart by its position alone.
  }
  return { version: row.version, systemId, database: row.database };
}

/**
 * Creates the publication, or adds the configured tables it lacks. Tables it has beyond them stay.
 * Returns whether it created the publication.
 */
export async function ensurePublication(
  client: pg.Client,
  source: ResolvedSource,
  logger: Logger,
  extra: readonly TableName[] = [],
): Promise<boolean> {
  const name = quoteIdentifier(source.publication);
  const published = [...source.tables, ...source.outbox, ...extra];
  const list = (tables: TableName[]) =>
    tables.map((t) => `${quoteIdentifier(t.schema)}.${quoteIdentifier(t.table)}`).join(', ');
  const { rows } = await client.query<{
    puballtables: boolean;
    pubinsert: boolean;
    pubupdate: boolean;
    pubdelete: boolean;
    pubtruncate: boolean;
  }>(
    'select puballtables, pubinsert, pubupdate, pubdelete, pubtruncate from pg_publication where pubname = $1',
    [source.publication],
  );
  const publication = rows[0];
  if (publication === undefined) {
    await client.query(`create publication ${name} for table ${list(published)}`);
    logger.info('publication created', { publication: source.publication });
    return true;
  }
  if (
    !publication.pubinsert ||
    !publication.pubupdate ||
    !publication.pubdelete ||
    !publication.pubtruncate
  ) {
    throw new CdcSourceError(
      source.name,
      `publication '${source.publication}' does not publish every operation.`,
      {
        hint: `Run ALTER PUBLICATION ${name} SET (publish = 'insert, update, delete, truncate') on the source.`,
      },
    );
  }
  if (publication.puballtables) return false;
  const { rows: present } = await client.query<{ schemaname: string; tablename: string }>(
    'select schemaname, tablename from pg_publication_tables where pubname = $1',
    [source.publication],
  );
  const have = new Set(present.map((r) => `${r.schemaname}.${r.tablename}`));
  const missing = published.filter((t) => !have.has(qualifiedName(t)));
  if (missing.length > 0) {
    await client.query(`alter publication ${name} add table ${list(missing)}`);
    logger.warn('publication lacked configured tables: added them', {
      publication: source.publication,
      tables: missing.map(qualifiedName),
    });
  }
  return false;
}

export interface SlotInfo {
  name: string;
  active: boolean;
  activePid: number | null;
  plugin: string | null;
  database: string | null;
  confirmedLsn: Lsn | null;
  /** Why the server will not stream from this slot any more, or null when it is usable. */
  problem: string | null;
  /** reserved, extended, unreserved or lost (pg_replication_slots.wal_status). */
  walStatus: string | null;
  /** Source WAL written since confirmed_flush_lsn: what capture has yet to read. */
  lagBytes: number | null;
  /** Source WAL the slot holds, from restart_lsn. */
  retainedBytes: number | null;
  /** WAL that may be written before the slot is invalidated; null without max_slot_wal_keep_size. */
  safeWalSizeBytes: number | null;
}

export async function inspectSlot(client: pg.Client, slot: string): Promise<SlotInfo | undefined> {
  const { rows } = await client.query<{
    active: boolean;
    active_pid: number | null;
    plugin: string | null;
    database: string | null;
    confirmed: string | null;
    wal_status: string | null;
    reason: string | null;
    lag: string | null;
    retained: string | null;
    safe: string | null;
  }>(
    `select active, active_pid, plugin, database, confirmed_flush_lsn::text as confirmed, wal_status,
            ${(await hasInvalidationReason(client)) ? 'invalidation_reason' : 'null'} as reason,
            greatest(0, pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn))::bigint as lag,
            greatest(0, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn))::bigint as retained,
            safe_wal_size as safe
       from pg_replication_slots where slot_name = $1`,
    [slot],
  );
  const row = rows[0];
  if (row === undefined) return undefined;
  const problem =
    row.reason !== null
      ? `was invalidated by the server (${row.reason})`
      : row.wal_status === 'lost'
        ? 'was invalidated by the server (the WAL it needs was removed)'
        : null;
  const bytes = (value: string | null) => (value === null ? null : Number(value));
  return {
    name: slot,
    active: row.active,
    activePid: row.active_pid,
    plugin: row.plugin,
    database: row.database,
    confirmedLsn: row.confirmed,
    problem,
    walStatus: row.wal_status,
    lagBytes: bytes(row.lag),
    retainedBytes: bytes(row.retained),
    safeWalSizeBytes: bytes(row.safe),
  };
}

async function hasInvalidationReason(client: pg.Client): Promise<boolean> {
  const { rows } = await client.query<{ version: number }>(
    "select current_setting('server_version_num')::int as version",
  );
  return (rows[0]?.version ?? 0) >= 170000;
}

/** Drops the slot, terminating a walsender that still holds it. */
export async function dropSlot(client: pg.Client, slot: string): Promise<boolean> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const info = await inspectSlot(client, slot);
    if (info === undefined) return false;
    if (info.active && info.activePid !== null) {
      await client.query('select pg_terminate_backend($1)', [info.activePid]);
    }
    try {
      await client.query('select pg_drop_replication_slot($1)', [slot]);
      return true;
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code === '42704') return false; // gone meanwhile
      if (code !== '55006') throw error; // still active: the terminated walsender has not exited yet
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  throw new Error(`replication slot '${slot}' stays active; stop the process that uses it`);
}
