import { quoteIdentifier } from '../db/index.js';
import type { ColumnType } from './view.js';

/**
 * The one canonical form of each column type's values. Handlers get rows back in it, the
 * changelog stores it, and every API path (queries, by-key fields, initial rows, history
 * and live changes, panes, search hits) returns it, so a value reads the same everywhere:
 *
 * | type          | canonical value                                                           |
 * | ------------- | ------------------------------------------------------------------------- |
 * | `text`        | a string (no NUL, no lone surrogate: PostgreSQL could not store them)     |
 * | `integer`     | a 32-bit integer number                                                   |
 * | `bigint`      | a string of digits, as PostgreSQL prints it                               |
 * | `numeric`     | a string, as PostgreSQL prints it: scale kept (`80.00`), no exponent      |
 * | `double`      | a finite number                                                           |
 * | `boolean`     | a boolean                                                                 |
 * | `timestamptz` | a string, ISO 8601 in UTC with microseconds: `2026-11-30T21:14:05.010000Z` |
 * | `jsonb`       | a JSON value, object keys in jsonb's order                                |
 * | `text[]`      | an array of strings                                                       |
 *
 * The JavaScript side brings what handlers write to this form ({@link toCanonical}); the SQL
 * side reads tables in it ({@link canonicalSelectList}). The two agree because the writer
 * hands PostgreSQL the canonical text, and PostgreSQL prints it back unchanged.
 */
export type CanonicalValue = string | number | boolean | null | CanonicalJson | string[];
type CanonicalJson = string | number | boolean | null | CanonicalJson[] | { [key: string]: CanonicalJson };

/** A value that has no canonical form in its column type; `reason` says why. */
export class ValueTypeError extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}

/** The canonical form of `value` for a column of `type` (null stays null); throws ValueTypeError. */
export function toCanonical(type: ColumnType, value: unknown): CanonicalValue {
  if (value === null || value === undefined) return null;
  switch (type) {
    case 'text':
      return canonicalText(value);
    case 'integer':
      return canonicalInteger(value);
    case 'bigint':
      return canonicalBigint(value);
    case 'numeric':
      return canonicalNumeric(value);
    case 'double':
      return canonicalDouble(value);
    case 'boolean':
      if (typeof value !== 'boolean') throw new ValueTypeError('expects true or false');
      return value;
    case 'timestamptz':
      return canonicalTimestamp(value);
    case 'jsonb':
      return canonicalJsonb(value);
    case 'text[]':
      if (!Array.isArray(value)) throw new ValueTypeError('expects an array of strings');
      return value.map((item) => {
        if (typeof item !== 'string') throw new ValueTypeError('expects an array of strings');
        return checkedText(item);
      });
  }
}

// ---------------------------------------------------------------------------------------------
// text

function canonicalText(value: unknown): string {
  if (typeof value !== 'string') throw new ValueTypeError('expects a string');
  return checkedText(value);
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** PostgreSQL text holds no NUL, and UTF-8 has no form for a lone surrogate. */
export function checkedText(value: string): string {
  if (value.includes('\u0000')) throw new ValueTypeError('cannot hold the NUL character (\\u0000)');
  if (LONE_SURROGATE.test(value)) throw new ValueTypeError('holds a lone UTF-16 surrogate');
  return value;
}

// ---------------------------------------------------------------------------------------------
// integers

const INTEGER_TEXT = /^[+-]?\d+$/;
const INT4_MIN = -(2 ** 31);
const INT4_MAX = 2 ** 31 - 1;
const INT8_MIN = -(2n ** 63n);
const INT8_MAX = 2n ** 63n - 1n;

function canonicalInteger(value: unknown): number {
  let n: number;
  if (typeof value === 'number') n = value;
  else if (typeof value === 'bigint') n = Number(value);
  else if (typeof value === 'string' && INTEGER_TEXT.test(value)) n = Number(value);
  else throw new ValueTypeError('expects a 32-bit integer');
  if (!Number.isInteger(n) || n < INT4_MIN || n > INT4_MAX) {
    throw new ValueTypeError('expects a 32-bit integer (-2147483648 to 2147483647)');
  }
  return n === 0 ? 0 : n; // no -0
}

/** Digits of a bigint that cannot be out of range: no leading zero, at most 18 digits. */
const SHORT_CANONICAL_INTEGER = /^(0|-?[1-9]\d{0,17})$/;

function canonicalBigint(value: unknown): string {
  if (typeof value === 'string' && SHORT_CANONICAL_INTEGER.test(value)) return value;
  if (typeof value === 'number' && Number.isSafeInteger(value)) return value === 0 ? '0' : String(value);
  let n: bigint;
  if (typeof value === 'bigint') n = value;
  else if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) {
      throw new ValueTypeError('expects a 64-bit integer; pass integers beyond 2^53 as strings or bigints');
    }
    n = BigInt(value);
  } else if (typeof value === 'string' && INTEGER_TEXT.test(value)) n = BigInt(value);
  else throw new ValueTypeError('expects a 64-bit integer (a string of digits, a bigint or a safe integer)');
  if (n < INT8_MIN || n > INT8_MAX) {
    throw new ValueTypeError('expects a 64-bit integer (-9223372036854775808 to 9223372036854775807)');
  }
  return n.toString();
}

/** An exact comparison of two canonical bigint strings. */
export function compareBigint(a: string, b: string): number {
  const x = BigInt(a);
  const y = BigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------
// numeric

const NUMERIC_TEXT = /^([+-]?)(?:(\d+)(?:\.(\d*))?|\.(\d+))(?:[eE]([+-]?\d+))?$/;
const NUMERIC_SPECIAL: Record<string, string> = {
  nan: 'NaN',
  infinity: 'Infinity',
  '+infinity': 'Infinity',
  inf: 'Infinity',
  '+inf': 'Infinity',
  '-infinity': '-Infinity',
  '-inf': '-Infinity',
};
/** PostgreSQL's numeric limits: digits before the point, and the display scale. */
const NUMERIC_MAX_WEIGHT_DIGITS = 131_072;
const NUMERIC_MAX_SCALE = 16_383;

/**
 * A decimal as PostgreSQL's numeric prints it: the exponent applied, the display scale
 * that numeric_in derives (digits after the point minus the exponent, at least 0), no
 * leading zeros, and no minus sign on zero. `1.50e1` is `15.0`, `1e3` is `1000`.
 */
function canonicalNumeric(value: unknown): string {
  let text: string;
  if (typeof value === 'string') text = value;
  else if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new ValueTypeError('expects a finite number or a decimal string');
    text = String(value);
  } else if (typeof value === 'bigint') text = value.toString();
  else throw new ValueTypeError('expects a decimal string or a number');

  const special = NUMERIC_SPECIAL[text.toLowerCase()];
  if (special !== undefined) return special;
  const match = NUMERIC_TEXT.exec(text);
  if (!match) throw new ValueTypeError('expects a decimal number such as "12.50" or "-3e4"');
  const [, sign, whole, fraction, bareFraction, exponentText] = match;
  const intDigits = whole ?? '';
  const fracDigits = fraction ?? bareFraction ?? '';
  const exponent = exponentText === undefined ? 0 : Number(exponentText);
  if (!Number.isSafeInteger(exponent) || Math.abs(exponent) > 2 * NUMERIC_MAX_WEIGHT_DIGITS) {
    throw new ValueTypeError('is out of the range of numeric');
  }
  const scale = Math.max(0, fracDigits.length - exponent);
  const digits = intDigits + fracDigits;
  const point = intDigits.length + exponent; // where the decimal point falls in `digits`
  let integerPart: string;
  let fractionPart: string;
  if (point <= 0) {
    integerPart = '0';
    fractionPart = '0'.repeat(-point) + digits;
  } else if (point >= digits.length) {
    integerPart = digits + '0'.repeat(point - digits.length);
    fractionPart = '';
  } else {
    integerPart = digits.slice(0, point);
    fractionPart = digits.slice(point);
  }
  fractionPart = fractionPart.slice(0, scale).padEnd(scale, '0');
  integerPart = integerPart.replace(/^0+(?=\d)/, '');
  if (integerPart.length > NUMERIC_MAX_WEIGHT_DIGITS || scale > NUMERIC_MAX_SCALE) {
    throw new ValueTypeError('is out of the range of numeric');
  }
  const zero = /^0*$/.test(integerPart + fractionPart);
  return `${sign === '-' && !zero ? '-' : ''}${integerPart}${scale > 0 ? `.${fractionPart}` : ''}`;
}

/**
 * Orders two canonical numeric strings exactly, as PostgreSQL does: -Infinity, the finite
 * values, Infinity, then NaN (numeric NaN equals itself).
 */
export function compareNumeric(a: string, b: string): number {
  const rank = (x: string) => (x === 'NaN' ? 3 : x === 'Infinity' ? 2 : x === '-Infinity' ? 0 : 1);
  const ra = rank(a);
  const rb = rank(b);
  if (ra !== 1 || rb !== 1) return ra - rb;
  const negA = a.startsWith('-');
  const negB = b.startsWith('-');
  if (negA !== negB) return negA ? -1 : 1;
  const magnitude = compareMagnitude(negA ? a.slice(1) : a, negB ? b.slice(1) : b);
  return negA ? -magnitude : magnitude;
}

function compareMagnitude(a: string, b: string): number {
  const [ai = '', af = ''] = a.split('.');
  const [bi = '', bf = ''] = b.split('.');
  if (ai.length !== bi.length) return ai.length < bi.length ? -1 : 1;
  if (ai !== bi) return ai < bi ? -1 : 1;
  const width = Math.max(af.length, bf.length);
  const x = af.padEnd(width, '0');
  const y = bf.padEnd(width, '0');
  return x === y ? 0 : x < y ? -1 : 1;
}

// ---------------------------------------------------------------------------------------------
// double

function canonicalDouble(value: unknown): number {
  const n = typeof value === 'number' ? value : typeof value === 'string' ? Number(value) : Number.NaN;
  if (typeof value === 'string' && value.trim() === '') throw new ValueTypeError('expects a number');
  if (!Number.isFinite(n)) {
    throw new ValueTypeError('expects a finite number (NaN and Infinity have no JSON form)');
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// timestamptz

/** The shape of a canonical timestamp; stored values of this shape need no work to serve. */
export const CANONICAL_TIMESTAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;
const TIMESTAMP_TEXT =
  /^(\d{4})-(\d\d)-(\d\d)(?:[Tt ](\d\d):(\d\d)(?::(\d\d)(?:\.(\d{1,12}))?)?)?(?:\s*([Zz]|[+-]\d\d(?::?\d\d(?::?\d\d)?)?))?$/;

/**
 * A timestamp as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC, exactly six fractional digits), for
 * years 0001 to 9999. Strings are ISO 8601: a date, optionally a time (`T` or a space),
 * seconds, a fraction (rounded to microseconds the way PostgreSQL rounds) and an offset
 * (`Z`, `±HH`, `±HH:MM`); without an offset the time is UTC.
 */
export function canonicalTimestamp(value: unknown): string {
  if (value instanceof Date) {
    const ms = value.getTime();
    if (Number.isNaN(ms)) throw new ValueTypeError('expects a valid date');
    return formatInstant(ms, 0);
  }
  if (typeof value !== 'string') throw new ValueTypeError('expects an ISO 8601 string or a Date');
  // Already canonical (what every stored value is): only the calendar needs checking.
  if (CANONICAL_TIMESTAMP.test(value)) {
    checkCalendar(
      value.slice(0, 4),
      value.slice(5, 7),
      value.slice(8, 10),
      value.slice(11, 13),
      value.slice(14, 16),
      value.slice(17, 19),
    );
    return value;
  }
  const match = TIMESTAMP_TEXT.exec(value);
  if (!match) {
    throw new ValueTypeError('expects an ISO 8601 timestamp such as "2026-11-30T21:14:05.123456Z"');
  }
  const [, y, mo, d, h = '0', mi = '0', sec = '0', fraction, zone] = match;
  checkCalendar(y!, mo!, d!, h, mi, sec);
  // As PostgreSQL: the fraction is read as a double and rounded half-to-even to microseconds.
  const micro = fraction === undefined ? 0 : roundHalfEven(Number(`0.${fraction}`) * 1_000_000);
  const date = new Date(0);
  date.setUTCFullYear(Number(y), Number(mo) - 1, Number(d));
  date.setUTCHours(Number(h), Number(mi), Number(sec), 0);
  let ms = date.getTime() + Math.floor(micro / 1000);
  if (zone !== undefined && zone !== 'Z' && zone !== 'z') ms -= offsetSeconds(zone) * 1000;
  return formatInstant(ms, micro % 1000);
}

function checkCalendar(y: string, mo: string, d: string, h: string, mi: string, s: string): void {
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) {
    throw new ValueTypeError(`names a date that does not exist (${y}-${mo}-${d})`);
  }
  if (Number(h) > 23 || Number(mi) > 59 || Number(s) > 59) {
    throw new ValueTypeError(`names a time that does not exist (${h}:${mi}:${s})`);
  }
}

function offsetSeconds(zone: string): number {
  const digits = zone.slice(1).replaceAll(':', '');
  const hours = Number(digits.slice(0, 2));
  const minutes = Number(digits.slice(2, 4) || '0');
  const seconds = Number(digits.slice(4, 6) || '0');
  if (hours > 15 || minutes > 59 || seconds > 59) throw new ValueTypeError(`has an invalid offset (${zone})`);
  const total = hours * 3600 + minutes * 60 + seconds;
  return zone.startsWith('-') ? -total : total;
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const rest = x - floor;
  if (rest < 0.5) return floor;
  if (rest > 0.5) return floor + 1;
  return floor % 2 === 0 ? floor : floor + 1;
}

const FIRST_MS = Date.parse('0001-01-01T00:00:00Z');
const END_MS = Date.parse('+010000-01-01T00:00:00Z');
const pad2 = (n: number) => (n < 10 ? `0${n}` : String(n));

/** An instant (milliseconds since the epoch plus 0–999 microseconds) in canonical form. */
function formatInstant(ms: number, micros: number): string {
  if (ms < FIRST_MS || ms >= END_MS) throw new ValueTypeError('is outside the years 0001 to 9999');
  const date = new Date(ms);
  const fraction = String(date.getUTCMilliseconds() * 1000 + micros).padStart(6, '0');
  return `${String(date.getUTCFullYear()).padStart(4, '0')}-${pad2(date.getUTCMonth() + 1)}-${pad2(
    date.getUTCDate(),
  )}T${pad2(date.getUTCHours())}:${pad2(date.getUTCMinutes())}:${pad2(date.getUTCSeconds())}.${fraction}Z`;
}

// ---------------------------------------------------------------------------------------------
// jsonb

/**
 * A JSON value as jsonb holds it: object keys in jsonb's order (shorter keys first, then by
 * their UTF-8 bytes), no NUL in any string, finite numbers. JavaScript objects list
 * integer-like keys first whatever order they were given in, so such keys keep that order.
 */
function canonicalJsonb(value: unknown): CanonicalJson {
  let json: string | undefined;
  try {
    json = JSON.stringify(value, (_key, item: unknown) => {
      if (typeof item === 'number' && !Number.isFinite(item)) {
        throw new ValueTypeError('holds a number JSON cannot represent (NaN or Infinity)');
      }
      if (typeof item === 'bigint') throw new ValueTypeError('holds a bigint; pass it as a string');
      return item;
    });
  } catch (error) {
    if (error instanceof ValueTypeError) throw error;
    throw new ValueTypeError(`is not JSON-serializable (${(error as Error).message})`);
  }
  if (json === undefined) throw new ValueTypeError('is not a JSON value');
  return sortJsonb(JSON.parse(json) as CanonicalJson);
}

function sortJsonb(value: CanonicalJson): CanonicalJson {
  if (typeof value === 'string') return checkedText(value);
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(sortJsonb);
  const sorted: { [key: string]: CanonicalJson } = {};
  for (const key of Object.keys(value).sort(compareJsonbKeys)) {
    checkedText(key);
    sorted[key] = sortJsonb(value[key]!);
  }
  return sorted;
}

function compareJsonbKeys(a: string, b: string): number {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length - y.length || Buffer.compare(x, y);
}

/** jsonb equality: objects by key set, arrays in order, numbers by value. */
export function jsonbEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const other = b as unknown[];
    return a.length === other.length && a.every((item, i) => jsonbEqual(item, other[i]));
  }
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return (
    ka.length === kb.length &&
    ka.every(
      (key) =>
        Object.hasOwn(b, key) &&
        jsonbEqual((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key]),
    )
  );
}

/**
 * jsonb containment (`@>`), as PostgreSQL defines it: an object contains the keys of the
 * other with contained values; an array contains every element of the other in some element
 * of its own (order and repeats do not matter); a top-level array contains a scalar it holds;
 * scalars contain equal scalars.
 */
export function jsonbContains(container: unknown, contained: unknown, topLevel = true): boolean {
  if (Array.isArray(container)) {
    if (Array.isArray(contained)) {
      return contained.every((item) => container.some((candidate) => jsonbContains(candidate, item, false)));
    }
    if (topLevel && (contained === null || typeof contained !== 'object')) {
      return container.some((candidate) => candidate === contained);
    }
    return false;
  }
  if (container !== null && typeof container === 'object') {
    if (contained === null || typeof contained !== 'object' || Array.isArray(contained)) return false;
    return Object.entries(contained).every(
      ([key, value]) =>
        Object.hasOwn(container, key) &&
        jsonbContains((container as Record<string, unknown>)[key], value, false),
    );
  }
  if (Array.isArray(contained) || (contained !== null && typeof contained === 'object')) return false;
  return container === contained;
}

// ---------------------------------------------------------------------------------------------
// SQL and JSON encodings

const TIMESTAMP_FORMAT = `'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'`;

/**
 * A SQL expression that yields `column` (a quoted name or expression) in its canonical
 * form as the pg driver reads it: only timestamps need rendering (the driver would make a
 * millisecond Date of them); numeric and bigint arrive as PostgreSQL's text.
 */
export function canonicalSql(column: string, type: ColumnType): string {
  return type === 'timestamptz' ? `to_char(${column} at time zone 'UTC', ${TIMESTAMP_FORMAT})` : column;
}

/** The select list of a view's columns in canonical form, from `alias.` when given. */
export function canonicalSelectList(columns: Record<string, { type: ColumnType }>, alias?: string): string {
  return Object.entries(columns)
    .map(([name, column]) => {
      const quoted = quoteIdentifier(name);
      const source = alias ? `${alias}.${quoted}` : quoted;
      return column.type === 'timestamptz' ? `${canonicalSql(source, column.type)} as ${quoted}` : source;
    })
    .join(', ');
}

/**
 * The JSON text of a canonical value of `type`: what the changelog stores and the view
 * upsert reads. bigint and numeric are JSON strings, so no reader's number type rounds them.
 */
export function canonicalJson(type: ColumnType, value: CanonicalValue): string {
  if (value === null) return 'null';
  switch (type) {
    case 'integer':
    case 'double':
    case 'boolean':
      return String(value);
    default:
      return JSON.stringify(value);
  }
}

/**
 * A SQL expression that yields `column` as the jsonb of its canonical value: what
 * `canonicalJson` makes of the value the driver reads, built without leaving PostgreSQL.
 * bigint and numeric become JSON strings (numeric with its scale), timestamps the canonical
 * string; the other types map to jsonb as they are.
 */
export function canonicalJsonbSql(column: string, type: ColumnType): string {
  switch (type) {
    case 'bigint':
    case 'numeric':
      return `to_jsonb(${column}::text)`;
    case 'timestamptz':
      return `to_jsonb(${canonicalSql(column, type)})`;
    case 'jsonb':
      return column;
    default:
      return `to_jsonb(${column})`;
  }
}

/**
 * A SQL expression of `column` whose JSON (as `row_to_json` prints it) is its canonical form:
 * bigint and numeric as text, timestamps rendered, a double's -0 as 0; every other type is
 * printed by PostgreSQL as canonical JSON already. `row_to_json` of a row of these costs less than half of building
 * the same object with `json_build_object`, which looks up each argument's output function on
 * every call.
 */
export function canonicalJsonColumnSql(column: string, type: ColumnType): string {
  if (type === 'bigint' || type === 'numeric') return `${column}::text`;
  // -0 as 0, as JSON.stringify writes it (and so every other path).
  if (type === 'double') return `(${column} + 0)`;
  return canonicalSql(column, type);
}
