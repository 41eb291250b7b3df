import { quoteIdentifier } from '../db/index.js';
import { ValidationError } from '../errors.js';
import {
  CANONICAL_TIMESTAMP,
  type CanonicalValue,
  type ColumnType,
  canonicalTimestamp,
  compareBigint,
  compareNumeric,
  jsonbContains,
  jsonbEqual,
  SQL_TYPES,
  toCanonical,
  ValueTypeError,
} from '../projections/index.js';
import type { AnyView } from './anyView.js';

/** Operators a column filter may use; which ones a column offers depends on its type. */
export interface ColumnFilter {
  eq?: unknown;
  ne?: unknown;
  in?: unknown[];
  notIn?: unknown[];
  lt?: unknown;
  lte?: unknown;
  gt?: unknown;
  gte?: unknown;
  isNull?: boolean;
  contains?: unknown;
  startsWith?: string;
}

/** `where` argument: column filters combined with and/or/not. */
export type Where = {
  and?: Where[] | null;
  or?: Where[] | null;
  not?: Where | null;
} & { [column: string]: ColumnFilter | Where[] | Where | null | undefined };

export const COMPARABLE: ReadonlySet<ColumnType> = new Set([
  'text',
  'integer',
  'bigint',
  'numeric',
  'double',
  'timestamptz',
]);

/**
 * Caps on a single `where`, for queries and subscriptions alike, so no request makes huge
 * work: nesting of and/or/not, conditions, and values listed by `in`/`notIn` in all.
 */
export const WHERE_LIMITS = { maxDepth: 8, maxTerms: 64, maxList: 1000 } as const;

/** JSON values a `where` within the limits can hold: a few per condition, one per listed value. */
const MAX_WHERE_NODES = 8 * WHERE_LIMITS.maxTerms + WHERE_LIMITS.maxList;

/**
 * Refuses a `where` given as a variable that is far beyond the limits before GraphQL
 * coerces it: coercing tens of thousands of input objects costs seconds of CPU, while
 * counting its JSON values costs microseconds and stops at the budget.
 */
export function assertWhereSize(value: unknown): void {
  let nodes = 0;
  const visit = (item: unknown): void => {
    if (++nodes > MAX_WHERE_NODES) {
      throw new ValidationError(
        `'where' is far larger than its limits (${WHERE_LIMITS.maxTerms} conditions, ${WHERE_LIMITS.maxList} listed values).`,
        { field: 'where' },
      );
    }
    if (item === null || typeof item !== 'object') return;
    if (Array.isArray(item)) for (let i = 0; i < item.length; i++) visit(item[i]);
    else for (const key in item) visit((item as Record<string, unknown>)[key]);
  };
  visit(value);
}

type Comparison = 'eq' | 'ne' | 'lt' | 'lte' | 'gt' | 'gte';

/**
 * A `where` checked against the view and the limits, with every value in its column's
 * canonical form. Both the SQL of a query and the predicate of a subscription come from
 * it, so the two read the same conditions.
 */
export type Condition =
  | { kind: 'all'; parts: Condition[] }
  | { kind: 'any'; parts: Condition[] }
  | { kind: 'not'; part: Condition }
  | { kind: 'compare'; column: string; type: ColumnType; op: Comparison; value: CanonicalValue }
  | { kind: 'in'; column: string; type: ColumnType; values: CanonicalValue[]; negated: boolean }
  | { kind: 'isNull'; column: string; value: boolean }
  | { kind: 'contains'; column: string; type: ColumnType; value: CanonicalValue }
  | { kind: 'startsWith'; column: string; value: string };

const TRUE: Condition = { kind: 'all', parts: [] };

/** Checks `where` against the view and the limits; throws ValidationError with what to fix. */
export function parseWhere(view: AnyView, where: Where | null | undefined): Condition {
  if (!where) return TRUE;
  let terms = 0;
  let listed = 0;
  const list = (length: number) => {
    listed += length;
    if (listed > WHERE_LIMITS.maxList) {
      throw new ValidationError(`'where' lists more than ${WHERE_LIMITS.maxList} values in all.`, {
        field: 'where',
      });
    }
  };
  const walk = (node: Where, depth: number): Condition => {
    if (depth > WHERE_LIMITS.maxDepth) {
      throw new ValidationError(`'where' nests and/or/not deeper than ${WHERE_LIMITS.maxDepth} levels.`, {
        field: 'where',
      });
    }
    if (node === null || typeof node !== 'object' || Array.isArray(node)) {
      throw new ValidationError("'where' must be an object of column filters.", { field: 'where' });
    }
    const parts: Condition[] = [];
    const count = () => {
      if (++terms > WHERE_LIMITS.maxTerms) {
        throw new ValidationError(`'where' has more than ${WHERE_LIMITS.maxTerms} terms.`, {
          field: 'where',
        });
      }
    };
    for (const [name, value] of Object.entries(node)) {
      if (value === null || value === undefined) continue;
      if (name === 'and' || name === 'or' || name === 'not') count();
      if (name === 'and' || name === 'or') {
        const list = value as Where[];
        if (!Array.isArray(list)) {
          throw new ValidationError(`'where.${name}' must be a list.`, { field: 'where' });
        }
        if (list.length === 0) continue;
        const children = list.map((part) => walk(part, depth + 1));
        parts.push(name === 'and' ? { kind: 'all', parts: children } : { kind: 'any', parts: children });
        continue;
      }
      if (name === 'not') {
        parts.push({ kind: 'not', part: walk(value as Where, depth + 1) });
        continue;
      }
      const column = view.columns[name];
      if (!column) {
        throw new ValidationError(`View '${view.name}' has no column '${name.slice(0, 64)}'.`, {
          field: 'where',
        });
      }
      parts.push(...parseColumn(name, column.type, value as ColumnFilter, count, list));
    }
    return parts.length === 1 ? parts[0]! : { kind: 'all', parts };
  };
  return walk(where, 0);
}

function parseColumn(
  name: string,
  type: ColumnType,
  filter: ColumnFilter,
  count: () => void,
  list: (length: number) => void,
): Condition[] {
  if (filter === null || typeof filter !== 'object' || Array.isArray(filter)) {
    throw new ValidationError(`'where.${name}' must be an object of operators.`, { field: 'where' });
  }
  const value = (op: string, raw: unknown, as: ColumnType = type): CanonicalValue => {
    try {
      return toCanonical(as, raw);
    } catch (error) {
      if (!(error instanceof ValueTypeError)) throw error;
      throw new ValidationError(`'where.${name}.${op}' is not a valid ${as} value: it ${error.reason}.`, {
        field: 'where',
      });
    }
  };
  const conditions: Condition[] = [];
  for (const [op, raw] of Object.entries(filter)) {
    if (raw === undefined) continue;
    if (raw === null && op !== 'isNull') {
      throw new ValidationError(`'${name}.${op}' needs a value; use isNull to match nulls.`, {
        field: 'where',
      });
    }
    count();
    switch (op) {
      case 'eq':
      case 'ne':
      case 'lt':
      case 'lte':
      case 'gt':
      case 'gte':
        if (op !== 'eq' && op !== 'ne' && !COMPARABLE.has(type)) throw unknownOperator(name, op);
        conditions.push({ kind: 'compare', column: name, type, op, value: value(op, raw) });
        break;
      case 'in':
      case 'notIn': {
        if (!Array.isArray(raw))
          throw new ValidationError(`'${name}.${op}' must be a list.`, { field: 'where' });
        list(raw.length);
        const values = raw.map((item) => {
          if (item === null || item === undefined) {
            throw new ValidationError(`'${name}.${op}' cannot list null; use isNull.`, { field: 'where' });
          }
          return value(op, item);
        });
        conditions.push({ kind: 'in', column: name, type, values, negated: op === 'notIn' });
        break;
      }
      case 'isNull':
        if (typeof raw !== 'boolean') {
          throw new ValidationError(`'${name}.isNull' must be true or false.`, { field: 'where' });
        }
        conditions.push({ kind: 'isNull', column: name, value: raw });
        break;
      case 'contains':
        if (type !== 'text' && type !== 'jsonb' && type !== 'text[]') throw unknownOperator(name, op);
        conditions.push({ kind: 'contains', column: name, type, value: value(op, raw) });
        break;
      case 'startsWith':
        if (type !== 'text') throw unknownOperator(name, op);
        conditions.push({ kind: 'startsWith', column: name, value: value(op, raw) as string });
        break;
      default:
        throw unknownOperator(name, op);
    }
  }
  return conditions;
}

const unknownOperator = (name: string, op: string) =>
  new ValidationError(`Unknown filter operator '${op.slice(0, 32)}' on '${name}'.`, { field: 'where' });

// ---------------------------------------------------------------------------------------------
// SQL

const SQL_OPERATORS: Record<Comparison, string> = {
  eq: '=',
  ne: '<>',
  lt: '<',
  lte: '<=',
  gt: '>',
  gte: '>=',
};

/**
 * Compiles `where` to SQL. Column names come only from the view definition (quoted), every
 * value is a bound parameter cast to the column's SQL type.
 */
export function compileWhere(view: AnyView, where: Where | null | undefined, params: unknown[]): string {
  return conditionSql(parseWhere(view, where), params);
}

export function conditionSql(condition: Condition, params: unknown[]): string {
  const bind = (value: CanonicalValue, type: ColumnType) => {
    params.push(type === 'jsonb' ? JSON.stringify(value) : value);
    return `$${params.length}::${SQL_TYPES[type]}`;
  };
  switch (condition.kind) {
    case 'all':
      return condition.parts.length === 0
        ? 'true'
        : condition.parts.map((part) => `(${conditionSql(part, params)})`).join(' and ');
    case 'any':
      return condition.parts.map((part) => `(${conditionSql(part, params)})`).join(' or ');
    case 'not':
      return `not (${conditionSql(condition.part, params)})`;
    case 'compare':
      return `${quoteIdentifier(condition.column)} ${SQL_OPERATORS[condition.op]} ${bind(condition.value, condition.type)}`;
    case 'in': {
      const { type } = condition;
      params.push(type === 'jsonb' ? condition.values.map((v) => JSON.stringify(v)) : condition.values);
      const list = `$${params.length}::${SQL_TYPES[type]}[]`;
      // SQL semantics, which the predicate below follows: a null column matches neither,
      // and an empty list matches nothing for `in` and everything for `notIn`.
      return condition.negated
        ? `${quoteIdentifier(condition.column)} <> all (${list})`
        : `${quoteIdentifier(condition.column)} = any (${list})`;
    }
    case 'isNull':
      return `${quoteIdentifier(condition.column)} is ${condition.value ? '' : 'not '}null`;
    case 'contains':
      if (condition.type === 'text') {
        params.push(condition.value);
        return `strpos(${quoteIdentifier(condition.column)}, $${params.length}::text) > 0`;
      }
      return `${quoteIdentifier(condition.column)} @> ${bind(condition.value, condition.type)}`;
    case 'startsWith':
      params.push(condition.value);
      return `starts_with(${quoteIdentifier(condition.column)}, $${params.length}::text)`;
  }
}

// ---------------------------------------------------------------------------------------------
// The same conditions on a row in memory, for subscriptions

/** SQL's three truth values: a comparison with null is neither true nor false. */
type Truth = boolean | null;

/**
 * A predicate on canonical rows (as the changelog holds them) that gives the answer the
 * SQL of the same `where` gives on the table: exact numeric, bigint and timestamp
 * comparison, jsonb equality and containment as PostgreSQL defines them, and SQL's
 * three-valued logic for nulls (a row matches only when the condition is true). Text is
 * ordered by code point, which equals the database's order only under the "C" collation.
 */
export function compilePredicate(condition: Condition): (row: Record<string, unknown>) => boolean {
  const evaluate = truthOf(condition);
  return (row) => evaluate(row) === true;
}

/** Convenience for one-off checks: parse, then evaluate. */
export function matchesWhere(
  view: AnyView,
  where: Where | null | undefined,
  row: Record<string, unknown>,
): boolean {
  return compilePredicate(parseWhere(view, where))(row);
}

function truthOf(condition: Condition): (row: Record<string, unknown>) => Truth {
  switch (condition.kind) {
    case 'all': {
      const parts = condition.parts.map(truthOf);
      return (row) => {
        let result: Truth = true;
        for (const part of parts) {
          const value = part(row);
          if (value === false) return false;
          if (value === null) result = null;
        }
        return result;
      };
    }
    case 'any': {
      const parts = condition.parts.map(truthOf);
      return (row) => {
        let result: Truth = false;
        for (const part of parts) {
          const value = part(row);
          if (value === true) return true;
          if (value === null) result = null;
        }
        return result;
      };
    }
    case 'not': {
      const part = truthOf(condition.part);
      return (row) => {
        const value = part(row);
        return value === null ? null : !value;
      };
    }
    case 'compare': {
      const { column, type, op, value } = condition;
      const compare = comparatorOf(type);
      return (row) => {
        const actual = storedValue(type, row[column]);
        if (actual === null) return null;
        if (op === 'eq') return equalValues(type, actual, value, compare);
        if (op === 'ne') return !equalValues(type, actual, value, compare);
        const order = compare(actual, value);
        return op === 'lt' ? order < 0 : op === 'lte' ? order <= 0 : op === 'gt' ? order > 0 : order >= 0;
      };
    }
    case 'in': {
      const { column, type, values, negated } = condition;
      const compare = comparatorOf(type);
      return (row) => {
        if (values.length === 0) return negated;
        const actual = storedValue(type, row[column]);
        if (actual === null) return null;
        const found = values.some((item) => equalValues(type, actual, item, compare));
        return negated ? !found : found;
      };
    }
    case 'isNull': {
      const { column, value } = condition;
      return (row) => (row[column] === null || row[column] === undefined) === value;
    }
    case 'contains': {
      const { column, type, value } = condition;
      return (row) => {
        const actual = storedValue(type, row[column]);
        if (actual === null) return null;
        if (type === 'text') return (actual as string).includes(value as string);
        if (type === 'text[]') {
          const have = actual as string[];
          return (value as string[]).every((item) => have.includes(item));
        }
        return jsonbContains(actual, value);
      };
    }
    case 'startsWith': {
      const { column, value } = condition;
      return (row) => {
        const actual = row[column];
        if (actual === null || actual === undefined) return null;
        return (actual as string).startsWith(value);
      };
    }
  }
}

type Comparator = (a: CanonicalValue, b: CanonicalValue) => number;

function comparatorOf(type: ColumnType): Comparator {
  switch (type) {
    case 'numeric':
      return (a, b) => compareNumeric(a as string, b as string);
    case 'bigint':
      return (a, b) => compareBigint(a as string, b as string);
    case 'integer':
    case 'double':
      return (a, b) => (a as number) - (b as number);
    case 'text':
      return (a, b) => compareCodePoints(a as string, b as string);
    default:
      // Canonical timestamps are fixed-width UTC text: their order is the order of time.
      return (a, b) => (a === b ? 0 : String(a) < String(b) ? -1 : 1);
  }
}

function equalValues(type: ColumnType, a: CanonicalValue, b: CanonicalValue, compare: Comparator): boolean {
  if (type === 'jsonb') return jsonbEqual(a, b);
  if (type === 'text[]') {
    const x = a as string[];
    const y = b as string[];
    return x.length === y.length && x.every((item, i) => item === y[i]);
  }
  if (type === 'boolean') return a === b;
  return compare(a, b) === 0;
}

/** Code point order (UTF-16 code units order astral characters below U+E000–U+FFFF). */
function compareCodePoints(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      const cx = a.codePointAt(i)!;
      const cy = b.codePointAt(i)!;
      return cx < cy ? -1 : 1;
    }
    return x < y ? -1 : 1;
  }
  return a.length - b.length;
}

/**
 * A changelog value in canonical form. Rows logged before values were canonical hold
 * numeric and bigint as JSON numbers and timestamps in other ISO forms.
 */
function storedValue(type: ColumnType, value: unknown): CanonicalValue {
  if (value === null || value === undefined) return null;
  if ((type === 'numeric' || type === 'bigint') && typeof value === 'number') return String(value);
  if (type === 'timestamptz' && typeof value === 'string' && !CANONICAL_TIMESTAMP.test(value)) {
    return canonicalTimestamp(value);
  }
  return value as CanonicalValue;
}
