import { printSchema } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.js';
import { createViewTable, writeChanges } from '../../test/support/viewTables.js';
import { createPool, type Pool } from '../db/index.js';
import { defineView, resolveSinks } from '../projections/index.js';
import { type Api, createApi, matchesWhere, type Where } from './index.js';

const orders = defineView({
  name: 'order_summaries',
  description: 'One row per order.',
  columns: {
    id: { type: 'text' },
    customer: { type: 'text' },
    status: { type: 'text', nullable: true },
    total: { type: 'numeric' },
    items: { type: 'integer' },
    big: { type: 'bigint', nullable: true },
    ratio: { type: 'double', nullable: true },
    paid: { type: 'boolean' },
    placed_at: { type: 'timestamptz' },
    tags: { type: 'text[]', nullable: true },
    meta: { type: 'jsonb', nullable: true },
  },
  primaryKey: ['id'],
});

const STATUSES = ['new', 'paid', 'shipped', null] as const;
const rowFor = (i: number) => ({
  id: `o-${String(i).padStart(4, '0')}`,
  customer: `c-${i % 7}`,
  status: STATUSES[i % 4],
  total: `${(i * 37) % 1000}.${String(i % 100).padStart(2, '0')}`,
  items: i % 5,
  big: i % 3 === 0 ? null : `${9007199254740993n + BigInt(i)}`,
  ratio: i / 3,
  paid: i % 2 === 0,
  placed_at: new Date(Date.UTC(2026, 0, 1) + (i % 50) * 60_000).toISOString().replace('Z', '123+00:00'),
  tags: i % 2 ? ['a', `t${i % 3}`] : null,
  meta: { n: i, kind: i % 2 ? 'odd' : 'even' },
});
const ROWS = Array.from({ length: 230 }, (_, i) => rowFor(i));

let db: TestDatabase;
let pool: Pool;
let api: Api;

async function gql(
  query: string,
  variables: Record<string, unknown> = {},
  headers: Record<string, string> = {},
) {
  const response = await api.yoga.fetch('http://yoga/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ query, variables }),
  });
  return (await response.json()) as {
    data?: Record<string, unknown>;
    errors?: { message: string; extensions?: Record<string, unknown> }[];
  };
}

beforeAll(async () => {
  db = await createTestDatabase();
  pool = createPool(db.url, { max: 4 });
  await createViewTable(pool, orders);
  await writeChanges(
    pool,
    orders,
    ROWS.map((row) => ({ op: 'upsert' as const, row })),
  );
  api = await createApi({
    connectionString: db.url,
    pool,
    views: [orders],
    // A search sink adds `searchOrderSummaries` to the schema (its index is not needed here).
    sinks: resolveSinks(
      {
        orderSearch: {
          view: 'order_summaries',
          backend: { kind: 'postgres' },
          fields: ['customer', 'status'],
        },
      },
      [orders],
    ),
    config: { auth: { open: true } },
  });
});

afterAll(async () => {
  await api?.close();
  await pool?.end();
  await db?.drop();
});

const PAGE = `query Page($where: OrderSummariesWhere, $orderBy: [OrderSummariesOrderBy!], $first: Int, $after: String, $last: Int, $before: String) {
  orderSummaries(where: $where, orderBy: $orderBy, first: $first, after: $after, last: $last, before: $before) {
    edges { cursor node { id } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}`;

type PageResult = {
  edges: { cursor: string; node: { id: string } }[];
  pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; startCursor: string; endCursor: string };
};

async function sqlIds(where: string, orderBy: string, params: unknown[] = []): Promise<string[]> {
  const { rows } = await pool.query<{ id: string }>(
    `select id from tributary_views.order_summaries where ${where} order by ${orderBy}`,
    params,
  );
  return rows.map((row) => row.id);
}

describe('generated schema', () => {
  it('matches the snapshot', async () => {
    await expect(printSchema(api.schema)).toMatchFileSnapshot('__snapshots__/schema.graphql.snap');
  });
});

describe('connections', () => {
  it('pages forwards and backwards through every row in a stable order, ties broken by the key', async () => {
    const orderBy = [
      { field: 'status', direction: 'DESC' },
      { field: 'total', direction: 'ASC' },
    ];
    const expected = await sqlIds('true', 'status desc nulls first, total asc nulls last, id asc');
    const forward: string[] = [];
    let after: string | null = null;
    for (;;) {
      const result = await gql(PAGE, { orderBy, first: 17, after });
      expect(result.errors).toBeUndefined();
      const page = result.data!.orderSummaries as unknown as PageResult;
      forward.push(...page.edges.map((e) => e.node.id));
      if (!page.pageInfo.hasNextPage) break;
      after = page.pageInfo.endCursor;
    }
    expect(forward).toEqual(expected);

    const backward: string[] = [];
    let before: string | null = null;
    for (;;) {
      const result = await gql(PAGE, { orderBy, last: 23, before });
      const page = result.data!.orderSummaries as unknown as PageResult;
      backward.unshift(...page.edges.map((e) => e.node.id));
      if (!page.pageInfo.hasPreviousPage) break;
      before = page.pageInfo.startCursor;
    }
    expect(backward).toEqual(expected);
  });

  it('orders by a nullable bigint and a timestamp with microseconds', async () => {
    const orderBy = [
      { field: 'big', direction: 'ASC' },
      { field: 'placed_at', direction: 'DESC' },
    ];
    const expected = await sqlIds('true', 'big asc nulls last, placed_at desc nulls first, id');
    const ids: string[] = [];
    let after: string | null = null;
    do {
      const page = (await gql(PAGE, { orderBy, first: 40, after })).data!.orderSummaries as PageResult;
      ids.push(...page.edges.map((e) => e.node.id));
      after = page.pageInfo.hasNextPage ? page.pageInfo.endCursor : null;
    } while (after);
    expect(ids).toEqual(expected);
  });

  it('filters with every operator and and/or/not, like the same SQL', async () => {
    const cases: [Record<string, unknown>, string, unknown[]][] = [
      [{ customer: { eq: 'c-3' } }, 'customer = $1', ['c-3']],
      [{ status: { ne: 'new' } }, 'status <> $1', ['new']],
      [{ status: { in: ['paid', 'shipped'] } }, 'status in ($1, $2)', ['paid', 'shipped']],
      [{ status: { notIn: ['paid'] } }, 'status <> $1', ['paid']],
      [{ total: { gte: '500', lt: '700.5' } }, 'total >= 500 and total < 700.5', []],
      [{ items: { lte: 1 }, paid: { eq: true } }, 'items <= 1 and paid', []],
      [{ big: { gt: '9007199254741100' } }, 'big > 9007199254741100', []],
      [{ status: { isNull: true } }, 'status is null', []],
      [{ id: { startsWith: 'o-01' } }, "id like 'o-01%'", []],
      [{ customer: { contains: '-5' } }, "customer like '%-5%'", []],
      [{ tags: { contains: ['t1'] } }, "tags @> array['t1']", []],
      [{ meta: { contains: { kind: 'odd' } } }, `meta @> '{"kind":"odd"}'`, []],
      [{ placed_at: { lt: '2026-01-01T00:10:00Z' } }, "placed_at < '2026-01-01T00:10:00Z'", []],
      [
        {
          or: [{ customer: { eq: 'c-1' } }, { and: [{ items: { eq: 4 } }, { not: { paid: { eq: true } } }] }],
        },
        "customer = 'c-1' or (items = 4 and not paid)",
        [],
      ],
    ];
    // Subscriptions evaluate the same `where` on changelog rows (JSON): it must agree with SQL.
    const { rows: json } = await pool.query<{ row: Record<string, unknown> }>(
      'select to_jsonb(t) as row from tributary_views.order_summaries t order by id',
    );
    for (const [where, sql, params] of cases) {
      const matched = json
        .filter(({ row }) => matchesWhere(orders, where as Where, row))
        .map(({ row }) => row.id);
      expect(matched, `matchesWhere ${JSON.stringify(where)}`).toEqual(await sqlIds(sql, 'id', params));
      const result = await gql(PAGE, { where, first: 1000 });
      expect(result.errors, JSON.stringify(where)).toBeUndefined();
      const ids = (result.data!.orderSummaries as unknown as PageResult).edges.map((e) => e.node.id);
      expect(ids, JSON.stringify(where)).toEqual(await sqlIds(sql, 'id', params));
      expect(ids.length, JSON.stringify(where)).toBeGreaterThan(0);
    }
  });

  it('returns typed values: numeric and bigint as exact strings, timestamps with microseconds, JSON', async () => {
    const result = await gql(
      `{ orderSummariesByKey(id: "o-0001") { id total big placed_at meta tags paid ratio } }`,
    );
    expect(result.errors).toBeUndefined();
    expect(result.data!.orderSummariesByKey).toEqual({
      id: 'o-0001',
      total: '37.01',
      big: '9007199254740994',
      placed_at: '2026-01-01T00:01:00.000123Z',
      meta: { n: 1, kind: 'odd' },
      tags: ['a', 't1'],
      paid: false,
      ratio: 1 / 3,
    });
    expect((await gql(`{ orderSummariesByKey(id: "nope") { id } }`)).data!.orderSummariesByKey).toBeNull();
  });

  it('counts only when asked, with the same filter', async () => {
    const result = await gql(
      `{ orderSummaries(first: 2, where: { paid: { eq: true } }) { totalCount nodes { id } } }`,
    );
    expect(result.data!.orderSummaries).toMatchObject({ totalCount: 115 });
  });

  it('refuses a cursor from another ordering and page sizes out of range', async () => {
    const first = (await gql(PAGE, { first: 1 })).data!.orderSummaries as unknown as PageResult;
    const wrong = await gql(PAGE, {
      first: 1,
      after: first.pageInfo.endCursor,
      orderBy: [{ field: 'total' }],
    });
    expect(wrong.errors?.[0]?.extensions?.code).toBe('VALIDATION_FAILED');
    const big = await gql(PAGE, { first: 100000 });
    expect(big.errors?.[0]?.extensions?.code).toBe('VALIDATION_FAILED');
    const garbage = await gql(PAGE, { first: 1, after: "x' or 1=1 --" });
    expect(garbage.errors?.[0]?.extensions?.code).toBe('VALIDATION_FAILED');
  });
});
