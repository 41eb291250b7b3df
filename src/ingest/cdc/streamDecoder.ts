import type { Logger } from '../../logger.js';
import {
  changeToEvents,
  openTransaction,
  type Relation,
  type SourceTransaction,
  type TypeResolver,
  toRelation,
} from './changeEvents.js';
import type { LogTransaction } from './logTransaction.js';
import { compareLsn, type Lsn } from './lsn.js';
import { outboxEvent, outboxMapping } from './outboxEvents.js';
import type { PgoutputMessage, Tuple } from './pgoutputDecoder.js';
import { parseWatermark, type SnapshotWindows, tupleKey, WATERMARK_PREFIX } from './snapshotWindows.js';
import type { OutboxSettings, ResolvedSource } from './types.js';

export interface StreamDecoder {
  /** True between a source transaction's BEGIN and its COMMIT. */
  readonly inTransaction: boolean;
  /**
   * Turns one replication message into what it means for the log. Most are handled
   * synchronously; only those that wait on the database return a promise.
   */
  handle(message: PgoutputMessage): Promise<void> | undefined;
}

/**
 * Decodes pgoutput messages into events of the log: row changes of captured tables, outbox
 * rows as domain events, watermarks of incremental snapshots (their chunks go in at a high
 * one) and the keys of snapshotted tables that change meanwhile. A source transaction
 * already in the log (it ended before `startLsn` or at most at the log's last commit) is
 * skipped whole; one with nothing captured tells `passed` its end.
 */
export function createStreamDecoder(options: {
  source: ResolvedSource;
  /** Where the slot began: transactions that ended before it are in the snapshot. */
  startLsn: Lsn;
  resolveTypes: TypeResolver;
  keyColumns: ReadonlyMap<string, readonly string[]>;
  /** Outbox tables by `schema.table`. */
  outboxes: ReadonlyMap<string, OutboxSettings>;
  windows: SnapshotWindows;
  log: LogTransaction;
  /** The stream passed `endLsn` with nothing for the log. */
  passed(endLsn: Lsn): void;
  logger: Logger;
}): StreamDecoder {
  const { source, startLsn, resolveTypes, keyColumns, outboxes, windows, log, logger } = options;
  const signalTable = `${source.signalTable.schema}.${source.signalTable.table}`;
  const relations = new Map<number, Relation>();
  let txn: (SourceTransaction & { skip: boolean; output: boolean }) | null = null;
  const isApplied = (finalLsn: Lsn) =>
    compareLsn(finalLsn, startLsn) < 0 ||
    (log.committedLsn !== null && compareLsn(finalLsn, log.committedLsn) <= 0);

  // A watermark of an incremental snapshot: at a high one, the chunk's rows go into the log here.
  const onWatermark = (content: string): Promise<void> | undefined => {
    if (txn === null || txn.skip) return undefined;
    const mark = parseWatermark(content, source.slot);
    if (mark === undefined) return undefined;
    const output = windows.watermark(mark, txn);
    if (output === undefined) return undefined;
    txn.output = true;
    return log.addChunk(output);
  };
  const signalWatermark = (relation: Relation, tuple: Tuple) => {
    const value = (column: string) => tuple[relation.columns.findIndex((c) => c.name === column)];
    const kind = value('kind');
    const id = value('id');
    const slot = value('slot');
    if (typeof kind !== 'string' || typeof id !== 'string' || typeof slot !== 'string') return undefined;
    return onWatermark(JSON.stringify({ slot, id, kind }));
  };
  // Keys of snapshotted tables changing in the stream, for the windows of their chunks.
  const noteChange = (xid: number, relation: Relation, message: PgoutputMessage) => {
    const table = `${relation.schema}.${relation.name}`;
    if (!windows.isTracked(table)) return;
    const keyOf = (tuple: Tuple | null) => (tuple === null ? null : tupleKey(tuple, relation.keyIndexes));
    let keys: Array<string | null>;
    if (message.tag === 'insert') keys = [keyOf(message.after)];
    else if (message.tag === 'update') {
      // The old key is sent when it changed (or with REPLICA IDENTITY FULL); a new key column
      // not sent (an unchanged TOASTed value) is the old one.
      const old = keyOf(message.key ?? message.old);
      keys = [keyOf(message.after) ?? old, old];
    } else if (message.tag === 'delete') keys = [keyOf(message.key ?? message.old)];
    else return;
    if (keys[0] === null) windows.change(table, xid, null);
    else
      windows.change(
        table,
        xid,
        keys.filter((key): key is string => key !== null),
      );
  };
  const rowChange = (
    current: NonNullable<typeof txn>,
    message: Extract<PgoutputMessage, { tag: 'insert' | 'update' | 'delete' | 'truncate' }>,
  ): Promise<void> | undefined => {
    if (message.tag === 'insert') {
      const relation = relations.get(message.relationOid);
      if (relation?.outbox !== undefined) {
        const result = outboxEvent(current, relation, relation.outbox, message.after);
        if ('rejected' in result) {
          logger.warn('an outbox row is not a valid event: appended as rejected', {
            table: `${relation.schema}.${relation.name}`,
            lsn: current.finalLsn,
          });
          return log.addRows([result.rejected]);
        }
        return log.addOutbox(result.event);
      }
      if (relation?.signal === true) return signalWatermark(relation, message.after);
    }
    if (windows.active) {
      if (message.tag === 'truncate') {
        for (const oid of message.relationOids) {
          const relation = relations.get(oid);
          if (relation !== undefined) windows.truncate(`${relation.schema}.${relation.name}`);
        }
      } else {
        const relation = relations.get(message.relationOid);
        if (relation !== undefined) noteChange(current.xid, relation, message);
      }
    }
    return log.addRows(changeToEvents(current, message, relations));
  };

  return {
    get inTransaction() {
      return txn !== null;
    },
    handle(message) {
      switch (message.tag) {
        case 'begin':
          txn = {
            ...openTransaction(source.name, message),
            skip: isApplied(message.finalLsn),
            output: false,
          };
          windows.begin(message.xid);
          return;
        case 'relation':
          return toRelation(message, resolveTypes, keyColumns).then((relation) => {
            const name = `${message.schema}.${message.name}`;
            const outbox = outboxes.get(name);
            if (outbox !== undefined) relation.outbox = outboxMapping(relation, outbox);
            if (name === signalTable) relation.signal = true;
            relations.set(message.relationOid, relation);
          });
        case 'insert':
        case 'update':
        case 'delete':
        case 'truncate':
          if (txn === null) throw new Error(`${message.tag} outside a transaction`);
          return txn.skip ? undefined : rowChange(txn, message);
        case 'message':
          if (message.prefix !== WATERMARK_PREFIX) return;
          return onWatermark(message.content);
        case 'commit': {
          const current = txn;
          txn = null;
          windows.commit();
          if (current === null || current.skip || (current.ordinal === 0 && !current.output)) {
            // Already in the log, or nothing captured: the slot may pass it once nothing is in flight.
            options.passed(message.endLsn);
            return;
          }
          return log.sourceCommitted({
            commitLsn: message.commitLsn,
            endLsn: message.endLsn,
            commitTime: message.commitTime,
          });
        }
        default:
          return;
      }
    },
  };
}
