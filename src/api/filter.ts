import { quoteIdentifier } from '../db/index.js';
import { ValidationError } from '../errors.js';
import { type ColumnType, SQL_TYPES } from '../projections/index.js';
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

/** Caps on a single `where` so that a request cannot make a huge statement. */
const MAX_DEPTH = 8;
const MAX_TERMS = 64;
const MAX_LIST = 1000;

/**
 * Compiles `where` to SQL. Column names come only from the view definition (quoted), every
 * value is a bound parameter cast to the column's SQL type.
 */
export function compileWhere(view: AnyView, where: Where | null | undefined, params: unknown[]): string {
  let terms = 0;
  const walk = (node: Where, depth: number): string => {
    if (depth > MAX_DEPTH) {
      throw new ValidationError(`'where' nests and/or/not deeper than ${MAX_DEPTH} levels.`, {
        field: 'where',
      });
    }
    const clauses: string[] = [];
    for (const [name, value] of Object.entries(node)) {
      if (value === null || value === undefined) continue;
      if (++terms > MAX_TERMS) {
        throw new ValidationError(`'where' has more than ${MAX_TERMS} terms.`, { field: 'where' });
      }
      if (name === 'and' || name === 'or') {
        const parts = (value as Where[]).map((part) => walk(part, depth + 1));
        if (parts.length === 0) continue;
        clauses.push(`(${parts.join(name === 'and' ? ' and ' : ' or ')})`);
        continue;
      }
      if (name === 'not') {
        clauses.push(`not (${walk(value as Where, depth + 1)})`);
        continue;
      }
      const column = view.columns[name];
      if (!column)
        throw new ValidationError(`View '${view.name}' has no column '${name}'.`, { field: 'where' });
      clauses.push(...compileColumn(name, column.type, value as ColumnFilter, params));
    }
    return clauses.length === 0 ? 'true' : clauses.join(' and ');
  };
  return where ? walk(where, 0) : 'true';
}

function compileColumn(name: string, type: ColumnType, filter: ColumnFilter, params: unknown[]): string[] {
  const column = quoteIdentifier(name);
  const sqlType = SQL_TYPES[type];
  const bind = (value: unknown, cast = sqlType) => {
    params.push(toParam(value, type));
    return `$${params.length}::${cast}`;
  };
  const clauses: string[] = [];
  for (const [op, value] of Object.entries(filter)) {
    if (value === undefined) continue;
    if (value === null && op !== 'isNull') {
      throw new ValidationError(`'${name}.${op}' needs a value; use isNull to match nulls.`, {
        field: 'where',
      });
    }
    switch (op) {
      case 'eq':
        clauses.push(`${column} = ${bind(value)}`);
        break;
      case 'ne':
        clauses.push(`${column} <> ${bind(value)}`);
        break;
      case 'in':
      case 'notIn': {
        const list = value as unknown[];
        if (list.length > MAX_LIST) {
          throw new ValidationError(`'${name}.${op}' lists more than ${MAX_LIST} values.`, {
            field: 'where',
          });
        }
        params.push(list.map((item) => toParam(item, type)));
        // SQL semantics: a null column matches neither in nor notIn.
        clauses.push(
          op === 'in'
            ? `${column} = any ($${params.length}::${sqlType}[])`
            : `${column} <> all ($${params.length}::${sqlType}[])`,
        );
        break;
      }
      case 'lt':
        clauses.push(`${column} < ${bind(value)}`);
        break;
      case 'lte':
        clauses.push(`${column} <= ${bind(value)}`);
        break;
      case 'gt':
        clauses.push(`${column} > ${bind(value)}`);
        break;
      case 'gte':
        clauses.push(`${column} >= ${bind(value)}`);
        break;
      case 'isNull':
        clauses.push(value ? `${column} is null` : `${column} is not null`);
        break;
      case 'contains':
        if (type === 'text') {
          params.push(value);
          clauses.push(`strpos(${column}, $${params.length}::text) > 0`);
        } else {
          clauses.push(`${column} @> ${bind(value)}`);
        }
        break;
      case 'startsWith':
        params.push(value);
        clauses.push(`starts_with(${column}, $${params.length}::text)`);
        break;
      default:
        throw new ValidationError(`Unknown filter operator '${op}' on '${name}'.`, { field: 'where' });
    }
  }
  return clauses;
}

function toParam(value: unknown, type: ColumnType): unknown {
  if (type === 'jsonb') return JSON.stringify(value);
  if (value instanceof Date) return value.toISOString();
  return value;
}

/**
 * The same `where` evaluated on a changelog row (JSON), for subscriptions. Text ordering
 * uses code points, which can differ from the database collation for lt/gt on text.
 */
export function matchesWhere(
  view: AnyView,
  where: Where | null | undefined,
  row: Record<string, unknown>,
): boolean {
  if (!where) return true;
  for (const [name, value] of Object.entries(where)) {
    if (value === null || value === undefined) continue;
    if (name === 'and') {
      if (!(value as Where[]).every((part) => matchesWhere(view, part, row))) return false;
      continue;
    }
    if (name === 'or') {
      const parts = value as Where[];
      if (parts.length > 0 && !parts.some((part) => matchesWhere(view, part, row))) return false;
      continue;
    }
    if (name === 'not') {
      if (matchesWhere(view, value as Where, row)) return false;
      continue;
    }
    const column = view.columns[name];
    if (!column) return false;
    if (!matchesColumn(column.type, value as ColumnFilter, row[name])) return false;
  }
  return true;
}

function matchesColumn(type: ColumnType, filter: ColumnFilter, raw: unknown): boolean {
  const actual = normalize(raw, type);
  const cmp = (value: unknown): number | undefined => {
    if (actual === null) return undefined;
    const expected = normalize(value, type);
    if (expected === null) return undefined;
    if (typeof actual === 'bigint' && typeof expected === 'bigint')
      return actual < expected ? -1 : actual > expected ? 1 : 0;
    if (typeof actual === 'number' && typeof expected === 'number') return actual - expected;
    const a = String(actual);
    const b = String(expected);
    return a < b ? -1 : a > b ? 1 : 0;
  };
  for (const [op, value] of Object.entries(filter)) {
    if (value === undefined) continue;
    switch (op) {
      case 'eq':
        if (type === 'jsonb' || type === 'text[]') {
          if (JSON.stringify(raw) !== JSON.stringify(value)) return false;
        } else if (cmp(value) !== 0) return false;
        break;
      case 'ne':
        if (actual === null || cmp(value) === 0) return false;
        break;
      case 'in':
        if (!(value as unknown[]).some((item) => cmp(item) === 0)) return false;
        break;
      case 'notIn':
        if (actual === null || (value as unknown[]).some((item) => cmp(item) === 0)) return false;
        break;
      case 'lt':
        if (!((cmp(value) ?? 0) < 0) || actual === null) return false;
        break;
      case 'lte':
        if (!((cmp(value) ?? 1) <= 0) || actual === null) return false;
        break;
      case 'gt':
        if (!((cmp(value) ?? 0) > 0) || actual === null) return false;
        break;
      case 'gte':
        if (!((cmp(value) ?? -1) >= 0) || actual === null) return false;
        break;
      case 'isNull':
        if ((actual === null) !== value) return false;
        break;
      case 'contains':
        if (type === 'text') {
          if (typeof actual !== 'string' || !actual.includes(String(value))) return false;
        } else if (type === 'text[]') {
          if (!Array.isArray(raw) || !(value as unknown[]).every((item) => raw.includes(item))) return false;
        } else if (!jsonContains(raw, value)) return false;
        break;
      case 'startsWith':
        if (typeof actual !== 'string' || !actual.startsWith(String(value))) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}

function normalize(value: unknown, type: ColumnType): unknown {
  if (value === null || value === undefined) return null;
  switch (type) {
    case 'integer':
    case 'double':
    case 'numeric':
      return Number(value);
    case 'bigint':
      return BigInt(String(value));
    case 'timestamptz':
      return new Date(value as string | Date).getTime();
    default:
      return value;
  }
}

function jsonContains(container: unknown, contained: unknown): boolean {
  if (Array.isArray(contained)) {
    return (
      Array.isArray(container) && contained.every((item) => container.some((c) => jsonContains(c, item)))
    );
  }
  if (contained !== null && typeof contained === 'object') {
    if (container === null || typeof container !== 'object' || Array.isArray(container)) return false;
    return Object.entries(contained).every(([key, value]) =>
      jsonContains((container as Record<string, unknown>)[key], value),
    );
  }
  return container === contained;
}
