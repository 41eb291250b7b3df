import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.js';
import { createViewTable, writeChanges } from '../../test/support/viewTables.js';
import { createPool, type Pool } from '../db/index.js';
import { defineView } from '../projections/index.js';
import { type Api, createApi } from './index.js';

// Queries of views are compiled to SQL and served before Yoga (compiledReads.ts). Each answer
// here is compared with what GraphQL execution answers for the same document (`yoga.fetch`
// never takes the compiled path), byte for byte once parsed, key order included.

const orders = defineView({
  name: 'order_summaries',
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
const customers = defineView({
  name: 'customers',
  columns: { id: { type: 'text' }, name: { type: 'text' } },
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
  ratio: i === 8 ? 1e-7 : i === 9 ? 1.7976931348623157e308 : i / 3,
  paid: i % 2 === 0,
  placed_at: new Date(Date.UTC(2026, 0, 1) + (i % 50) * 60_000).toISOString().replace('Z', '123+00:00'),
  tags: i % 2 ? ['a', `t${i % 3}`, 'quote " and \\ and \n'] : null,
  meta: i % 5 === 0 ? null : { n: i, kind: i % 2 ? 'odd' : 'even', deep: [1.5, 'é', { z: null, a: true }] },
});

let db: TestDatabase;
let pool: Pool;
let api: Api;
let url: string;

const KEYS = [
  { name: 'reader', key: 'reader-key', scopes: ['read' as const] },
  { name: 'other', key: 'other-key', scopes: ['read' as const, 'append' as const] },
  { name: 'appender', key: 'appender-key', scopes: ['append' as const] },
];
const auth = (key = 'reader-key') => ({ authorization: `Bearer ${key}` });

async function http(
  query: string,
  variables: Record<string, unknown> = {},
  headers: Record<string, string> = {},
  method: 'GET' | 'POST' = 'POST',
) {
  const response =
    method === 'POST'
      ? await fetch(url, {
          method,
          headers: { 'content-type': 'application/json', ...auth(), ...headers },
          body: JSON.stringify({ query, variables }),
        })
      : await fetch(`${url}?${new URLSearchParams({ query, variables: JSON.stringify(variables) })}`, {
          headers: { ...auth(), ...headers },
        });
  return { status: response.status, headers: response.headers, text: await response.text() };
}

async function executed(query: string, variables: Record<string, unknown> = {}) {
  const response = await api.yoga.fetch('http://yoga/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...auth() },
    body: JSON.stringify({ query, variables }),
  });
  return { status: response.status, headers: response.headers, text: await response.text() };
}

interface Connection {
  edges: { cursor: string; node: { id: string } }[];
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
}

/** Both paths, and the compiled one must have answered (it alone sets an ETag). */
async function compare(query: string, variables: Record<string, unknown> = {}) {
  const [compiled, reference] = await Promise.all([http(query, variables), executed(query, variables)]);
  expect(compiled.status, compiled.text).toBe(200);
  expect(compiled.headers.get('etag'), `not compiled: ${query}`).toMatch(/^W\/"/);
  expect(JSON.stringify(JSON.parse(compiled.text))).toBe(JSON.stringify(JSON.parse(reference.text)));
  // Parsed too: -0 and 0 print alike but are not equal.
  expect(JSON.parse(compiled.text)).toStrictEqual(JSON.parse(reference.text));
  expect(compiled.headers.get('content-type')).toBe(reference.headers.get('content-type'));
  return JSON.parse(compiled.text) as { data: Record<string, Connection> };
}

beforeAll(async () => {
  db = await createTestDatabase();
  pool = createPool(db.url, { max: 4 });
  await createViewTable(pool, orders);
  await createViewTable(pool, customers);
  await writeChanges(
    pool,
    orders,
    Array.from({ length: 120 }, (_, i) => ({ op: 'upsert' as const, row: rowFor(i) })),
  );
  await writeChanges(pool, customers, [{ op: 'upsert', row: { id: 'c-1', name: 'Ada' } }]);
  // -0 is a double a table may hold (pg sends a JavaScript -0 as 0): it is served as 0.
  await pool.query(`update tributary_views.order_summaries set ratio = '-0' where id = 'o-0007'`);
  api = await createApi({
    connectionString: db.url,
    pool,
    views: [orders, customers],
    config: { auth: { apiKeys: KEYS } },
  });
  ({ url } = await api.listen(0, '127.0.0.1'));
});

afterAll(async () => {
  await api?.close();
  await pool?.end();
  await db?.drop();
});

const ALL = 'id customer status total items big ratio paid placed_at tags meta';

describe('compiled queries', () => {
  it('answer what GraphQL execution answers: every column type, aliases, fragments, typenames', async () => {
    await compare(`{ orderSummaries(first: 30) { nodes { ${ALL} } } }`);
    await compare(`{ orderSummaries(first: 5, orderBy: [{ field: ratio, direction: DESC }]) {
      __typename totalCount
      edges { __typename cursor node { __typename ...F k: id } }
      info: pageInfo { hasNextPage hasPreviousPage startCursor endCursor __typename }
      nodes { total placed_at } n2: nodes { id }
      ... on OrderSummariesConnection { nodes { customer } }
    } } fragment F on OrderSummaries { meta tags }`);
    await compare(
      `query ($id: String!, $missing: String!) {
        a: orderSummariesByKey(id: $id) { ${ALL} }
        b: orderSummariesByKey(id: $missing) { id }
        customers(first: 1) { nodes { name } }
      }`,
      { id: 'o-0007', missing: 'nope' },
    );
    await compare(
      `{ orderSummaries(first: 0) { nodes { id } pageInfo { hasNextPage endCursor } totalCount } }`,
    );
  });

  it('filter, order and page exactly as execution does, forwards and backwards', async () => {
    const where = { or: [{ status: { eq: 'paid' } }, { status: { isNull: true } }], total: { gte: '100.5' } };
    const orderBy = [
      { field: 'status', direction: 'DESC' },
      { field: 'placed_at', direction: 'ASC' },
    ];
    const query = `query ($where: OrderSummariesWhere, $orderBy: [OrderSummariesOrderBy!], $first: Int, $after: String, $last: Int, $before: String) {
      orderSummaries(where: $where, orderBy: $orderBy, first: $first, after: $after, last: $last, before: $before) {
        edges { cursor node { id status placed_at } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } totalCount } }`;
    const seen: string[] = [];
    let after: string | null = null;
    for (;;) {
      const page = await compare(query, { where, orderBy, first: 7, after });
      const connection = page.data.orderSummaries!;
      seen.push(...connection.edges.map((edge) => edge.node.id));
      if (!connection.pageInfo.hasNextPage) break;
      after = connection.pageInfo.endCursor;
    }
    const { rows } = await pool.query<{ id: string }>(
      `select id from tributary_views.order_summaries where (status = 'paid' or status is null) and total >= 100.5
       order by status desc nulls first, placed_at asc, id asc`,
    );
    expect(seen).toEqual(rows.map((row) => row.id));
    const last = await compare(query, { where, orderBy, last: 4, before: after });
    expect(last.data.orderSummaries!.pageInfo.hasNextPage).toBe(true);
  });

  it('leave errors to GraphQL execution, which answers them as before (no ETag)', async () => {
    for (const [query, variables] of [
      ['{ orderSummaries(first: 5000) { nodes { id } } }', {}],
      ['{ orderSummaries(first: 1, last: 1) { nodes { id } } }', {}],
      ['{ orderSummaries(after: "bm90IGEgY3Vyc29y") { nodes { id } } }', {}],
      ['query ($n: Int) { orderSummaries(first: $n) { nodes { id } } }', { n: 'x' }],
      ['{ orderSummaries { nodes { nope } } }', {}],
      ['{ orderSummaries(where: { total: { gte: "abc" } }) { nodes { id } } }', {}],
    ] as const) {
      const [compiled, reference] = await Promise.all([http(query, variables), executed(query, variables)]);
      expect(compiled.headers.get('etag')).toBeNull();
      expect(compiled.status).toBe(reference.status);
      expect(JSON.parse(compiled.text)).toEqual(JSON.parse(reference.text));
      expect(JSON.parse(compiled.text).errors.length).toBeGreaterThan(0);
    }
    // Without the read scope: the same refusal as execution gives.
    const refused = await http('{ orderSummaries { nodes { id } } }', {}, auth('appender-key'));
    expect(refused.headers.get('etag')).toBeNull();
    expect(JSON.parse(refused.text).errors[0].extensions.code).toBe('FORBIDDEN');
  });

  it('answer one document with many variable values, each exactly, and refuse bad values and callers without the scope every time', async () => {
    const query = `query ($first: Int, $status: String) {
      orderSummaries(first: $first, where: { status: { eq: $status } }, orderBy: [{ field: total, direction: DESC }]) {
        nodes { id total } pageInfo { endCursor } } }`;
    const sizes = (page: { data: Record<string, unknown> }) =>
      (page.data.orderSummaries as { nodes: unknown[] }).nodes.length;
    expect(sizes(await compare(query, { first: 3, status: 'paid' }))).toBe(3);
    expect(sizes(await compare(query, { first: 5, status: 'paid' }))).toBe(5);
    expect(sizes(await compare(query, { first: 3, status: 'paid' }))).toBe(3);
    await compare(query, { first: 3, status: 'new' });
    // Refused values are refused every time, and do not disturb the answers to others.
    for (let i = 0; i < 2; i++) {
      const refused = await http(query, { first: 5000, status: 'paid' });
      expect(refused.headers.get('etag')).toBeNull();
      expect(JSON.parse(refused.text).errors[0].message).toMatch(/Page size/);
    }
    expect(sizes(await compare(query, { first: 3, status: 'paid' }))).toBe(3);
    // A caller without the read scope, with variables another caller was answered for.
    const forbidden = await http(query, { first: 3, status: 'paid' }, auth('appender-key'));
    expect(forbidden.headers.get('etag')).toBeNull();
    expect(JSON.parse(forbidden.text).errors[0].extensions.code).toBe('FORBIDDEN');
    for (let first = 1; first <= 20; first++) await compare(query, { first, status: 'shipped' });
    expect(sizes(await compare(query, { first: 5, status: 'paid' }))).toBe(5);
  });
});

describe('ETag and 304', () => {
  const query =
    '{ orderSummaries(first: 3, orderBy: [{ field: total, direction: DESC }]) { nodes { id total } } }';

  it('revalidate an unchanged page with 304, over GET and POST, and change with any view the query reads', async () => {
    const first = await http(query, {}, {}, 'GET');
    const tag = first.headers.get('etag')!;
    expect(tag).toMatch(/^W\/"/);
    expect(first.headers.get('cache-control')).toBe('private, no-cache');
    expect(first.headers.get('vary')).toMatch(/Authorization/);

    for (const method of ['GET', 'POST'] as const) {
      const again = await http(query, {}, { 'if-none-match': tag }, method);
      expect(again.status).toBe(304);
      expect(again.text).toBe('');
      expect(again.headers.get('etag')).toBe(tag);
    }
    // Another view changes: this page's tag holds.
    await writeChanges(pool, customers, [{ op: 'upsert', row: { id: 'c-2', name: 'Grace' } }]);
    expect((await http(query, {}, { 'if-none-match': tag }, 'GET')).status).toBe(304);

    // A row this page does not even show changes: the view changed, so the tag does.
    await writeChanges(pool, orders, [{ op: 'upsert', row: { ...rowFor(1), customer: 'someone else' } }]);
    const changed = await http(query, {}, { 'if-none-match': tag }, 'GET');
    expect(changed.status).toBe(200);
    const next = changed.headers.get('etag')!;
    expect(next).not.toBe(tag);
    expect(JSON.parse(changed.text)).toEqual(JSON.parse((await executed(query)).text));
    expect((await http(query, {}, { 'if-none-match': next }, 'POST')).status).toBe(304);

    // A query over two views changes with either.
    const both = `{ orderSummaries(first: 1) { nodes { id } } customers { nodes { id name } } }`;
    const bothTag = (await http(both)).headers.get('etag')!;
    expect((await http(both, {}, { 'if-none-match': bothTag })).status).toBe(304);
    await writeChanges(pool, customers, [{ op: 'delete', row: { id: 'c-2' } }]);
    const afterDelete = await http(both, {}, { 'if-none-match': bothTag });
    expect(afterDelete.status).toBe(200);
    expect(JSON.parse(afterDelete.text).data.customers.nodes).toEqual([{ id: 'c-1', name: 'Ada' }]);
  });

  it('differs by variables and by caller: one caller’s tag never revalidates for another', async () => {
    const byKey = 'query ($id: String!) { orderSummariesByKey(id: $id) { id total } }';
    const a = (await http(byKey, { id: 'o-0001' })).headers.get('etag')!;
    const b = (await http(byKey, { id: 'o-0002' })).headers.get('etag')!;
    expect(a).not.toBe(b);
    expect((await http(byKey, { id: 'o-0002' }, { 'if-none-match': a })).status).toBe(200);
    expect((await http(byKey, { id: 'o-0001' }, { 'if-none-match': a })).status).toBe(304);

    const other = await http(byKey, { id: 'o-0001' }, { ...auth('other-key'), 'if-none-match': a });
    expect(other.status).toBe(200);
    expect(other.headers.get('etag')).not.toBe(a);
    // A caller without the read scope is refused, whatever tag it sends.
    const refused = await http(byKey, { id: 'o-0001' }, { ...auth('appender-key'), 'if-none-match': a });
    expect(refused.status).not.toBe(304);
    expect(JSON.parse(refused.text).errors[0].extensions.code).toBe('FORBIDDEN');
    // No credentials: refused before anything is read.
    const anonymous = await fetch(
      `${url}?${new URLSearchParams({ query: '{ customers { nodes { id } } }' })}`,
      {
        headers: { 'if-none-match': a },
      },
    );
    expect(anonymous.status).toBe(401);
  });

  it('prepare a statement from its second run, on each connection, no more than api.preparedStatements, and still read a view table swapped in', async () => {
    // One connection, so pg_prepared_statements (which is per session) shows what the API prepared.
    const regions = defineView({
      name: 'regions',
      columns: { id: { type: 'text' }, name: { type: 'text' } },
      primaryKey: ['id'],
    });
    await createViewTable(pool, regions);
    await writeChanges(pool, regions, [{ op: 'upsert', row: { id: 'r-1', name: 'North' } }]);
    const prepared = async (one: Pool) =>
      (
        await one.query<{ statement: string }>(
          `select statement from pg_prepared_statements where name like 'tributary\\_read\\_%'`,
        )
      ).rows.map((row) => row.statement);
    const query = '{ regions(first: 10) { nodes { id name } } }';
    for (const preparedStatements of [0, 1, 100]) {
      const one = createPool(db.url, { max: 1 });
      const served = await createApi({
        connectionString: db.url,
        pool: one,
        views: [regions],
        config: { auth: { open: true }, preparedStatements },
      });
      try {
        const { url: endpoint } = await served.listen(0, '127.0.0.1');
        const ask = async (document = query) => {
          const response = await fetch(endpoint, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ query: document }),
          });
          expect(response.headers.get('etag')).toMatch(/^W\//);
          return (await response.json()).data.regions.nodes as { id: string; name: string }[];
        };
        expect(await ask()).toEqual([{ id: 'r-1', name: 'North' }]);
        expect(await prepared(one)).toEqual([]); // a first run is not prepared
        expect(await ask()).toEqual([{ id: 'r-1', name: 'North' }]);
        const statements = await prepared(one);
        if (preparedStatements === 0) {
          expect(statements).toEqual([]);
          continue;
        }
        expect(statements).toHaveLength(1);
        expect(statements[0]).toContain('"tributary_views"."regions"');
        if (preparedStatements === 1) {
          // Another statement, run twice, is past the bound: it runs unnamed.
          const other = '{ regions(first: 10) { nodes { name } } }';
          expect(await ask(other)).toEqual([{ name: 'North' }]);
          expect(await ask(other)).toEqual([{ name: 'North' }]);
          expect(await prepared(one)).toEqual(statements);
          continue;
        }
        // A table swapped in under the view's name (as a rebuild does) is what the prepared
        // statement reads next: PostgreSQL plans it again.
        await one.query(
          `create table tributary_views.regions_next (like tributary_views.regions including all)`,
        );
        await one.query(`insert into tributary_views.regions_next values ('r-2', 'South')`);
        await one.query('alter table tributary_views.regions rename to regions_old');
        await one.query('alter table tributary_views.regions_next rename to regions');
        await one.query('drop table tributary_views.regions_old');
        expect(await ask()).toEqual([{ id: 'r-2', name: 'South' }]);
        expect(await prepared(one)).toHaveLength(1);
      } finally {
        await served.close();
        await one.end();
      }
    }
  });
});
