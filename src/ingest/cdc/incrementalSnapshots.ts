import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { type Pool, type Queryable, quoteIdentifier } from '../../db/index.js';
import { NotFoundError, ValidationError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import { sleep } from '../../sleep.js';
import { describeRelation, type TypeResolver } from './changeEvents.js';
import { resolveSources } from './resolveSources.js';
import { type ChunkOutput, type SnapshotWindows, WATERMARK_PREFIX } from './snapshotWindows.js';
import { connectSource, ensurePublication, type TableInfo } from './sourceSetup.js';
import type { CdcSourcesConfig, ResolvedSource, SourceSettings, TableName } from './types.js';

export type IncrementalSnapshotState = 'requested' | 'running' | 'done' | 'cancelled' | 'failed';

/** One table's incremental snapshot, as `cdc status` shows it. */
export interface IncrementalSnapshotStatus {
  id: number;
  table: string;
  state: IncrementalSnapshotState;
  /** `added`: the table was added to `tables`; `requested`: `tributary cdc snapshot`. */
  reason: 'added' | 'requested';
  chunks: number;
  rowsRead: number;
  /** Rows appended: those read minus those a streamed change of the same key made stale. */
  rowsWritten: number;
  /** Estimate from the planner statistics when the snapshot started. */
  rowsTotal: number | null;
  lastError: string | null;
  requestedAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
}

/** What the running capture reports of the snapshot it is taking. */
export interface IncrementalProgress {
  id: number;
  table: string;
  rowsRead: number;
  rowsTotal: number | null;
}

const qualified = (table: TableName) => `${table.schema}.${table.table}`;

/**
 * Asks for an incremental snapshot of each table (all the source's tables when none is named).
 * A table with a snapshot already requested or running keeps that one. Returns the snapshots'
 * ids; the running capture takes them in order.
 */
export async function requestSnapshots(
  db: Pool,
  source: SourceSettings,
  tables: readonly string[],
  reason: 'added' | 'requested' = 'requested',
): Promise<number[]> {
  const configured = source.tables.map(qualified);
  const wanted = tables.length === 0 ? configured : [...new Set(tables)];
  for (const table of wanted) {
    if (!configured.includes(table)) {
      throw new ValidationError(
        `Table '${table}' is not captured by source '${source.name}' (its tables: ${configured.join(', ') || 'none'}).`,
        {
          field: 'table',
          hint: `Add it to sources.${source.name}.tables first (capture then back-fills it by itself), or name one of those tables.`,
        },
      );
    }
  }
  const client = await db.connect();
  try {
    await client.query('begin');
    // One request at a time per source: concurrent requests for the same table make one snapshot.
    await client.query('select pg_advisory_xact_lock($1, hashtext($2))', [SNAPSHOT_LOCK_CLASS, source.name]);
    const ids: number[] = [];
    for (const table of wanted) {
      const { rows: open } = await client.query<{ id: string }>(
        `select id from tributary.cdc_snapshots
          where source = $1 and table_name = $2 and state in ('requested', 'running') order by id limit 1`,
        [source.name, table],
      );
      if (open[0] !== undefined) {
        ids.push(Number(open[0].id));
        continue;
      }
      const { rows } = await client.query<{ id: string }>(
        `insert into tributary.cdc_snapshots (source, table_name, reason) values ($1, $2, $3) returning id`,
        [source.name, table, reason],
      );
      ids.push(Number(rows[0]!.id));
    }
    await client.query('commit');
    return ids;
  } catch (error) {
    await client.query('rollback').catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

const SNAPSHOT_LOCK_CLASS = 0x54524953;

/** The configured PostgreSQL source of that name, or a NotFoundError saying which there are. */
export function findSource(sources: CdcSourcesConfig | undefined, name: string): SourceSettings {
  const all = resolveSources(sources);
  const source = all.find((s) => s.name === name);
  if (source === undefined) {
    throw new NotFoundError(
      'PostgreSQL source',
      name,
      `Name one of the PostgreSQL sources under \`sources\` in tributary.config.ts (${all.map((s) => s.name).join(', ') || 'none configured'}).`,
    );
  }
  return source;
}

/** Cancels the source's requested and running snapshots (of the named tables, or all); returns how many. */
export async function cancelSnapshots(
  db: Queryable,
  source: string,
  tables: readonly string[],
): Promise<number> {
  const { rowCount } = await db.query(
    `update tributary.cdc_snapshots set state = 'cancelled', finished_at = now(), updated_at = now()
      where source = $1 and state in ('requested', 'running') and (cardinality($2::text[]) = 0 or table_name = any ($2))`,
    [source, tables],
  );
  return rowCount ?? 0;
}

export async function readSnapshotStatuses(
  db: Queryable,
  source: string,
  ids?: readonly number[],
): Promise<IncrementalSnapshotStatus[]> {
  const { rows } = await db.query<{
    id: string;
    table_name: string;
    state: IncrementalSnapshotState;
    reason: 'added' | 'requested';
    chunks: string;
    rows_read: string;
    rows_written: string;
    rows_total: string | null;
    last_error: string | null;
    requested_at: Date;
    started_at: Date | null;
    finished_at: Date | null;
  }>(
    ids === undefined
      ? // The open ones, and the latest finished ones.
        `(select * from tributary.cdc_snapshots where source = $1 and state in ('requested', 'running'))
         union all
         (select * from tributary.cdc_snapshots where source = $1 and state not in ('requested', 'running')
           order by id desc limit 5)
         order by id`
      : 'select * from tributary.cdc_snapshots where source = $1 and id = any ($2::bigint[]) order by id',
    ids === undefined ? [source] : [source, ids],
  );
  return rows.map((row) => ({
    id: Number(row.id),
    table: row.table_name,
    state: row.state,
    reason: row.reason,
    chunks: Number(row.chunks),
    rowsRead: Number(row.rows_read),
    rowsWritten: Number(row.rows_written),
    rowsTotal: row.rows_total === null ? null : Number(row.rows_total),
    lastError: row.last_error,
    requestedAt: row.requested_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
  }));
}

/**
 * Records, in the log transaction that appends a chunk's rows, how far the table's snapshot
 * got: a crash before the commit loses both, after it neither.
 */
export async function recordChunk(db: Queryable, chunk: ChunkOutput): Promise<void> {
  await db.query(
    `update tributary.cdc_snapshots
        set last_key = coalesce($2::text[], last_key), chunks = chunks + 1, rows_read = rows_read + $3,
            rows_written = rows_written + $4, state = case when $5 then 'done' else state end,
            finished_at = case when $5 then now() else finished_at end, updated_at = now()
      where id = $1 and state = 'running'`,
    [chunk.snapshotId, chunk.lastKey, chunk.rowsRead, chunk.events.length, chunk.last],
  );
}

/** Tables whose existing rows are in the log (written with the initial snapshot). */
export async function recordKnownTables(db: Queryable, source: string, tables: readonly TableName[]) {
  await db.query(
    `insert into tributary.cdc_tables (source, table_name) select $1, unnest($2::text[]) on conflict do nothing`,
    [source, tables.map(qualified)],
  );
}

/**
 * Compares the configured tables with those whose rows the log holds. A table added to
 * `tables` since is back-filled by an incremental snapshot (unless the source is configured
 * with `snapshot: 'never'`). A log that captured this source before tables were recorded
 * takes the configured ones as they are.
 */
export async function backfillAddedTables(
  db: Pool,
  source: SourceSettings,
  logger: Logger,
): Promise<string[]> {
  const { rows } = await db.query<{ table_name: string }>(
    'select table_name from tributary.cdc_tables where source = $1',
    [source.name],
  );
  if (rows.length === 0) {
    await recordKnownTables(db, source.name, source.tables);
    return [];
  }
  const known = new Set(rows.map((r) => r.table_name));
  const added = source.tables.map(qualified).filter((table) => !known.has(table));
  if (added.length === 0) return [];
  if (source.snapshot === 'initial') {
    await requestSnapshots(db, source, added, 'added');
    logger.info('tables added to the source: back-filling them with an incremental snapshot', {
      tables: added,
    });
  }
  await db.query(
    `insert into tributary.cdc_tables (source, table_name) select $1, unnest($2::text[]) on conflict do nothing`,
    [source.name, added],
  );
  return added;
}

const RAW_TEXT = { getTypeParser: () => (value: string) => value } as unknown as pg.CustomTypesConfig;

/**
 * Takes the source's requested incremental snapshots, one table at a time, while the stream
 * runs: for each chunk, a low watermark, the chunk's rows by primary key after the last one
 * read, a high watermark, then wait until the stream has put the chunk into the log (see
 * snapshotWindows.ts). Ends when `signal` aborts; a failing chunk is read again.
 */
export async function runIncrementalSnapshots(options: {
  source: ResolvedSource;
  tables: readonly TableInfo[];
  pool: Pool;
  windows: SnapshotWindows;
  resolveTypes: TypeResolver;
  watermarks: 'message' | 'table';
  logger: Logger;
  signal: AbortSignal;
  onProgress: (progress: IncrementalProgress | null) => void;
  /** Idle poll for new requests. @default 1000 */
  pollMs?: number;
}): Promise<void> {
  const { source, pool, logger, signal } = options;
  while (!signal.aborted) {
    const client = connectSource(source, { applicationName: 'tributary-cdc-snapshot' });
    client.on('error', (error) => logger.debug('snapshot connection lost', { error }));
    try {
      await client.connect();
      for (;;) {
        if (signal.aborted) return;
        const next = await nextSnapshot(pool, source.name);
        if (next === undefined) {
          options.onProgress(null);
          await sleep(options.pollMs ?? 1000, signal);
          continue;
        }
        await takeIncrementalSnapshot({ ...options, client, snapshot: next });
      }
    } catch (error) {
      if (signal.aborted) return;
      logger.warn('incremental snapshot interrupted; resuming from its last chunk', {
        message: (error as Error).message,
      });
      await sleep(2000, signal);
    } finally {
      await client.end().catch(() => {});
    }
  }
}

interface OpenSnapshot {
  id: number;
  table: string;
  lastKey: string[] | null;
  rowsRead: number;
}

async function nextSnapshot(db: Queryable, source: string): Promise<OpenSnapshot | undefined> {
  const { rows } = await db.query<{
    id: string;
    table_name: string;
    last_key: string[] | null;
    rows_read: string;
  }>(
    `select id, table_name, last_key, rows_read from tributary.cdc_snapshots
      where source = $1 and state in ('requested', 'running') order by id limit 1`,
    [source],
  );
  const row = rows[0];
  return (
    row && {
      id: Number(row.id),
      table: row.table_name,
      lastKey: row.last_key,
      rowsRead: Number(row.rows_read),
    }
  );
}

async function failSnapshot(db: Queryable, id: number, error: string) {
  await db.query(
    `update tributary.cdc_snapshots set state = 'failed', last_error = $2, finished_at = now(), updated_at = now()
      where id = $1 and state in ('requested', 'running')`,
    [id, error],
  );
}

async function takeIncrementalSnapshot(
  options: Parameters<typeof runIncrementalSnapshots>[0] & { client: pg.Client; snapshot: OpenSnapshot },
): Promise<void> {
  const { source, pool, windows, client, snapshot, logger, signal } = options;
  const table = options.tables.find((t) => qualified(t) === snapshot.table);
  if (table === undefined) {
    await failSnapshot(
      pool,
      snapshot.id,
      `table ${snapshot.table} is no longer in sources.${source.name}.tables`,
    );
    return;
  }
  if (table.keyColumns.length === 0) {
    await failSnapshot(
      pool,
      snapshot.id,
      `table ${snapshot.table} has no primary key or replica identity index to read it in chunks by (REPLICA IDENTITY FULL is not enough)`,
    );
    return;
  }
  if (options.watermarks === 'table') await ensureSignalTable(client, source, logger);
  const name = `${quoteIdentifier(table.schema)}.${quoteIdentifier(table.table)}`;
  const { rows: typeRows } = await client.query<{ name: string; type: string }>(
    `select a.attname as name, format_type(a.atttypid, a.atttypmod) as type
       from pg_attribute a where a.attrelid = $1 and a.attname = any ($2::text[])`,
    [table.oid, table.keyColumns],
  );
  const keyTypes = table.keyColumns.map((column) => typeRows.find((r) => r.name === column)!.type);
  const { rows: estimate } = await client.query<{ n: string }>(
    'select greatest(reltuples, 0)::bigint as n from pg_class where oid = $1',
    [table.oid],
  );
  const rowsTotal = Number(estimate[0]?.n ?? 0);
  const { rowCount } = await pool.query(
    `update tributary.cdc_snapshots
        set state = 'running', started_at = coalesce(started_at, now()), rows_total = $2, updated_at = now()
      where id = $1 and state in ('requested', 'running')`,
    [snapshot.id, rowsTotal],
  );
  if (!rowCount) return; // cancelled meanwhile
  logger.info('incremental snapshot started', {
    table: snapshot.table,
    id: snapshot.id,
    from: snapshot.lastKey,
  });

  const columns = table.keyColumns.map(quoteIdentifier).join(', ');
  const after = table.keyColumns.map((_, i) => `$${i + 1}::${keyTypes[i]}`).join(', ');
  const chunkSize = source.snapshotChunkSize;
  const runId = randomBytes(6).toString('hex');
  let lastKey = snapshot.lastKey;
  let rowsRead = snapshot.rowsRead;
  let chunkNumber = 0;
  let lastLog = Date.now();
  options.onProgress({ id: snapshot.id, table: snapshot.table, rowsRead, rowsTotal });
  // The table's changes are kept between chunks too, until the snapshot ends.
  const unfollow = windows.follow(snapshot.table);
  try {
    for (;;) {
      if (signal.aborted) return;
      const { rows: state } = await pool.query<{ state: string }>(
        'select state from tributary.cdc_snapshots where id = $1',
        [snapshot.id],
      );
      if (state[0]?.state !== 'running') {
        logger.info('incremental snapshot stopped', {
          table: snapshot.table,
          state: state[0]?.state ?? 'gone',
        });
        return;
      }
      const windowId = `${runId}-${snapshot.id}-${chunkNumber++}`;
      const done = windows.expect(windowId, snapshot.table);
      done.catch(() => {}); // awaited below; a stream that stops rejects it meanwhile
      let last: boolean;
      let readKey: string[] | null;
      let read: number;
      try {
        await emitWatermark(client, options.watermarks, source, windowId, 'low');
        await client.query('begin isolation level repeatable read read only');
        const { rows: snap } = await client.query<{ snapshot: string }>(
          'select pg_current_snapshot()::text as snapshot',
        );
        const result = await client.query<Array<string | null>>({
          text: `select * from ${name}${lastKey === null ? '' : ` where (${columns}) > (${after})`} order by ${columns} limit ${chunkSize}`,
          values: lastKey ?? [],
          rowMode: 'array',
          types: RAW_TEXT,
        });
        await client.query('commit');
        const names = result.fields.map((f) => f.name);
        const keyIndexes = table.keyColumns.map((column) => names.indexOf(column));
        const relation = describeRelation({
          oid: table.oid,
          schema: table.schema,
          name: table.table,
          columns: result.fields.map((f) => ({ name: f.name, typeOid: f.dataTypeID, isKey: false })),
          kinds: await options.resolveTypes(result.fields.map((f) => f.dataTypeID)),
          keyIndexes,
        });
        const lastRow = result.rows[result.rows.length - 1];
        readKey = lastRow === undefined ? null : keyIndexes.map((index) => lastRow[index] as string);
        last = result.rows.length < chunkSize;
        read = result.rows.length;
        windows.ready(windowId, {
          snapshotId: snapshot.id,
          table: snapshot.table,
          relation,
          rows: result.rows,
          keyIndexes,
          inProgress: inProgressXids(snap[0]!.snapshot),
          lastKey: readKey,
          last,
          rowsBefore: rowsRead,
        });
        await emitWatermark(client, options.watermarks, source, windowId, 'high');
      } catch (error) {
        windows.forget(windowId);
        await client.query('rollback').catch(() => {});
        throw error;
      }
      const outcome = await done;
      if (options.watermarks === 'table') {
        await client.query(`delete from ${signalName(source)} where id = $1`, [windowId]);
      }
      // A change of unknown key in the window, or a transaction the read did not see whose changes
      // are not known: read the chunk again.
      if (!outcome.applied) continue;
      lastKey = readKey ?? lastKey;
      rowsRead += read;
      options.onProgress({ id: snapshot.id, table: snapshot.table, rowsRead, rowsTotal });
      if (Date.now() - lastLog > 2000) {
        lastLog = Date.now();
        logger.info('incremental snapshot progress', {
          table: snapshot.table,
          rows: rowsRead,
          estimatedTotal: rowsTotal,
        });
      }
      if (last) {
        logger.info('incremental snapshot done', { table: snapshot.table, id: snapshot.id, rows: rowsRead });
        options.onProgress(null);
        return;
      }
    }
  } finally {
    unfollow();
  }
}

/** The 32-bit xids in progress in a `pg_current_snapshot()` text (`xmin:xmax:xip,…`). */
export function inProgressXids(snapshot: string): Set<number> {
  const list = snapshot.split(':')[2] ?? '';
  return new Set(list === '' ? [] : list.split(',').map((xid) => Number(BigInt(xid) & 0xffffffffn)));
}

async function emitWatermark(
  client: pg.Client,
  mode: 'message' | 'table',
  source: ResolvedSource,
  id: string,
  kind: 'low' | 'high',
): Promise<void> {
  if (mode === 'message') {
    await client.query('select pg_logical_emit_message(true, $1, $2)', [
      WATERMARK_PREFIX,
      JSON.stringify({ slot: source.slot, id, kind }),
    ]);
  } else {
    await client.query(`insert into ${signalName(source)} (id, kind, slot) values ($1, $2, $3)`, [
      id,
      kind,
      source.slot,
    ]);
  }
}

const signalName = (source: SourceSettings) =>
  `${quoteIdentifier(source.signalTable.schema)}.${quoteIdentifier(source.signalTable.table)}`;

/** Creates the signalling table when missing and makes sure the publication has it. */
async function ensureSignalTable(client: pg.Client, source: ResolvedSource, logger: Logger): Promise<void> {
  await client.query(
    `create table if not exists ${signalName(source)} (
       id text not null, kind text not null, slot text not null, created_at timestamptz not null default now(),
       primary key (id, kind))`,
  );
  await ensurePublication(client, source, logger, [source.signalTable]);
}
