import type pg from 'pg';
import { quoteIdentifier } from '../../db/index.js';
import type { Lsn } from './lsn.js';

/** Marks a TOASTed column the source did not send because it did not change. */
export const UNCHANGED_TOAST: unique symbol = Symbol('unchanged-toast');

/** Column values in the text format, null for SQL NULL; binary values never occur (text mode). */
export type TupleValue = string | null | typeof UNCHANGED_TOAST;
export type Tuple = TupleValue[];

export interface RelationColumn {
  name: string;
  typeOid: number;
  /** Part of the replica identity (every column with REPLICA IDENTITY FULL). */
  isKey: boolean;
}

export type PgoutputMessage =
  | { tag: 'begin'; finalLsn: Lsn; commitTime: Date; xid: number }
  | { tag: 'commit'; commitLsn: Lsn; endLsn: Lsn; commitTime: Date }
  | {
      tag: 'relation';
      relationOid: number;
      schema: string;
      name: string;
      replicaIdentity: 'default' | 'nothing' | 'full' | 'index';
      columns: RelationColumn[];
    }
  | { tag: 'insert'; relationOid: number; after: Tuple }
  | { tag: 'update'; relationOid: number; key: Tuple | null; old: Tuple | null; after: Tuple }
  | { tag: 'delete'; relationOid: number; key: Tuple | null; old: Tuple | null }
  | { tag: 'truncate'; relationOids: number[]; cascade: boolean; restartIdentity: boolean }
  /** A logical decoding message (pg_logical_emit_message), sent with the `messages` option (14+). */
  | { tag: 'message'; transactional: boolean; lsn: Lsn; prefix: string; content: string }
  | { tag: 'other'; code: string };

const POSTGRES_EPOCH_MS = 946_684_800_000;
const IDENTITIES = { d: 'default', n: 'nothing', f: 'full', i: 'index' } as const;

/**
 * A position in one message. The readers are module functions rather than closures made per
 * message: the capture decodes every row change, and a closure per field reader per message
 * is measurable there.
 */
interface Reader {
  buffer: Buffer;
  offset: number;
}

function readU8(r: Reader): number {
  return r.buffer[r.offset++]!;
}

function readI16(r: Reader): number {
  const value = r.buffer.readInt16BE(r.offset);
  r.offset += 2;
  return value;
}

function readU32(r: Reader): number {
  const value = r.buffer.readUInt32BE(r.offset);
  r.offset += 4;
  return value;
}

function readLsn(r: Reader): Lsn {
  const high = readU32(r);
  const low = readU32(r);
  return `${high.toString(16).toUpperCase()}/${low.toString(16).toUpperCase()}`;
}

function readTime(r: Reader): Date {
  const micros = readU32(r) * 4_294_967_296 + readU32(r);
  return new Date(POSTGRES_EPOCH_MS + Math.floor(micros / 1000));
}

function readCstring(r: Reader): string {
  const end = r.buffer.indexOf(0, r.offset);
  const value = r.buffer.toString('utf8', r.offset, end);
  r.offset = end + 1;
  return value;
}

function readTuple(r: Reader): Tuple {
  const count = readI16(r);
  const values: Tuple = new Array(count);
  for (let i = 0; i < count; i++) {
    const kind = readU8(r);
    if (kind === 0x6e /* n */) values[i] = null;
    else if (kind === 0x75 /* u */) values[i] = UNCHANGED_TOAST;
    else {
      const length = readU32(r);
      values[i] = r.buffer.toString('utf8', r.offset, r.offset + length);
      r.offset += length;
    }
  }
  return values;
}

/**
 * Decodes pgoutput protocol version 1 into plain messages that keep every value as text:
 * the capture converts them by type OID (the library's own parser turns timestamps into
 * local-time Dates and cannot tell an unchanged TOAST value from a missing one).
 */
export function decodePgoutput(buffer: Buffer): PgoutputMessage {
  const r: Reader = { buffer, offset: 0 };

  const tag = readU8(r);
  switch (tag) {
    case 0x42 /* B */:
      return { tag: 'begin', finalLsn: readLsn(r), commitTime: readTime(r), xid: readU32(r) };
    case 0x43 /* C */:
      {
        readU8(r); // flags, unused
        return { tag: 'commit', commitLsn: readLsn(r), endLsn: readLsn(r), commitTime: readTime(r) };
      }
    case 0x52 /* R */:
      {
        const relationOid = readU32(r);
        const schema = readCstring(r);
        const name = readCstring(r);
        const identity = String.fromCharCode(readU8(r)) as keyof typeof IDENTITIES;
        const count = readI16(r);
        const columns: RelationColumn[] = [];
        for (let i = 0; i < count; i++) {
          const flags = readU8(r);
          const columnName = readCstring(r);
          const typeOid = readU32(r);
          readU32(r); // type modifier
          columns.push({ name: columnName, typeOid, isKey: (flags & 1) === 1 });
        }
        return {
          tag: 'relation',
          relationOid,
          schema,
          name,
          replicaIdentity: IDENTITIES[identity] ?? 'default',
          columns,
        };
      }
    case 0x49 /* I */:
      {
        const relationOid = readU32(r);
        readU8(r); // 'N'
        return { tag: 'insert', relationOid, after: readTuple(r) };
      }
    case 0x55 /* U */:
      {
        const relationOid = readU32(r);
        let key: Tuple | null = null;
        let old: Tuple | null = null;
        let marker = readU8(r);
        if (marker === 0x4b /* K */) {
          key = readTuple(r);
          marker = readU8(r);
        } else if (marker === 0x4f /* O */) {
          old = readTuple(r);
          marker = readU8(r);
        }
        return { tag: 'update', relationOid, key, old, after: readTuple(r) };
      }
    case 0x44 /* D */:
      {
        const relationOid = readU32(r);
        const marker = readU8(r);
        const values = readTuple(r);
        return marker === 0x4b
          ? { tag: 'delete', relationOid, key: values, old: null }
          : { tag: 'delete', relationOid, key: null, old: values };
      }
    case 0x54 /* T */:
      {
        const count = readU32(r);
        const flags = readU8(r);
        const relationOids: number[] = [];
        for (let i = 0; i < count; i++) relationOids.push(readU32(r));
        return {
          tag: 'truncate',
          relationOids,
          cascade: (flags & 1) === 1,
          restartIdentity: (flags & 2) === 2,
        };
      }
    case 0x4d /* M */:
      {
        const transactional = (readU8(r) & 1) === 1;
        const lsn = readLsn(r);
        const prefix = readCstring(r);
        const length = readU32(r);
        const content = r.buffer.toString('utf8', r.offset, r.offset + length);
        return { tag: 'message', transactional, lsn, prefix, content };
      }
    default:
      return { tag: 'other', code: String.fromCharCode(tag) };
  }
}

/** The plugin handed to pg-logical-replication: pgoutput v1 over our publication, decoded as above. */
export class PgoutputTextPlugin {
  /** `messages`: also stream logical decoding messages (PostgreSQL 14 and later). */
  constructor(readonly options: { publication: string; messages?: boolean }) {}

  get name(): string {
    return 'pgoutput';
  }

  /** Size of the message parse() decoded last (the capture bounds its queue in bytes). */
  lastParsedBytes = 0;

  parse(buffer: Buffer): PgoutputMessage {
    this.lastParsedBytes = buffer.length;
    return decodePgoutput(buffer);
  }

  start(client: pg.Client, slotName: string, lastLsn: string): Promise<unknown> {
    const publication = quoteIdentifier(this.options.publication).replaceAll("'", "''");
    return client.query(
      `START_REPLICATION SLOT ${quoteIdentifier(slotName)} LOGICAL ${lastLsn} (proto_version '1', publication_names '${publication}'${this.options.messages ? ", messages 'true'" : ''})`,
    );
  }
}
