import { type Queryable, qualified, quoteIdentifier } from '../db/index.js';
import { ValidationError } from '../errors.js';
import { type ColumnType, canonicalSelectList, SQL_TYPES, toCanonical } from '../projections/index.js';
import type { AnyView } from './anyView.js';
import { COMPARABLE, compileWhere, type Where } from './filter.js';

export type Direction = 'ASC' | 'DESC';
export interface OrderBy {
  field: string;
  direction?: Direction | null;
}

export interface PageArgs {
  where?: Where | null;
  orderBy?: readonly OrderBy[] | null;
  first?: number | null;
  after?: string | null;
  last?: number | null;
  before?: string | null;
}

export interface Page {
  edges: { cursor: string; node: Record<string, unknown> }[];
  pageInfo: {
    hasNextPage: boolean;
    hasPreviousPage: boolean;
    startCursor: string | null;
    endCursor: string | null;
  };
}

export interface PageLimits {
  /** @default 50 */
  defaultPageSize?: number;
  /** @default 1000 */
  maxPageSize?: number;
}

/**
 * One page of a view, keyset-paginated: the cursor holds the values of the order columns
 * (as text, so numeric and timestamps keep full precision) and the key breaks ties, so a
 * page is stable under concurrent writes. Ascending sorts nulls last, descending first.
 */
export async function queryPage(
  db: Queryable,
  schema: string,
  view: AnyView,
  args: PageArgs,
  limits: PageLimits = {},
): Promise<Page> {
  const plan = planPage(schema, view, args, limits, selectList(view));
  const { rows } = await db.query<Record<string, unknown>>(plan.text, plan.params);
  return plan.page(rows, (row) => {
    const node: Record<string, unknown> = {};
    for (const column of Object.keys(view.columns)) node[column] = row[column];
    return node;
  });
}

/**
 * A page's statement, checked and built before anything is read (a bad size, cursor or
 * orderBy throws here), with `select` as its select list; `page` turns the rows it returned
 * into the page, each node made from its row by `nodeOf`.
 */
export interface PagePlan {
  text: string;
  params: unknown[];
  page<Node>(rows: Record<string, unknown>[], nodeOf: (row: Record<string, unknown>) => Node): PageOf<Node>;
}

export interface PageOf<Node> {
  edges: { cursor: string; node: Node }[];
  pageInfo: Page['pageInfo'];
}

export function planPage(
  schema: string,
  view: AnyView,
  args: PageArgs,
  limits: PageLimits,
  select: string,
): PagePlan {
  const maxPageSize = limits.maxPageSize ?? 1000;
  if (args.first != null && args.last != null) {
    throw new ValidationError('Pass either first or last, not both.', { field: 'first' });
  }
  const backwards = args.last != null;
  const size = args.first ?? args.last ?? limits.defaultPageSize ?? 50;
  if (!Number.isInteger(size) || size < 0 || size > maxPageSize) {
    throw new ValidationError(`Page size must be between 0 and ${maxPageSize}, got ${size}.`, {
      field: backwards ? 'last' : 'first',
    });
  }
  const order = resolveOrder(view, args.orderBy);
  const signature = `${view.name}|${order.map((o) => `${o.field}:${o.direction}`).join(',')}`;
  const params: unknown[] = [];
  const clauses = [compileWhere(view, args.where, params)];
  const afterCursor =
    args.after != null ? decodeCursor(view, order, args.after, signature, 'after') : undefined;
  const beforeCursor =
    args.before != null ? decodeCursor(view, order, args.before, signature, 'before') : undefined;
  if (afterCursor) clauses.push(keyset(view, order, afterCursor, params));
  if (beforeCursor) clauses.push(keyset(view, order.map(flip), beforeCursor, params));
  const scan = backwards ? order.map(flip) : order;
  // Qualified: an unqualified name in ORDER BY means the output column of that name, which
  // for a timestamp is its ISO text (see selectList), not the indexed column.
  const orderSql = scan
    .map(
      (o) => `t.${quoteIdentifier(o.field)} ${o.direction === 'ASC' ? 'asc nulls last' : 'desc nulls first'}`,
    )
    .join(', ');
  // Order values as text, exact: a cursor carries them and binds them back with the column's
  // type. A timestamp is its JSON string, ISO 8601 with the offset whatever the DateStyle, and
  // several times cheaper than to_char; its quotes come off when a cursor is made.
  const quoted = order.map((o) => view.columns[o.field]!.type === 'timestamptz');
  const keys = order
    .map((o, i) => {
      const column = `t.${quoteIdentifier(o.field)}`;
      return `${quoted[i] ? `to_json(${column})::text` : `${column}::text`} as "__k${i}"`;
    })
    .join(', ');
  params.push(size + 1);
  return {
    text: `select ${select}, ${keys} from ${qualified(schema, view.name)} t where ${clauses.join(' and ')}
     order by ${orderSql} limit $${params.length}`,
    params,
    page(rows, nodeOf) {
      const more = rows.length > size;
      const page = rows.slice(0, size);
      if (backwards) page.reverse();
      // A cursor is encoded when asked for: a page usually shows only its end cursor.
      const edges = page.map((row) => {
        let cursor: string | undefined;
        return {
          get cursor() {
            cursor ??= encodeCursor(
              signature,
              order.map((_, i) => {
                const value = row[`__k${i}`] as string | null;
                return quoted[i] && value !== null ? value.slice(1, -1) : value;
              }),
            );
            return cursor;
          },
          node: nodeOf(row),
        };
      });
      return {
        edges,
        pageInfo: {
          hasNextPage: backwards ? beforeCursor !== undefined : more,
          hasPreviousPage: backwards ? more : afterCursor !== undefined,
          startCursor: edges[0]?.cursor ?? null,
          endCursor: edges.at(-1)?.cursor ?? null,
        },
      };
    },
  };
}

export async function countRows(
  db: Queryable,
  schema: string,
  view: AnyView,
  where: Where | null | undefined,
) {
  const params: unknown[] = [];
  const { rows } = await db.query<{ n: string }>(
    `select count(*)::text as n from ${qualified(schema, view.name)} where ${compileWhere(view, where, params)}`,
    params,
  );
  return Number(rows[0]!.n);
}

/** One row by its primary key, or null. */
export async function queryByKey(
  db: Queryable,
  schema: string,
  view: AnyView,
  key: Record<string, unknown>,
): Promise<Record<string, unknown> | null> {
  const { text, params } = byKeyStatement(schema, view, key, selectList(view));
  const { rows } = await db.query<Record<string, unknown>>(text, params);
  return rows[0] ?? null;
}

/** The statement reading one row by its primary key, with `select` as its select list. */
export function byKeyStatement(
  schema: string,
  view: AnyView,
  key: Record<string, unknown>,
  select: string,
): { text: string; params: unknown[] } {
  const params: unknown[] = [];
  const clauses = view.primaryKey.map((column) => {
    params.push(key[column]);
    return `${quoteIdentifier(column)} = $${params.length}::${SQL_TYPES[view.columns[column]!.type]}`;
  });
  return {
    text: `select ${select} from ${qualified(schema, view.name)} t where ${clauses.join(' and ')}`,
    params,
  };
}

/** Every column in its canonical form (timestamps as ISO text with microseconds, not a Date). */
function selectList(view: AnyView): string {
  return canonicalSelectList(view.columns);
}

interface ResolvedOrder {
  field: string;
  direction: Direction;
}

function resolveOrder(view: AnyView, orderBy: readonly OrderBy[] | null | undefined): ResolvedOrder[] {
  const order: ResolvedOrder[] = [];
  for (const item of orderBy ?? []) {
    const column = view.columns[item.field];
    if (!column || !(COMPARABLE.has(column.type) || column.type === 'boolean')) {
      throw new ValidationError(`Cannot order view '${view.name}' by '${String(item.field).slice(0, 64)}'.`, {
        field: 'orderBy',
      });
    }
    if (order.some((o) => o.field === item.field)) continue;
    order.push({ field: item.field, direction: item.direction ?? 'ASC' });
  }
  if (order.length > 8) throw new ValidationError('orderBy lists more than 8 columns.', { field: 'orderBy' });
  for (const key of view.primaryKey) {
    if (!order.some((o) => o.field === key)) order.push({ field: key, direction: 'ASC' });
  }
  return order;
}

const flip = (o: ResolvedOrder): ResolvedOrder => ({
  ...o,
  direction: o.direction === 'ASC' ? 'DESC' : 'ASC',
});

/** Rows strictly after `values` in the given order (nulls last ascending, first descending). */
function keyset(view: AnyView, order: ResolvedOrder[], values: (string | null)[], params: unknown[]): string {
  const alternatives: string[] = [];
  const equal: string[] = [];
  order.forEach((o, i) => {
    const column = quoteIdentifier(o.field);
    const value = values[i] ?? null;
    let bound = '';
    if (value !== null) {
      params.push(value);
      bound = `$${params.length}::${SQL_TYPES[view.columns[o.field]!.type]}`;
    }
    let after: string | undefined;
    let same: string;
    if (o.direction === 'ASC') {
      after = value === null ? undefined : `(${column} > ${bound} or ${column} is null)`;
      same = value === null ? `${column} is null` : `${column} = ${bound}`;
    } else {
      after = value === null ? `${column} is not null` : `${column} < ${bound}`;
      same = value === null ? `${column} is null` : `${column} = ${bound}`;
    }
    if (after) alternatives.push([...equal, after].join(' and '));
    equal.push(same);
  });
  return alternatives.length === 0 ? 'false' : `(${alternatives.map((a) => `(${a})`).join(' or ')})`;
}

function encodeCursor(signature: string, values: (string | null)[]): string {
  return Buffer.from(JSON.stringify([signature, values])).toString('base64url');
}

function decodeCursor(
  view: AnyView,
  order: readonly ResolvedOrder[],
  cursor: string,
  signature: string,
  field: 'after' | 'before',
): (string | null)[] {
  const malformed = () =>
    new ValidationError('Malformed page cursor.', {
      field,
      hint: 'Pass a cursor exactly as a previous page returned it.',
    });
  let sig: unknown;
  let values: unknown;
  try {
    [sig, values] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as [unknown, unknown];
  } catch {
    throw malformed();
  }
  if (typeof sig !== 'string' || !Array.isArray(values)) throw malformed();
  if (sig !== signature) {
    const [cursorView] = sig.split('|');
    throw new ValidationError(
      cursorView !== view.name
        ? `This cursor belongs to another view${cursorView ? ` ('${cursorView.slice(0, 64)}')` : ''}.`
        : 'This cursor belongs to a different orderBy.',
      { field, hint: 'Use cursors only with the view and orderBy they came from.' },
    );
  }
  // Each value must be one the column could hold: a forged value must not reach a SQL cast.
  if (values.length !== order.length) throw malformed();
  values.forEach((value, i) => {
    if (value === null) return;
    if (typeof value !== 'string' || !cursorValueFits(view.columns[order[i]!.field]!.type, value))
      throw malformed();
  });
  return values as (string | null)[];
}

function cursorValueFits(type: ColumnType, text: string): boolean {
  try {
    switch (type) {
      case 'boolean':
        return text === 'true' || text === 'false';
      case 'integer':
        toCanonical('integer', text);
        return true;
      case 'double':
        return !Number.isNaN(Number(text)) || text === 'NaN';
      default:
        toCanonical(type, text);
        return true;
    }
  } catch {
    return false;
  }
}
