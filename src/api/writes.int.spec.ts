import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.js';
import { waitFor } from '../../test/support/waitFor.js';
import { createPool, type Pool } from '../db/index.js';
import { defineProjection, defineView, startWorkers, type Workers } from '../projections/index.js';
import { type Api, createApi } from './index.js';

const balances = defineView({
  name: 'balances',
  columns: { account: { type: 'text' }, balance: { type: 'bigint', nullable: false } },
  primaryKey: ['account'],
});
const projection = defineProjection({
  name: 'balances',
  version: 1,
  views: [balances],
  filter: { types: ['Deposited'] },
  async handle(event, ctx) {
    const account = String(event.data.account);
    const row = await ctx.get(balances, { account });
    await ctx.upsert(balances, {
      account,
      balance: String(BigInt(row?.balance ?? '0') + BigInt(Number(event.data.amount))),
    });
  },
});

const SECRET = 'a-test-secret-that-is-long-enough-for-hs256';
let db: TestDatabase;
let pool: Pool;
let api: Api;
let workers: Workers | undefined;

type Result = {
  data?: Record<string, unknown> | null;
  errors?: { message: string; extensions?: Record<string, unknown> }[];
};
async function gql(
  query: string,
  variables: Record<string, unknown> = {},
  headers: Record<string, string> = {},
): Promise<Result> {
  const response = await api.yoga.fetch('http://yoga/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ query, variables }),
  });
  return (await response.json()) as Result;
}

const ADMIN = { authorization: 'Bearer admin-key' };
const READER = { authorization: 'Bearer reader-key' };
const WRITER = { 'x-api-key': 'writer-key' };

const APPEND = `mutation ($stream: String!, $expected: ExpectedVersion, $events: [EventInput!]!) {
  appendEvents(streamId: $stream, expectedVersion: $expected, events: $events) { position nextExpectedVersion appended }
}`;
const deposit = (account: string, amount: number, id?: string) => ({
  type: 'Deposited',
  data: { account, amount },
  ...(id ? { id } : {}),
});

beforeAll(async () => {
  db = await createTestDatabase();
  pool = createPool(db.url, { max: 6 });
  api = await createApi({
    connectionString: db.url,
    pool,
    projections: [projection],
    production: true,
    config: {
      auth: {
        apiKeys: [
          { name: 'admin', key: 'admin-key', scopes: ['admin'] },
          { name: 'reader', key: 'sha256:' + (await sha256('reader-key')), scopes: ['read'] },
          { name: 'writer', key: 'writer-key', scopes: ['append'] },
          { name: 'prometheus', key: 'scrape-key', scopes: ['metrics'] },
        ],
        jwt: { secret: SECRET, issuer: 'tests' },
      },
      limits: { readYourWritesTimeoutMs: 1500, maxDepth: 6, maxAliases: 5, maxBodyBytes: 20_000 },
    },
  });
});

afterAll(async () => {
  await workers?.stop();
  await api?.close();
  await pool?.end();
  await db?.drop();
});

async function sha256(text: string) {
  const { createHash } = await import('node:crypto');
  return createHash('sha256').update(text).digest('hex');
}

describe('appendEvents', () => {
  it('returns the position and the next expected version; a wrong version is a typed error with the current one', async () => {
    const first = await gql(
      APPEND,
      { stream: 'account-a', expected: 'no_stream', events: [deposit('a', 5), deposit('a', 7)] },
      WRITER,
    );
    expect(first.errors).toBeUndefined();
    expect(first.data!.appendEvents).toMatchObject({ nextExpectedVersion: 2, appended: true });
    const second = await gql(APPEND, { stream: 'account-a', expected: 2, events: [deposit('a', 1)] }, WRITER);
    expect(second.data!.appendEvents).toMatchObject({ nextExpectedVersion: 3 });
    expect(
      (second.data!.appendEvents as { position: string }).position >
        (first.data!.appendEvents as { position: string }).position,
    ).toBe(true);

    const stale = await gql(APPEND, { stream: 'account-a', expected: 1, events: [deposit('a', 1)] }, WRITER);
    expect(stale.data).toBeNull();
    expect(stale.errors![0]!.extensions).toMatchObject({
      code: 'WRONG_EXPECTED_VERSION',
      currentVersion: 3,
      expectedVersion: 1,
      streamId: 'account-a',
    });
    const invalid = await gql(APPEND, { stream: 'account-a', events: [{ type: '', data: {} }] }, WRITER);
    expect(invalid.errors![0]!.extensions).toMatchObject({ code: 'VALIDATION_FAILED' });
    const badExpected = await gql(
      APPEND,
      { stream: 'account-a', expected: 'sometimes', events: [deposit('a', 1)] },
      WRITER,
    );
    expect(badExpected.errors![0]!.extensions).toMatchObject({ code: 'VALIDATION_FAILED' });
  });

  it('is idempotent by event id', async () => {
    const events = [deposit('b', 3, 'dep-1')];
    const once = await gql(APPEND, { stream: 'account-b', events }, WRITER);
    const twice = await gql(APPEND, { stream: 'account-b', events }, WRITER);
    expect(twice.data!.appendEvents).toMatchObject({ appended: false, nextExpectedVersion: 1 });
    expect((twice.data!.appendEvents as { position: string }).position).toBe(
      (once.data!.appendEvents as { position: string }).position,
    );
  });
});

describe('read-your-writes', () => {
  const READ = `query ($at: String) { balancesByKey(account: "c", minPosition: $at) { balance } }`;

  it('times out with a clear error while the projection has not passed the position', async () => {
    const appended = await gql(APPEND, { stream: 'account-c', events: [deposit('c', 40)] }, WRITER);
    const position = (appended.data!.appendEvents as { position: string }).position;
    const result = await gql(READ, { at: position }, READER);
    expect(result.errors![0]!.extensions).toMatchObject({ code: 'READ_YOUR_WRITES_TIMEOUT' });
  });

  it('answers once the projection has applied the append', async () => {
    workers = startWorkers({ url: db.url, projections: [projection], pollIntervalMs: 100 });
    const appended = await gql(APPEND, { stream: 'account-c', events: [deposit('c', 2)] }, WRITER);
    const position = (appended.data!.appendEvents as { position: string }).position;
    const result = await gql(READ, { at: position }, READER);
    expect(result.errors).toBeUndefined();
    expect(result.data!.balancesByKey).toEqual({ balance: '42' });
    const status = await gql('{ projections { name state position lagEvents } }', {}, READER);
    expect(status.data!.projections).toEqual([
      expect.objectContaining({ name: 'balances', state: 'running', lagEvents: 0 }),
    ]);
  });
});

describe('subscriptions fed by the projection runner', () => {
  it('streams the rows a projection writes, in-process over SSE', async () => {
    const response = await api.yoga.fetch('http://yoga/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...READER },
      body: JSON.stringify({
        query:
          'subscription { balancesChanges(where: { account: { eq: "d" } }) { op cursor row { account balance } } }',
      }),
    });
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    const rows: { op: string; row: { account: string; balance: string } }[] = [];
    // The stream starts when it is read, so read in the background from now on.
    const reading = (async () => {
      let text = '';
      while (rows.at(-1)?.row.balance !== '10') {
        const { value, done } = await reader.read();
        if (done) break;
        text += decoder.decode(value);
        const events = text.split('\n\n');
        text = events.pop()!;
        for (const event of events) {
          const data = /^data: (.*)$/m.exec(event)?.[1];
          const payload = data
            ? (JSON.parse(data) as { data?: { balancesChanges: (typeof rows)[number] } })
            : {};
          if (payload.data) rows.push(payload.data.balancesChanges);
        }
      }
    })();
    await waitFor(() => api.tailer.listeners > 0, { what: 'subscriber attached' });
    await gql(
      APPEND,
      { stream: 'account-d', events: [deposit('d', 9), deposit('e', 1), deposit('d', 1)] },
      WRITER,
    );
    await reading;
    await reader.cancel();
    // A batch writes each key once (its final state), so 'd' may arrive as 9 then 10, or as 10 at once.
    expect(rows.every((r) => r.op === 'UPSERT' && r.row.account === 'd')).toBe(true);
    expect(rows.at(-1)!.row).toEqual({ account: 'd', balance: '10' });
    await waitFor(() => api.tailer.listeners === 0, {
      what: 'the subscription to end when the client leaves',
    });
  });
});

describe('auth and scopes', () => {
  const READ = '{ balances(first: 1) { nodes { account } } }';

  it('refuses missing and unknown credentials, and credentials without the scope', async () => {
    expect((await gql(READ)).errors![0]!.extensions).toMatchObject({ code: 'UNAUTHENTICATED' });
    expect((await gql(READ, {}, { authorization: 'Bearer nope' })).errors![0]!.extensions).toMatchObject({
      code: 'UNAUTHENTICATED',
    });
    expect((await gql(READ, {}, WRITER)).errors![0]!.extensions).toMatchObject({
      code: 'FORBIDDEN',
      requiredScope: 'read',
    });
    const append = await gql(APPEND, { stream: 'x-1', events: [deposit('x', 1)] }, READER);
    expect(append.errors![0]!.extensions).toMatchObject({ code: 'FORBIDDEN', requiredScope: 'append' });
    expect((await gql(READ, {}, READER)).errors).toBeUndefined();
    expect((await gql(READ, {}, ADMIN)).errors).toBeUndefined();
    expect((await gql(APPEND, { stream: 'x-2', events: [deposit('x', 1)] }, ADMIN)).errors).toBeUndefined();
  });

  it('accepts JWTs signed with the configured key, with scopes from the scope claim', async () => {
    const sign = (scope: string, issuer = 'tests', secret = SECRET) =>
      new SignJWT({ scope })
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject('user-1')
        .setIssuer(issuer)
        .setExpirationTime('5m')
        .sign(new TextEncoder().encode(secret));
    expect((await gql(READ, {}, { authorization: `Bearer ${await sign('read')}` })).errors).toBeUndefined();
    const noAppend = await gql(
      APPEND,
      { stream: 'x-3', events: [deposit('x', 1)] },
      { authorization: `Bearer ${await sign('read')}` },
    );
    expect(noAppend.errors![0]!.extensions).toMatchObject({ code: 'FORBIDDEN' });
    const forged = await gql(
      READ,
      {},
      { authorization: `Bearer ${await sign('admin', 'tests', 'another-secret-another-secret-123')}` },
    );
    expect(forged.errors![0]!.extensions).toMatchObject({ code: 'UNAUTHENTICATED' });
    const wrongIssuer = await gql(READ, {}, { authorization: `Bearer ${await sign('read', 'elsewhere')}` });
    expect(wrongIssuer.errors![0]!.extensions).toMatchObject({ code: 'UNAUTHENTICATED' });
  });
});

describe('hostile requests', () => {
  it('rejects deep nesting, alias floods, huge bodies and introspection in production', async () => {
    const legit = '{ balances { edges { node { account } } pageInfo { endCursor } } }';
    expect((await gql(legit, {}, READER)).errors).toBeUndefined();
    // Measured before validation: nesting alone is refused, whatever the fields are.
    const deep = `{ ${'balances { '.repeat(13)}account${' }'.repeat(13)} }`;
    const deepResult = await gql(deep, {}, READER);
    expect(deepResult.data).toBeUndefined();
    expect(deepResult.errors!.map((e) => e.extensions?.limit)).toContain('maxDepth');

    const aliases = `{ ${Array.from({ length: 50 }, (_, i) => `a${i}: __typename`).join(' ')} }`;
    expect((await gql(aliases, {}, READER)).errors![0]!.extensions?.code).toBe('QUERY_TOO_COMPLEX');

    const huge = await gql(`{ __typename }`, { padding: 'x'.repeat(50_000) }, READER);
    expect(huge.errors![0]!.extensions?.code).toBe('PAYLOAD_TOO_LARGE');

    const introspection = await gql('{ __schema { queryType { name } } }', {}, READER);
    expect(introspection.errors?.[0]?.message).toMatch(/introspection/i);
    const graphiql = await api.yoga.fetch('http://yoga/graphql', { headers: { accept: 'text/html' } });
    expect(graphiql.headers.get('content-type') ?? '').not.toContain('text/html');
  });

  it('treats injection strings in filters and cursors as plain values and orderings as enum values only', async () => {
    const before = await pool.query('select count(*)::int as n from tributary_views.balances');
    const injections = [
      "'; drop table tributary_views.balances; --",
      "c' or '1'='1",
      '"; select pg_sleep(10); --',
    ];
    for (const value of injections) {
      const result = await gql(
        `query ($v: String!) { balances(where: { or: [{ account: { eq: $v } }, { account: { startsWith: $v } }, { account: { contains: $v } }] }) { nodes { account } } }`,
        { v: value },
        READER,
      );
      expect(result.errors).toBeUndefined();
      expect((result.data!.balances as { nodes: unknown[] }).nodes).toEqual([]);
      const cursor = await gql(
        `query ($v: String!) { balances(after: $v) { nodes { account } } }`,
        { v: value },
        READER,
      );
      expect(cursor.errors![0]!.extensions?.code).toBe('VALIDATION_FAILED');
    }
    const ordering = await gql(
      `{ balances(orderBy: [{ field: "account; drop table x" }]) { nodes { account } } }`,
      {},
      READER,
    );
    expect(ordering.errors![0]!.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
    const viaVariable = await gql(
      `query ($o: [BalancesOrderBy!]) { balances(orderBy: $o) { nodes { account } } }`,
      { o: [{ field: 'balance desc; drop table x' }] },
      READER,
    );
    expect(viaVariable.errors).toBeDefined();
    // The table is intact (a projection may still be adding rows from earlier appends).
    const after = await pool.query<{ n: number }>('select count(*)::int as n from tributary_views.balances');
    expect(after.rows[0]!.n).toBeGreaterThanOrEqual((before.rows[0] as { n: number }).n);
  });

  it('masks unexpected errors: no stack, no SQL', async () => {
    await pool.query('alter table tributary_views.balances rename to balances_moved');
    try {
      const result = await gql('{ balances { nodes { account } } }', {}, READER);
      expect(result.errors![0]).toMatchObject({
        message: 'Unexpected error.',
        extensions: { code: 'INTERNAL_SERVER_ERROR' },
      });
      expect(JSON.stringify(result)).not.toMatch(/balances_moved|relation|select|at /);
    } finally {
      await pool.query('alter table tributary_views.balances_moved rename to balances');
    }
  });

  it('serves /healthz, /readyz and Prometheus /metrics', async () => {
    expect((await api.yoga.fetch('http://yoga/healthz')).status).toBe(200);
    expect((await api.yoga.fetch('http://yoga/readyz')).status).toBe(200);
    // /metrics is not public by default: it needs the metrics (or admin) scope.
    expect((await api.yoga.fetch('http://yoga/metrics')).status).toBe(401);
    expect((await api.yoga.fetch('http://yoga/metrics', { headers: READER })).status).toBe(401);
    const scraper = await api.yoga.fetch('http://yoga/metrics', {
      headers: { authorization: 'Bearer scrape-key' },
    });
    expect(scraper.status).toBe(200);
    // Operations by name and outcome: two that ran, one whose result carries an error, two refused.
    const probe = async (query: string) => gql(query, {}, READER);
    expect((await probe('query MetricsProbe { projections { name } }')).errors).toBeUndefined();
    expect((await probe('query MetricsProbe { projections { name } }')).errors).toBeUndefined();
    const tooLarge = await probe('query MetricsProbe { balances(first: 2000) { nodes { account } } }');
    expect(tooLarge.errors?.[0]?.extensions?.code).toBe('VALIDATION_FAILED');
    await probe('query MetricsProbe { balances { nodes { nope } } }');
    await probe('query MetricsProbe { balances {');
    const metrics = await (await api.yoga.fetch('http://yoga/metrics', { headers: ADMIN })).text();
    const count = (labels: string) =>
      Number(
        new RegExp(`^tributary_graphql_operations_total\\{${labels}\\} (\\d+)$`, 'm').exec(metrics)?.[1],
      );
    expect(count('operation="MetricsProbe",type="query",outcome="ok"')).toBe(2);
    expect(count('operation="MetricsProbe",type="query",outcome="error"')).toBe(1);
    expect(count('operation="MetricsProbe",type="query",outcome="refused"')).toBe(1);
    // A document that does not parse has no type; its name comes from the request, if it gives one.
    expect(count('operation="anonymous",type="unknown",outcome="refused"')).toBeGreaterThanOrEqual(1);
    expect(metrics).toMatch(
      /^tributary_graphql_operation_duration_seconds_count\{operation="MetricsProbe",type="query"\} 3$/m,
    );
    expect(metrics).toMatch(/^tributary_api_requests_total\{method="POST",status="200"\} \d+$/m);
    expect(metrics).toMatch(
      /^tributary_api_request_duration_seconds_bucket\{le="\+Inf",method="POST"\} \d+$/m,
    );
    expect(metrics).toMatch(/^tributary_projection_lag_seconds\{projection="balances"\} \d+/m);
    expect(metrics).toMatch(/^tributary_projection_lag_events\{projection="balances"\} \d+$/m);
    expect(metrics).toContain('# TYPE tributary_api_subscriptions gauge');
    // The API's pool, and the event loop of the process.
    expect(metrics).toMatch(/^tributary_db_pool_connections\{pool="api",state="idle"\} \d+$/m);
    expect(metrics).toMatch(/^tributary_db_pool_max\{pool="api"\} \d+$/m);
    expect(metrics).toMatch(/^nodejs_eventloop_lag_seconds \d/m);
  });
});

// The open mode `tributary dev` uses: every scope without credentials.
describe('open mode', () => {
  it('lets everyone read and append', async () => {
    const open = await createApi({
      connectionString: db.url,
      pool,
      projections: [projection],
      config: { auth: { open: true } },
    });
    try {
      const response = await open.yoga.fetch(
        'http://yoga/graphql?query=%7B%20balances%20%7B%20nodes%20%7B%20account%20%7D%20%7D%20%7D',
      );
      expect(((await response.json()) as Result).errors).toBeUndefined();
    } finally {
      await open.close();
    }
  });
});
