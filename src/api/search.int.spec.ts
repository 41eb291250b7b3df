import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.js';
import { itemRow, items, itemsSink, viewRows, writeItems } from '../../test/support/sinks.js';
import { createViewTable } from '../../test/support/viewTables.js';
import { waitFor } from '../../test/support/waitFor.js';
import { createPool, type Pool } from '../db/index.js';
import { loadSinks, type SinkWorkers, startSinks } from '../projections/index.js';
import { type Api, createApi } from './index.js';

const PRODUCTS: [number, string, string][] = [
  [1, 'Red laptop', 'A light laptop with a red lid'],
  [2, 'Blue laptop', 'A heavy laptop for gaming'],
  [3, 'Laptop stand', 'Aluminium stand for any laptop'],
  [4, 'Cheap red laptop', 'Refurbished, with scratches'],
  [5, 'Desk lamp', 'Warm light for the desk'],
  [6, 'Keyboard', 'Mechanical keyboard, "red" switches & 5 > 4 keys'],
];

let db: TestDatabase;
let pool: Pool;
let api: Api;
let sinks: SinkWorkers;
const sink = itemsSink('item_search', { fields: { name: { weight: 'A' }, description: { weight: 'C' } } });

async function gql(query: string, variables: Record<string, unknown> = {}, key = 'reader-key') {
  const response = await api.yoga.fetch('http://yoga/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ query, variables }),
  });
  return (await response.json()) as {
    data?: Record<string, unknown> | null;
    errors?: { message: string; extensions?: Record<string, unknown> }[];
  };
}

beforeAll(async () => {
  db = await createTestDatabase();
  pool = createPool(db.url, { max: 4 });
  await createViewTable(pool, items);
  await writeItems(
    pool,
    PRODUCTS.map(([id, name, description]) => ({
      op: 'upsert' as const,
      row: itemRow(id, name, description),
    })),
  );
  sinks = startSinks({ url: db.url, sinks: [sink], pollIntervalMs: 50 });
  await waitFor(
    async () => {
      const [row] = await loadSinks(pool, [sink.name]);
      return Boolean(row?.index_name && !row.pending_swap && !row.build_index);
    },
    { what: 'the index' },
  );
  api = await createApi({
    connectionString: db.url,
    pool,
    views: [items],
    sinks: [sink],
    config: {
      auth: {
        apiKeys: [
          { name: 'reader', key: 'reader-key', scopes: ['read'] },
          { name: 'appender', key: 'appender-key', scopes: ['append'] },
        ],
      },
      limits: { maxPageSize: 20, defaultPageSize: 10 },
    },
  });
});

afterAll(async () => {
  await api?.close();
  await sinks?.stop();
  await pool?.end();
  await db?.drop();
});

const SEARCH = `query Search($query: String!, $first: Int, $after: String, $where: ItemsWhere) {
  searchItems(query: $query, first: $first, after: $after, where: $where) {
    edges { cursor score highlights { field snippet } node { id name description price updated_at } }
    pageInfo { hasNextPage endCursor }
    totalCount
  }
}`;

type Hit = {
  cursor: string;
  score: number;
  highlights: { field: string; snippet: string }[];
  node: Record<string, unknown>;
};
type SearchResult = {
  edges: Hit[];
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
  totalCount: number;
};

async function search(variables: Record<string, unknown>): Promise<SearchResult> {
  const result = await gql(SEARCH, variables);
  expect(result.errors, JSON.stringify(result.errors)).toBeUndefined();
  return result.data!.searchItems as SearchResult;
}

describe('searchItems', () => {
  it('returns ranked hits, a name match above a description match, with highlights and the rows as queries give them', async () => {
    const result = await search({ query: 'laptop' });
    const ids = result.edges.map((edge) => edge.node.id);
    expect(ids.sort()).toEqual([1, 2, 3, 4]);
    const scores = result.edges.map((edge) => edge.score);
    expect([...scores].sort((a, b) => b - a)).toEqual(scores);
    expect(result.totalCount).toBe(4);
    const red = result.edges.find((edge) => edge.node.id === 1)!;
    expect(red.highlights, JSON.stringify(red.highlights)).toContainEqual({
      field: 'name',
      snippet: 'Red <mark>laptop</mark>',
    });
    // The nodes are the view's rows exactly as the items query returns them.
    const queried = await gql('{ items(first: 10) { nodes { id name description price updated_at } } }');
    const byId = new Map(
      (queried.data!.items as { nodes: Record<string, unknown>[] }).nodes.map((node) => [node.id, node]),
    );
    for (const edge of result.edges) expect(edge.node).toEqual(byId.get(edge.node.id));
    expect(red.node).toMatchObject({ price: '1.50', updated_at: '2026-01-02T03:04:05.123456Z' });
  });

  it('takes websearch syntax, matches the last word as a prefix, and escapes highlighted text', async () => {
    const phrase = await search({ query: '"red laptop" -cheap' });
    expect(phrase.edges.map((edge) => edge.node.id)).toEqual([1]);
    const prefix = await search({ query: 'keyb' });
    expect(prefix.edges.map((edge) => edge.node.id)).toEqual([6]);
    const escaped = await search({ query: 'switches' });
    expect(escaped.edges[0]!.highlights).toEqual([
      {
        field: 'description',
        snippet: 'Mechanical keyboard, &quot;red&quot; <mark>switches</mark> &amp; 5 &gt; 4 keys',
      },
    ]);
  });

  it('finds a misspelt word through trigrams (pg_trgm ships with the embedded server)', async () => {
    const result = await search({ query: 'mechanicall' });
    expect(result.edges.map((edge) => edge.node.id)).toEqual([6]);
  });

  it('pages through every hit once, best first, and filters with the same where as the connection', async () => {
    const seen: unknown[] = [];
    let after: string | null = null;
    for (;;) {
      const page: SearchResult = await search({ query: 'laptop', first: 1, after });
      seen.push(...page.edges.map((edge) => edge.node.id));
      if (!page.pageInfo.hasNextPage) break;
      after = page.pageInfo.endCursor;
    }
    const all = await search({ query: 'laptop' });
    expect(seen).toEqual(all.edges.map((edge) => edge.node.id));
    const filtered = await search({ query: 'laptop', where: { price: { lt: '3' } } });
    expect(filtered.edges.map((edge) => edge.node.id).sort()).toEqual([1, 2]);
    expect(filtered.totalCount).toBe(2);
  });

  it('refuses what the connections refuse: page sizes out of range, a foreign cursor, a missing scope', async () => {
    const tooMany = await gql(SEARCH, { query: 'laptop', first: 21 });
    const connection = await gql('{ items(first: 21) { nodes { id } } }');
    expect(tooMany.errors![0]!.extensions!.code).toBe(connection.errors![0]!.extensions!.code);
    expect(tooMany.errors![0]!.message).toBe(connection.errors![0]!.message);
    const first = await search({ query: 'laptop', first: 1 });
    const foreign = await gql(SEARCH, { query: 'lamp', after: first.pageInfo.endCursor });
    expect(foreign.errors![0]!.extensions!.code).toBe('VALIDATION_FAILED');
    const garbage = await gql(SEARCH, { query: 'lamp', after: 'not-a-cursor' });
    expect(garbage.errors![0]!.extensions!.code).toBe('VALIDATION_FAILED');
    const empty = await gql(SEARCH, { query: '   ' });
    expect(empty.errors![0]!.extensions!.code).toBe('VALIDATION_FAILED');
    const unscoped = await gql(SEARCH, { query: 'laptop' }, 'appender-key');
    const unscopedConnection = await gql('{ items { nodes { id } } }', {}, 'appender-key');
    expect(unscoped.errors![0]!.extensions!.code).toBe(unscopedConnection.errors![0]!.extensions!.code);
    expect(JSON.stringify(unscoped)).not.toMatch(/at .*\.ts/);
  });

  it('finds a renamed row under its new name once the sink applied the change', async () => {
    await writeItems(pool, [{ op: 'upsert', row: itemRow(5, 'Reading lamp', 'Warm light for the desk') }]);
    await waitFor(
      async () => (await search({ query: 'reading' })).edges.map((edge) => edge.node.id).join() === '5',
      { timeoutMs: 10_000, what: 'the renamed lamp' },
    );
    expect((await viewRows(pool)).find((row) => row.id === 5)?.name).toBe('Reading lamp');
  });
});
