import type pg from 'pg';
import type { EventInput, PreparedEvent } from '../log/index.js';
import { type CatalogType, kindFromCatalog, type ValueKind, valueToJson } from './convertValue.js';
import { type Lsn, lsnKey } from './lsn.js';
import type { OutboxMapping } from './outboxEvents.js';
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
  /** Each column's name as JSON, with the colon: `"id":`. */
  jsonNames: string[];
  /** Event type per operation: `<schema>.<table>.<operation>`. */
  types: Record<ChangeOperation, string>;
  /** Set for an outbox table: its inserts become domain events, its other changes nothing. */
  outbox?: OutboxMapping;
  /** The signalling table of incremental snapshots: its inserts are watermarks, nothing else. */
  signal?: boolean;
}

/** Whether a table's changes are captured as row changes (not an outbox or the signalling table). */
const capturesRows = (relation: Relation) => relation.outbox === undefined && relation.signal !== true;

export type ChangeOperation = 'insert' | 'update' | 'delete' | 'truncate' | 'snapshot' | 'rejected';

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
  return describeRelation({
    oid: message.relationOid,
    schema: message.schema,
    name: message.name,
    columns: message.columns,
    kinds,
    keyIndexes,
  });
}

/** A relation with what encoding its rows needs worked out once. */
export function describeRelation(relation: Omit<Relation, 'jsonNames' | 'types'>): Relation {
  const table = `${relation.schema}.${relation.name}`;
  return {
    ...relation,
    jsonNames: relation.columns.map((column) => `${JSON.stringify(column.name)}:`),
    types: {
      insert: `${table}.insert`,
      update: `${table}.update`,
      delete: `${table}.delete`,
      truncate: `${table}.truncate`,
      snapshot: `${table}.snapshot`,
      rejected: `${table}.rejected`,
    },
  };
}

/** One row (or key) as JSON text, and the columns whose value is an unchanged TOASTed one. */
interface EncodedRow {
  json: string;
  unchanged: string[];
}

function encodeTuple(relation: Relation, tuple: Tuple): EncodedRow {
  let json = '{';
  let unchanged: string[] | undefined;
  const count = Math.min(tuple.length, relation.columns.length);
  for (let i = 0; i < count; i++) {
    const value = tuple[i] as TupleValue;
    if (value === UNCHANGED_TOAST) {
      unchanged ??= [];
      unchanged.push(relation.columns[i]!.name);
      continue;
    }
    if (json.length > 1) json += ',';
    json += relation.jsonNames[i]!;
    json += value === null ? 'null' : valueToJson(value, relation.kinds[i]!);
  }
  return { json: `${json}}`, unchanged: unchanged ?? NONE };
}

const NONE: string[] = [];
const NO_EVENTS: PreparedEvent[] = [];

/** The key columns as a JSON object, each from the first tuple that carries it. */
function encodeKey(
  relation: Relation,
  first: Tuple | null,
  second: Tuple | null = null,
  third: Tuple | null = null,
): string {
  let json = '{';
  for (let k = 0; k < relation.keyIndexes.length; k++) {
    const index = relation.keyIndexes[k]!;
    const kind = relation.kinds[index]!;
    const value =
      keyValue(first, index, kind) ?? keyValue(second, index, kind) ?? keyValue(third, index, kind) ?? 'null';
    json += `${k === 0 ? '' : ','}${relation.jsonNames[index]!}${value}`;
  }
  return `${json}}`;
}

function keyValue(tuple: Tuple | null, index: number, kind: ValueKind): string | undefined {
  if (tuple === null) return undefined;
  const raw = tuple[index];
  if (raw === undefined || raw === UNCHANGED_TOAST) return undefined;
  return raw === null ? 'null' : valueToJson(raw, kind);
}

const unchangedJson = (names: string[]) => (names.length === 0 ? '[]' : JSON.stringify(names));

export interface SourceTransaction {
  source: string;
  finalLsn: Lsn;
  commitTime: Date;
  xid: number;
  /** Changes of this transaction turned into events so far. */
  ordinal: number;
  /** What every event of the transaction shares: ids are this prefix and the ordinal. */
  idPrefix: string;
  /** The metadata JSON up to the ordinal. */
  metadataPrefix: string;
}

/** A source transaction as its begin message opens it. */
export function openTransaction(
  source: string,
  begin: { finalLsn: Lsn; commitTime: Date; xid: number },
): SourceTransaction {
  return {
    source,
    finalLsn: begin.finalLsn,
    commitTime: begin.commitTime,
    xid: begin.xid,
    ordinal: 0,
    idPrefix: `${lsnKey(begin.finalLsn)}-`,
    metadataPrefix: `{"source":${JSON.stringify(source)},"lsn":"${begin.finalLsn}","xid":${begin.xid},"ordinal":`,
  };
}

/** The data of a change event: `{ key, before, after, unchanged }` from their JSON texts. */
function changeData(key: string, before: string, after: string, unchanged: string[]): string {
  return `{"key":${key},"before":${before},"after":${after},"unchanged":${unchangedJson(unchanged)}}`;
}

function event(
  txn: SourceTransaction,
  relation: Relation,
  op: ChangeOperation,
  key: string,
  before: string,
  after: string,
  unchanged: string[],
): PreparedEvent {
  const ordinal = txn.ordinal++;
  return {
    id: txn.idPrefix + ordinal,
    type: relation.types[op],
    data: changeData(key, before, after, unchanged),
    metadata: `${txn.metadataPrefix}${ordinal}}`,
    eventTime: txn.commitTime,
    // Derived from the LSN, never repeated: not indexed for idempotence.
    idGiven: false,
  };
}

/**
 * A row that could not become what its table is captured as (an outbox row that is not a
 * valid event): `<schema>.<table>.rejected`, with the row and the reason, so nothing is lost.
 */
export function rejectedRowEvent(
  txn: SourceTransaction,
  relation: Relation,
  tuple: Tuple,
  reason: string,
): PreparedEvent {
  const after = encodeTuple(relation, tuple);
  const ordinal = txn.ordinal++;
  return {
    id: txn.idPrefix + ordinal,
    type: relation.types.rejected,
    data: `{"key":null,"before":null,"after":${after.json},"unchanged":${unchangedJson(after.unchanged)},"error":${JSON.stringify(reason)}}`,
    metadata: `${txn.metadataPrefix}${ordinal}}`,
    eventTime: txn.commitTime,
    idGiven: false,
  };
}

function relationOf(relations: ReadonlyMap<number, Relation>, oid: number): Relation {
  const relation = relations.get(oid);
  if (relation === undefined)
    throw new Error(`change for relation ${oid} arrived before its relation message`);
  return relation;
}

/**
 * The log events for one change message (one per row; one per table for a truncate),
 * serialized straight from the decoded text values: the data is
 * `{ key, before, after, unchanged }` and the metadata `{ source, lsn, xid, ordinal }`.
 */
export function changeToEvents(
  txn: SourceTransaction,
  message: PgoutputMessage,
  relations: ReadonlyMap<number, Relation>,
): PreparedEvent[] {
  switch (message.tag) {
    case 'insert': {
      const relation = relationOf(relations, message.relationOid);
      if (!capturesRows(relation)) return NO_EVENTS;
      const after = encodeTuple(relation, message.after);
      return [
        event(
          txn,
          relation,
          'insert',
          encodeKey(relation, message.after),
          'null',
          after.json,
          after.unchanged,
        ),
      ];
    }
    case 'update': {
      const relation = relationOf(relations, message.relationOid);
      if (!capturesRows(relation)) return NO_EVENTS;
      const after = encodeTuple(relation, message.after);
      // FULL identity: the whole old row. Default identity with a changed key: the old key columns.
      const before =
        message.old !== null
          ? encodeTuple(relation, message.old).json
          : message.key !== null
            ? encodeKey(relation, message.key)
            : 'null';
      const key = encodeKey(relation, message.after, message.key, message.old);
      return [event(txn, relation, 'update', key, before, after.json, after.unchanged)];
    }
    case 'delete': {
      const relation = relationOf(relations, message.relationOid);
      // An outbox row deleted after its insert: the insert was the event.
      if (!capturesRows(relation)) return NO_EVENTS;
      const before = message.old === null ? 'null' : encodeTuple(relation, message.old).json;
      const key = encodeKey(relation, message.key, message.old);
      return [event(txn, relation, 'delete', key, before, 'null', NONE)];
    }
    case 'truncate':
      return message.relationOids
        .map((oid) => relationOf(relations, oid))
        .filter(capturesRows)
        .map((relation) => event(txn, relation, 'truncate', 'null', 'null', 'null', NONE));
    default:
      return NO_EVENTS;
  }
}

/**
 * Turns snapshot rows into events; `rowNumber` counts rows of the whole snapshot. What all
 * rows share (id prefix, metadata) is worked out once per snapshot.
 */
export function snapshotEncoder(source: string, startLsn: Lsn, snapshotTime: Date) {
  const idPrefix = `snapshot-${lsnKey(startLsn)}-`;
  const metadata = `{"source":${JSON.stringify(source)},"lsn":"${startLsn}","snapshot":true}`;
  return (relation: Relation, values: ReadonlyArray<string | null>, rowNumber: number): PreparedEvent => {
    const tuple = values as Tuple;
    return {
      id: idPrefix + rowNumber,
      type: relation.types.snapshot,
      data: changeData(encodeKey(relation, tuple), 'null', encodeTuple(relation, tuple).json, NONE),
      metadata,
      eventTime: snapshotTime,
      // Derived from the LSN, never repeated: not indexed for idempotence.
      idGiven: false,
    };
  };
}

/**
 * A row of an incremental snapshot's chunk, appended where its high watermark is in the
 * stream: a `snapshot` event like the initial snapshot's, whose metadata names the snapshot
 * and the watermark's LSN, and whose time is the watermark's commit time.
 */
export function snapshotRowEvent(
  txn: SourceTransaction,
  relation: Relation,
  values: ReadonlyArray<string | null>,
  snapshotId: number,
  rowNumber: number,
): PreparedEvent {
  const tuple = values as Tuple;
  return {
    id: `snapshot-i${snapshotId}-${rowNumber}`,
    type: relation.types.snapshot,
    data: changeData(encodeKey(relation, tuple), 'null', encodeTuple(relation, tuple).json, NONE),
    metadata: `{"source":${JSON.stringify(txn.source)},"lsn":"${txn.finalLsn}","snapshot":true,"incremental":${snapshotId}}`,
    eventTime: txn.commitTime,
    idGiven: false,
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
