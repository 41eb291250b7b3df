import type { JsonValue } from '../log/index.js';

/**
 * How a column's text value becomes JSON. Decided from the type OID: builtins are known,
 * other types (arrays of user types, domains, enums) are looked up once in the source catalog.
 */
export type ValueKind =
  | { kind: 'boolean' }
  | { kind: 'integer' }
  | { kind: 'float' }
  /** bigint, numeric, money: exact, so kept as the decimal string. */
  | { kind: 'exact' }
  | { kind: 'json' }
  | { kind: 'timestamp' }
  | { kind: 'timestamptz' }
  | { kind: 'bytea' }
  | { kind: 'array'; element: ValueKind; delimiter: string }
  | { kind: 'text' };

const BOOLEAN: ValueKind = { kind: 'boolean' };
const INTEGER: ValueKind = { kind: 'integer' };
const FLOAT: ValueKind = { kind: 'float' };
const EXACT: ValueKind = { kind: 'exact' };
const JSON_KIND: ValueKind = { kind: 'json' };
const TIMESTAMP: ValueKind = { kind: 'timestamp' };
const TIMESTAMPTZ: ValueKind = { kind: 'timestamptz' };
const BYTEA: ValueKind = { kind: 'bytea' };
export const TEXT: ValueKind = { kind: 'text' };

const arrayOf = (element: ValueKind, delimiter = ','): ValueKind => ({ kind: 'array', element, delimiter });

/** Built-in type OIDs (stable across PostgreSQL versions). */
export const BUILTIN_KINDS: ReadonlyMap<number, ValueKind> = new Map<number, ValueKind>([
  [16, BOOLEAN],
  [21, INTEGER],
  [23, INTEGER],
  [26, INTEGER],
  [20, EXACT],
  [1700, EXACT],
  [790, EXACT],
  [700, FLOAT],
  [701, FLOAT],
  [114, JSON_KIND],
  [3802, JSON_KIND],
  [1114, TIMESTAMP],
  [1184, TIMESTAMPTZ],
  [17, BYTEA],
  [25, TEXT],
  [1043, TEXT],
  [1042, TEXT],
  [2950, TEXT],
  [1082, TEXT],
  [1000, arrayOf(BOOLEAN)],
  [1005, arrayOf(INTEGER)],
  [1007, arrayOf(INTEGER)],
  [1028, arrayOf(INTEGER)],
  [1016, arrayOf(EXACT)],
  [1231, arrayOf(EXACT)],
  [791, arrayOf(EXACT)],
  [1021, arrayOf(FLOAT)],
  [1022, arrayOf(FLOAT)],
  [199, arrayOf(JSON_KIND)],
  [3807, arrayOf(JSON_KIND)],
  [1115, arrayOf(TIMESTAMP)],
  [1185, arrayOf(TIMESTAMPTZ)],
  [1001, arrayOf(BYTEA)],
  [1009, arrayOf(TEXT)],
  [1015, arrayOf(TEXT)],
  [1014, arrayOf(TEXT)],
  [2951, arrayOf(TEXT)],
  [1182, arrayOf(TEXT)],
]);

/** Row of `pg_type` needed to classify a type the builtins do not cover. */
export interface CatalogType {
  oid: number;
  /** b base, d domain, e enum, c composite, r range, m multirange */
  typtype: string;
  typelem: number;
  typbasetype: number;
  typdelim: string;
  typcategory: string;
}

/** Classifies `oid` given catalog rows for it and whatever it refers to (element, base type). */
export function kindFromCatalog(
  oid: number,
  catalog: ReadonlyMap<number, CatalogType>,
  depth = 0,
): ValueKind {
  const builtin = BUILTIN_KINDS.get(oid);
  if (builtin) return builtin;
  const type = catalog.get(oid);
  if (type === undefined || depth > 8) return TEXT;
  if (type.typtype === 'd') return kindFromCatalog(type.typbasetype, catalog, depth + 1);
  if (type.typcategory === 'A' && type.typelem !== 0) {
    return arrayOf(kindFromCatalog(type.typelem, catalog, depth + 1), type.typdelim || ',');
  }
  return TEXT;
}

/**
 * Converts a value in PostgreSQL's text output format (what pgoutput sends, and what the
 * snapshot reads) to JSON. Exact numbers stay strings; the session runs with TimeZone=UTC,
 * DateStyle=ISO and bytea_output=hex, which the timestamp and bytea cases rely on.
 */
export function convertValue(text: string, kind: ValueKind): JsonValue {
  switch (kind.kind) {
    case 'boolean':
      return text === 't' || text === 'true';
    case 'integer':
      return Number(text);
    case 'float': {
      const value = Number(text);
      return Number.isFinite(value) ? value : text;
    }
    case 'exact':
      return text;
    case 'json':
      return JSON.parse(text) as JsonValue;
    case 'timestamp':
      return isoTimestamp(text, false);
    case 'timestamptz':
      return isoTimestamp(text, true);
    case 'bytea':
      return text.startsWith('\\x') ? Buffer.from(text.slice(2), 'hex').toString('base64') : text;
    case 'array':
      return parseArray(text, kind.element, kind.delimiter);
    default:
      return text;
  }
}

const TIMESTAMP_TEXT = /^(\d{4,}-\d\d-\d\d) (\d\d:\d\d:\d\d(?:\.\d+)?)([+-]\d\d(?::\d\d){0,2})?$/;

function isoTimestamp(text: string, withZone: boolean): string {
  const match = TIMESTAMP_TEXT.exec(text);
  // infinity, -infinity and BC dates have no ISO form: keep PostgreSQL's text.
  if (match === null) return text;
  const [, date, time, zone] = match;
  if (!withZone) return `${date}T${time}`;
  if (zone === undefined || zone === '+00' || zone === '+00:00') return `${date}T${time}Z`;
  return `${date}T${time}${zone.length === 3 ? `${zone}:00` : zone}`;
}

/** Parses an array literal such as `{1,NULL,"a b",{2,3}}`. */
export function parseArray(text: string, element: ValueKind, delimiter = ','): JsonValue {
  // A leading dimension decoration, e.g. `[0:2]={1,2,3}`, is dropped.
  const start = text.indexOf('{');
  if (start < 0) return text;
  let position = start;

  const parseLevel = (): JsonValue[] => {
    const out: JsonValue[] = [];
    position++; // '{'
    if (text[position] === '}') {
      position++;
      return out;
    }
    while (position < text.length) {
      const char = text[position];
      if (char === '{') {
        out.push(parseLevel());
      } else if (char === '"') {
        let value = '';
        position++;
        while (position < text.length && text[position] !== '"') {
          if (text[position] === '\\') position++;
          value += text[position];
          position++;
        }
        position++; // closing quote
        out.push(convertValue(value, element));
      } else {
        let end = position;
        while (end < text.length && text[end] !== delimiter && text[end] !== '}') end++;
        const raw = text.slice(position, end).trim();
        out.push(raw.toUpperCase() === 'NULL' ? null : convertValue(raw, element));
        position = end;
      }
      const next = text[position];
      position++;
      if (next === '}') return out;
    }
    return out;
  };
  return parseLevel();
}

/**
 * `convertValue` written straight as JSON text, without building the value first: the
 * capture's hot path. Integers and booleans are PostgreSQL's text as it is; json and jsonb
 * values are already JSON text, except one holding a `\u0000` escape, which jsonb cannot
 * store: that one is carried as its text, so the change still lands in the log.
 */
export function valueToJson(text: string, kind: ValueKind): string {
  switch (kind.kind) {
    case 'boolean':
      return text === 't' || text === 'true' ? 'true' : 'false';
    case 'integer':
      return text;
    case 'exact':
    case 'text':
      return JSON.stringify(text);
    case 'json':
      return text.includes('\\u0000') ? JSON.stringify(text) : text;
    default:
      return JSON.stringify(convertValue(text, kind));
  }
}
