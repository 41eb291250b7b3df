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
  | { tag: 'other'; code: string };

const POSTGRES_EPOCH_MS = 946_684_800_000;
const decoder = new TextDecoder();
const IDENTITIES = { d: 'default', n: 'nothing', f: 'full', i: 'index' } as const;

/**
 * Decodes pgoutput protocol version 1 into plain messages that keep every value as text:
 * the capture converts them by type OID (the library's own parser turns timestamps into
 * local-time Dates and cannot tell an unchanged TOAST value from a missing one).
 */
export function decodePgoutput(buffer: Buffer): PgoutputMessage {
  let offset = 0;
  const u8 = () => buffer[offset++]!;
  const i16 = () => {
    const value = buffer.readInt16BE(offset);
    offset += 2;
    return value;
  };
  const u32 = () => {
    const value = buffer.readUInt32BE(offset);
    offset += 4;
    return value;
  };
  const lsn = (): Lsn => {
    const high = u32();
    const low = u32();
    return `${high.toString(16).toUpperCase()}/${low.toString(16).toUpperCase()}`;
  };
  const time = (): Date => {
    const micros = u32() * 4_294_967_296 + u32();
    return new Date(POSTGRES_EPOCH_MS + Math.floor(micros / 1000));
  };
  const cstring = (): string => {
    const end = buffer.indexOf(0, offset);
    const value = decoder.decode(buffer.subarray(offset, end));
    offset = end + 1;
    return value;
  };
  const tuple = (): Tuple => {
    const count = i16();
    const values: Tuple = new Array(count);
    for (let i = 0; i < count; i++) {
      const kind = u8();
      if (kind === 0x6e /* n */) values[i] = null;
      else if (kind === 0x75 /* u */) values[i] = UNCHANGED_TOAST;
      else {
        const length = u32();
        values[i] = decoder.decode(buffer.subarray(offset, offset + length));
        offset += length;
      }
    }
    return values;
  };

  const tag = u8();
  switch (tag) {
    case 0x42 /* B */:
      return { tag: 'begin', finalLsn: lsn(), commitTime: time(), xid: u32() };
    case 0x43 /* C */:
      {
        u8(); // flags, unused
        return { tag: 'commit', commitLsn: lsn(), endLsn: lsn(), commitTime: time() };
      }
    case 0x52 /* R */:
      {
        const relationOid = u32();
        const schema = cstring();
        const name = cstring();
        const identity = String.fromCharCode(u8()) as keyof typeof IDENTITIES;
        const count = i16();
        const columns: RelationColumn[] = [];
        for (let i = 0; i < count; i++) {
          const flags = u8();
          const columnName = cstring();
          const typeOid = u32();
          u32(); // type modifier
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
        const relationOid = u32();
        u8(); // 'N'
        return { tag: 'insert', relationOid, after: tuple() };
      }
    case 0x55 /* U */:
      {
        const relationOid = u32();
        let key: Tuple | null = null;
        let old: Tuple | null = null;
        let marker = u8();
        if (marker === 0x4b /* K */) {
          key = tuple();
          marker = u8();
        } else if (marker === 0x4f /* O */) {
          old = tuple();
          marker = u8();
        }
        return { tag: 'update', relationOid, key, old, after: tuple() };
      }
    case 0x44 /* D */:
      {
        const relationOid = u32();
        const marker = u8();
        const values = tuple();
        return marker === 0x4b
          ? { tag: 'delete', relationOid, key: values, old: null }
          : { tag: 'delete', relationOid, key: null, old: values };
      }
    case 0x54 /* T */:
      {
        const count = u32();
        const flags = u8();
        const relationOids: number[] = [];
        for (let i = 0; i < count; i++) relationOids.push(u32());
        return {
          tag: 'truncate',
          relationOids,
          cascade: (flags & 1) === 1,
          restartIdentity: (flags & 2) === 2,
        };
      }
    default:
      return { tag: 'other', code: String.fromCharCode(tag) };
  }
}

/** The plugin handed to pg-logical-replication: pgoutput v1 over our publication, decoded as above. */
export class PgoutputTextPlugin {
  constructor(readonly options: { publication: string }) {}

  get name(): string {
    return 'pgoutput';
  }

  parse(buffer: Buffer): PgoutputMessage {
    return decodePgoutput(buffer);
  }

  start(client: pg.Client, slotName: string, lastLsn: string): Promise<unknown> {
    const publication = quoteIdentifier(this.options.publication).replaceAll("'", "''");
    return client.query(
      `START_REPLICATION SLOT ${quoteIdentifier(slotName)} LOGICAL ${lastLsn} (proto_version '1', publication_names '${publication}')`,
    );
  }
}
