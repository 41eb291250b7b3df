import type pg from 'pg';
import type { EventInput, JsonObject, JsonValue } from '../log/index.js';
import { type CatalogType, convertValue, kindFromCatalog, type ValueKind } from './convertValue.js';
import { type Lsn, lsnKey } from './lsn.js';
import {
  type PgoutputMessage,
  type RelationColumn,
  type Tuple,
  type TupleValue,
  UNCHANGED_TOAST,
} from './pgoutputDecoder.js';

/** A captured table as the latest relation message describes it. */
export interface Relation {
  oid: number;
  schema: string;
  name: string;
  columns: RelationColumn[];
  kinds: ValueKind[];
  /** Indexes into `columns` of the columns that make up `key`. */
  keyIndexes: number[];
}

/**
 * Looks up, once per OID, how values of types the builtins do not cover convert
 * (domains, enums, arrays of those), from the source catalog.
 */
export function createTypeResolver(client: Pick<pg.Client, 'query'>) {
  const cache = new Map<number, ValueKind>();
  return async (oids: readonly number[]): Promise<ValueKind[]> => {
    const unknown = [...new Set(oids.filter((oid) => !cache.has(oid)))];
    if (unknown.length > 0) {
      const catalog = new Map<number, CatalogType>();
      let wanted = unknown;
      for (let depth = 0; depth < 4 && wanted.length > 0; depth++) {
        const batch: number[] = wanted;
        const { rows } = await client.query<CatalogType>(
          `select oid::int as oid, typtype, typelem::int as typelem, typbasetype::int as typbasetype,
                  typdelim, typcategory
             from pg_type where oid = any($1::oid[])`,
          [batch],
        );
        for (const row of rows) catalog.set(row.oid, row);
        wanted = rows
          .flatMap((r) => [r.typelem, r.typbasetype])
          .filter((oid) => oid !== 0 && !catalog.has(oid));
      }
      for (const oid of unknown) cache.set(oid, kindFromCatalog(oid, catalog));
    }
    return oids.map((oid) => cache.get(oid)!);
  };
}

export type TypeResolver = ReturnType<typeof createTypeResolver>;

/**
 * Builds the relation for a relation message. The key is the table's primary key (or
 * replica identity index) when known, else the columns the message flags as identity.
 */
export async function toRelation(
  message: Extract<PgoutputMessage, { tag: 'relation' }>,
  resolveTypes: TypeResolver,
  knownKeys: ReadonlyMap<string, readonly string[]>,
): Promise<Relation> {
  const kinds = await resolveTypes(message.columns.map((c) => c.typeOid));
  const names = message.columns.map((c) => c.name);
  const configured = knownKeys.get(`${message.schema}.${message.name}`) ?? [];
  let keyIndexes = configured.map((name) => names.indexOf(name));
  if (keyIndexes.length === 0 || keyIndexes.includes(-1)) {
    keyIndexes = message.columns.flatMap((c, index) => (c.isKey ? [index] : []));
  }
  return {
    oid: message.relationOid,
    schema: message.schema,
    name: message.name,
    columns: message.columns,
    kinds,
    keyIndexes,
  };
}

interface DecodedRow {
  row: JsonObject;
  unchanged: string[];
}

function decodeTuple(relation: Relation, tuple: Tuple): DecodedRow {
  const row: JsonObject = {};
  const unchanged: string[] = [];
  const count = Math.min(tuple.length, relation.columns.length);
  for (let i = 0; i < count; i++) {
    const value = tuple[i] as TupleValue;
    const name = relation.columns[i]!.name;
    if (value === UNCHANGED_TOAST) unchanged.push(name);
    else row[name] = value === null ? null : convertValue(value, relation.kinds[i]!);
  }
  return { row, unchanged };
}

function keyOf(relation: Relation, ...tuples: Array<Tuple | null>): JsonObject {
  const key: JsonObject = {};
  for (const index of relation.keyIndexes) {
    const name = relation.columns[index]!.name;
    let value: JsonValue | undefined;
    for (const tuple of tuples) {
      const raw = tuple?.[index];
      if (raw === undefined || raw === UNCHANGED_TOAST) continue;
      value = raw === null ? null : convertValue(raw, relation.kinds[index]!);
      break;
    }
    key[name] = value ?? null;
  }
  return key;
}

export interface SourceTransaction {
  source: string;
  finalLsn: Lsn;
  commitTime: Date;
  xid: number;
  /** Changes of this transaction turned into events so far. */
  ordinal: number;
}

function event(
  txn: SourceTransaction,
  relation: Pick<Relation, 'schema' | 'name'>,
  op: string,
  data: JsonObject,
): EventInput {
  const ordinal = txn.ordinal++;
  return {
    id: `${lsnKey(txn.finalLsn)}-${ordinal}`,
    type: `${relation.schema}.${relation.name}.${op}`,
    data,
    metadata: { source: txn.source, lsn: txn.finalLsn, xid: txn.xid, ordinal },
    eventTime: txn.commitTime,
  };
}

function relationOf(relations: ReadonlyMap<number, Relation>, oid: number): Relation {
  const relation = relations.get(oid);
  if (relation === undefined)
    throw new Error(`change for relation ${oid} arrived before its relation message`);
  return relation;
}

/** The log events for one change message (one per row; one per table for a truncate). */
export function changeToEvents(
  txn: SourceTransaction,
  message: PgoutputMessage,
  relations: ReadonlyMap<number, Relation>,
): EventInput[] {
  switch (message.tag) {
    case 'insert': {
      const relation = relationOf(relations, message.relationOid);
      const after = decodeTuple(relation, message.after);
      return [
        event(txn, relation, 'insert', {
          key: keyOf(relation, message.after),
          before: null,
          after: after.row,
          unchanged: after.unchanged,
        }),
      ];
    }
    case 'update': {
      const relation = relationOf(relations, message.relationOid);
      const after = decodeTuple(relation, message.after);
      // FULL identity: the whole old row. Default identity with a changed key: the old key columns.
      const before =
        message.old !== null
          ? decodeTuple(relation, message.old).row
          : message.key !== null
            ? keyOf(relation, message.key)
            : null;
      return [
        event(txn, relation, 'update', {
          key: keyOf(relation, message.after, message.key, message.old),
          before,
          after: after.row,
          unchanged: after.unchanged,
        }),
      ];
    }
    case 'delete': {
      const relation = relationOf(relations, message.relationOid);
      return [
        event(txn, relation, 'delete', {
          key: keyOf(relation, message.key, message.old),
          before: message.old === null ? null : decodeTuple(relation, message.old).row,
          after: null,
          unchanged: [],
        }),
      ];
    }
    case 'truncate':
      return message.relationOids.map((oid) =>
        event(txn, relationOf(relations, oid), 'truncate', {
          key: null,
          before: null,
          after: null,
          unchanged: [],
        }),
      );
    default:
      return [];
  }
}

/** A snapshot row as an event; `rowNumber` counts rows of the whole snapshot. */
export function snapshotEvent(
  source: string,
  startLsn: Lsn,
  snapshotTime: Date,
  relation: Relation,
  values: ReadonlyArray<string | null>,
  rowNumber: number,
): EventInput {
  const tuple = values as Tuple;
  return {
    id: `snapshot-${lsnKey(startLsn)}-${rowNumber}`,
    type: `${relation.schema}.${relation.name}.snapshot`,
    data: {
      key: keyOf(relation, tuple),
      before: null,
      after: decodeTuple(relation, tuple).row,
      unchanged: [],
    },
    metadata: { source, lsn: startLsn, snapshot: true },
    eventTime: snapshotTime,
  };
}

/** The event opening a new snapshot of a table whose earlier captured rows it replaces. */
export function resetEvent(
  source: string,
  startLsn: Lsn,
  snapshotTime: Date,
  table: { schema: string; name: string },
  index: number,
): EventInput {
  return {
    id: `snapshot-${lsnKey(startLsn)}-reset-${index}`,
    type: `${table.schema}.${table.name}.truncate`,
    data: { key: null, before: null, after: null, unchanged: [] },
    metadata: { source, lsn: startLsn, snapshot: true },
    eventTime: snapshotTime,
  };
}
