import type pg from 'pg';
import { type Pool, quoteIdentifier } from '../../db/index.js';
import type { Logger } from '../../logger.js';
import { appendToStream, openStreamCopy, type PreparedEvent, readStream } from '../log/index.js';
import {
  describeRelation,
  type Relation,
  resetEvent,
  snapshotEncoder,
  type TypeResolver,
} from './changeEvents.js';
import { insertCheckpoint } from './checkpoints.js';
import { recordKnownTables } from './incrementalSnapshots.js';
import type { Lsn } from './lsn.js';
import { createOwnSlot } from './slotOwnership.js';
import { connectSource, type SourceServer, type TableInfo } from './sourceSetup.js';
import type { ResolvedSource, SnapshotProgress } from './types.js';

const RAW_TEXT = { getTypeParser: () => (value: string) => value } as unknown as pg.CustomTypesConfig;

export interface SnapshotResult {
  startLsn: Lsn;
  rows: number;
}

/**
 * Creates the slot over a replication connection with an exported snapshot, reads every
 * table inside that snapshot in chunks, and appends the rows to the log — all in ONE log
 * transaction that also records the checkpoint. A crash anywhere leaves no trace in the
 * log but the record of the slot it created (the next start drops that half-made slot, and
 * only that one, and begins again), and the stream resumes
 * exactly at the slot's consistent point: nothing lost, nothing twice.
 */
export async function takeSnapshot(options: {
  source: ResolvedSource;
  server: SourceServer;
  tables: TableInfo[];
  pool: Pool;
  resolveTypes: TypeResolver;
  logger: Logger;
  onProgress: (progress: SnapshotProgress) => void;
  signal: AbortSignal;
}): Promise<SnapshotResult> {
  const { source, server, tables, pool, resolveTypes, logger, onProgress, signal } = options;
  const replication = connectSource(source, { replication: true, applicationName: 'tributary-cdc-snapshot' });
  const reader = connectSource(source, { applicationName: 'tributary-cdc-snapshot' });
  replication.on('error', () => {});
  reader.on('error', () => {});
  let log: pg.PoolClient | undefined;
  try {
    await replication.connect();
    await reader.connect();
    const created = await createOwnSlot({
      db: pool,
      source,
      server,
      client: reader,
      replication,
      snapshot: 'export',
    });
    const startLsn = created.consistentPoint;
    const snapshotName = created.snapshotName ?? '';
    if (!/^[0-9A-Fa-f-]+$/.test(snapshotName)) throw new Error(`unexpected snapshot name '${snapshotName}'`);
    logger.info('replication slot created; snapshot started', { slot: source.slot, startLsn });

    await reader.query('begin isolation level repeatable read read only');
    await reader.query(`set transaction snapshot '${snapshotName}'`);
    const { rows: timeRows } = await reader.query<{ now: Date }>('select now()');
    const snapshotTime = timeRows[0]!.now;

    const estimates: number[] = [];
    for (const table of tables) {
      const { rows: est } = await reader.query<{ n: string }>(
        'select reltuples::bigint as n from pg_class where oid = $1',
        [table.oid],
      );
      let estimate = Number(est[0]?.n ?? -1);
      if (estimate < 0) {
        const { rows: counted } = await reader.query<{ n: string }>(
          `select count(*) as n from ${name(table)}`,
        );
        estimate = Number(counted[0]!.n);
      }
      estimates.push(estimate);
    }
    const progress: SnapshotProgress = {
      table: null,
      rowsDone: 0,
      rowsTotal: estimates.reduce((a, b) => a + b, 0),
    };
    onProgress({ ...progress });

    log = await pool.connect();
    await log.query('begin');
    // A snapshot taken again (after `cdc drop`) replaces what the log held for each table.
    const earlier = await readStream(log, source.streamId, { limit: 1 });
    if (earlier.length > 0) {
      await appendToStream(
        log,
        source.streamId,
        tables.map((t, index) =>
          resetEvent(source.name, startLsn, snapshotTime, { schema: t.schema, name: t.table }, index),
        ),
      );
    }

    // Rows stream into one COPY while the next chunk is fetched. Row ids are
    // `snapshot-<slot LSN>-<row number>`, new for every snapshot, so no probe is needed.
    const copy = await openStreamCopy(log, source.streamId);
    const toEvent = snapshotEncoder(source.name, startLsn, snapshotTime);
    let rowNumber = 0;
    let lastLog = Date.now();
    for (const table of tables) {
      progress.table = `${table.schema}.${table.table}`;
      await reader.query(`declare tributary_snapshot no scroll cursor for select * from ${name(table)}`);
      let relation: Relation | undefined;
      while (true) {
        if (signal.aborted) throw new Error('snapshot stopped');
        const result = await reader.query<unknown[]>({
          text: `fetch forward ${source.snapshotChunkSize} from tributary_snapshot`,
          rowMode: 'array',
          types: RAW_TEXT,
        });
        if (result.rows.length === 0) break;
        if (relation === undefined) {
          const kinds = await resolveTypes(result.fields.map((f) => f.dataTypeID));
          const columns = result.fields.map((f) => ({ name: f.name, typeOid: f.dataTypeID, isKey: false }));
          const names = columns.map((c) => c.name);
          relation = describeRelation({
            oid: table.oid,
            schema: table.schema,
            name: table.table,
            columns,
            kinds,
            keyIndexes: (table.keyColumns.length > 0 ? table.keyColumns : names).map((k) => names.indexOf(k)),
          });
        }
        const events: PreparedEvent[] = [];
        for (const row of result.rows)
          events.push(toEvent(relation, row as Array<string | null>, rowNumber++));
        await copy.write(events);
        progress.rowsDone += result.rows.length;
        progress.rowsTotal = Math.max(progress.rowsTotal, progress.rowsDone);
        onProgress({ ...progress });
        if (Date.now() - lastLog > 2000) {
          lastLog = Date.now();
          logger.info('snapshot progress', {
            table: progress.table,
            rows: progress.rowsDone,
            estimatedTotal: progress.rowsTotal,
            percent: Math.min(100, Math.round((100 * progress.rowsDone) / Math.max(1, progress.rowsTotal))),
          });
        }
      }
      await reader.query('close tributary_snapshot');
    }

    await copy.finish();
    await insertCheckpoint(log, {
      source: source.name,
      slotName: source.slot,
      publicationName: source.publication,
      streamId: source.streamId,
      startLsn,
      snapshotRows: progress.rowsDone,
    });
    await recordKnownTables(log, source.name, tables);
    await log.query('commit');
    log.release();
    log = undefined;
    await reader.query('commit');
    progress.rowsTotal = progress.rowsDone;
    onProgress({ ...progress });
    logger.info('snapshot done', { rows: progress.rowsDone, startLsn });
    return { startLsn, rows: progress.rowsDone };
  } finally {
    // The connection may be in the middle of a COPY: close it, and the server rolls back.
    if (log !== undefined) log.release(true);
    await reader.end().catch(() => {});
    await replication.end().catch(() => {});
  }
}

function name(table: TableInfo): string {
  return `${quoteIdentifier(table.schema)}.${quoteIdentifier(table.table)}`;
}
