import { generateKeyPairSync } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { getIntrospectionQuery } from 'graphql';
import { createClient as createSseClient } from 'graphql-sse';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.js';
import { createViewTable } from '../../test/support/viewTables.js';
import { waitFor } from '../../test/support/waitFor.js';
import { createPool, type Pool } from '../db/index.js';
import { ConfigError } from '../errors.js';
import { createLogger } from '../logger.js';
import { defineView } from '../projections/index.js';
import { type Api, type CreateApiOptions, createApi } from './index.js';

/**
 * The API as the internet meets it: requests without credentials, hostile documents and
 * variables, slow and oversized bodies, and idle or unauthenticated connections. Every
 * one costs bounded work, gets a typed answer, and leaves the server responsive.
 */
const orders = defineView({
  name: 'orders',
  columns: {
    id: { type: 'text' },
    amount: { type: 'numeric' },
    big: { type: 'bigint' },
    at: { type: 'timestamptz' },
    n: { type: 'integer' },
  },
  primaryKey: ['id'],
});
const customers = defineView({
  name: 'customers',
  columns: { id: { type: 'text' }, name: { type: 'text' } },
  primaryKey: ['id'],
});

const SECRET = 'a-secret-of-more-than-thirty-two-bytes!!';
const READER = { authorization: 'Bearer reader-key' };
const WRITER = { authorization: 'Bearer writer-key' };
const API_KEYS = [
  { name: 'reader', key: 'reader-key', scopes: ['read' as const] },
  { name: 'writer', key: 'writer-key', scopes: ['append' as const, 'read' as const] },
];

let db: TestDatabase;
let pool: Pool;
const logLines: Record<string, unknown>[] = [];
let api: Api;
let base: string;

async function startApi(overrides: Partial<CreateApiOptions> & { limits?: Record<string, number> } = {}) {
  const { limits, ...rest } = overrides;
  const server = await createApi({
    connectionString: db.url,
    pool,
    views: [orders, customers],
    production: true,
    log: { maxEventBytes: 65_536, maxEventsPerAppend: 1000 },
    logger: createLogger({
      level: 'debug',
      format: 'json',
      write: (line) => logLines.push(JSON.parse(line)),
    }),
    ...rest,
    config: {
      auth: { apiKeys: API_KEYS, jwt: { secret: SECRET } },
      limits: {
        connectionInitTimeoutMs: 400,
        idleTimeoutMs: 400,
        headersTimeoutMs: 400,
        maxConnectionsPerAddress: 40,
        ...limits,
      },
      ...rest.config,
    },
  });
  const { url } = await server.listen(0);
  return { server, url, base: url.replace(/\/graphql$/, '') };
}

beforeAll(async () => {
  db = await createTestDatabase();
  pool = createPool(db.url, { max: 8 });
  await createViewTable(pool, orders);
  await createViewTable(pool, customers);
  await pool.query(
    `insert into tributary_views.orders values ('o1', 80.00, 9007199254740993, '2026-11-30T21:14:05.123456Z', 1), ('o2', 5, 1, now(), 2)`,
  );
  ({ server: api, base } = await startApi());
});

afterAll(async () => {
  await api?.close();
  await pool?.end();
  await db?.drop();
});

type Result = {
  data?: Record<string, unknown> | null;
  errors?: { message: string; extensions?: Record<string, unknown> }[];
};

async function post(body: unknown, headers: Record<string, string> = READER, url = `${base}/graphql`) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Result };
}
const gql = async (
  query: string,
  variables: Record<string, unknown> = {},
  headers: Record<string, string> = READER,
) => (await post({ query, variables }, headers)).body;
const codeOf = (result: Result) => result.errors?.[0]?.extensions?.code;

/**
 * Runs each attack request in turn and, while it is in flight, probes /healthz. Returns the
 * slowest probe in ms, and the most CPU time one attack took in this process (server and
 * test client together). Client and server share this process, so one request at a time
 * measures the server, not the test's own client.
 *
 * A busy machine can stall any probe now and then, so the round is run up to three times
 * and the best one counts: a server that blocks on the attack fails all three.
 */
async function healthzDuring(
  attacks: readonly (() => Promise<unknown>)[],
): Promise<{ slowestProbeMs: number; mostCpuMs: number }> {
  // A first pass warms up the code paths (compiling them costs CPU once, not per request).
  for (const attack of attacks) await attack();
  await fetch(`${base}/healthz`);
  const best = { slowestProbeMs: Number.POSITIVE_INFINITY, mostCpuMs: Number.POSITIVE_INFINITY };
  for (let round = 0; round < 3 && (best.slowestProbeMs >= 100 || best.mostCpuMs >= 50); round++) {
    let slowestProbeMs = 0;
    let mostCpuMs = 0;
    for (const attack of attacks) {
      let running = true;
      const cpu = process.cpuUsage();
      const attacking = attack().finally(() => {
        running = false;
      });
      do {
        const started = performance.now();
        const response = await fetch(`${base}/healthz`);
        expect(response.status).toBe(200);
        slowestProbeMs = Math.max(slowestProbeMs, performance.now() - started);
      } while (running);
      await attacking;
      const used = process.cpuUsage(cpu);
      mostCpuMs = Math.max(mostCpuMs, (used.user + used.system) / 1000);
    }
    best.slowestProbeMs = Math.min(best.slowestProbeMs, slowestProbeMs);
    best.mostCpuMs = Math.min(best.mostCpuMs, mostCpuMs);
  }
  return best;
}

/**
 * Posts a body serialized beforehand, so that while it is in flight the test's own process
 * does nothing costly; resolves with the status and the first `maxBytes` of the response.
 */
function rawPost(
  body: Buffer,
  headers: Record<string, string>,
  accept = 'application/json',
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept, 'content-length': body.length, ...headers },
    });
    let answered = false;
    req.on('response', (response) => {
      answered = true;
      let text = '';
      response.on('data', (chunk: Buffer) => {
        text += chunk.toString();
        // An event stream stays open: its first event is the answer.
        if (accept === 'text/event-stream' && /\n\n/.test(text)) response.destroy();
      });
      response.on('close', () => resolve({ status: response.statusCode!, text }));
    });
    // A server that answers before reading the whole body may close while it is still being sent.
    req.on('error', (error) => (answered ? undefined : reject(error)));
    req.end(body);
  });
}

function fanOut(levels: number, end: string): string {
  let document = 'query { orders { nodes { ...F0 } } }\n';
  for (let i = 0; i < levels; i++) document += `fragment F${i} on Orders { id ...F${i + 1} ...F${i + 1} }\n`;
  return `${document}fragment F${levels} on Orders ${end}\n`;
}

describe('requests that would cost the server more than they cost the caller', () => {
  it('refuses fragments that fan out, end in a cycle or in an unknown fragment, in bounded time; /healthz stays fast', async () => {
    const documents = [fanOut(22, '{ ...F0 }'), fanOut(22, '{ ...Missing }'), fanOut(22, '{ amount }')];
    for (const document of documents) expect(document.length).toBeLessThan(1100);
    const expected = ['GRAPHQL_VALIDATION_FAILED', 'GRAPHQL_VALIDATION_FAILED', 'QUERY_TOO_COMPLEX'];
    const slowest = await healthzDuring(
      documents.map((document, i) => async () => expect(codeOf(await gql(document))).toBe(expected[i])),
    );
    expect(slowest.slowestProbeMs).toBeLessThan(100);
    // Well under 50 ms of CPU for the whole request, client included.
    expect(slowest.mostCpuMs).toBeLessThan(50);
    // Without credentials the same documents are refused before they are even read.
    const anonymous = await post({ query: documents[0] }, {});
    expect(anonymous.status).toBe(401);
    expect(codeOf(anonymous.body)).toBe('UNAUTHENTICATED');
  });

  it('holds a chunked body to maxBodyBytes, reading no more of it', async () => {
    const send = (bytes: number) =>
      new Promise<{ status: number; closed: boolean }>((resolve, reject) => {
        const req = httpRequest(`${base}/graphql`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked', ...READER },
        });
        req.on('response', (response) => {
          response.resume();
          response.on('end', () =>
            resolve({ status: response.statusCode!, closed: response.headers.connection === 'close' }),
          );
        });
        req.on('error', (error) =>
          error.message.match(/EPIPE|ECONNRESET|socket hang up/) ? undefined : reject(error),
        );
        const chunk = Buffer.alloc(64 * 1024, 'x');
        let sent = 0;
        const pump = () => {
          while (sent < bytes) {
            sent += chunk.length;
            if (!req.write(chunk)) return void req.once('drain', pump);
          }
          req.end();
        };
        req.write('{"query":"{ __typename }","variables":{"pad":"');
        pump();
      });
    const slowest = await healthzDuring(
      [1.5e6, 24e6].map((size) => async () => {
        const { status, closed } = await send(size);
        expect(status).toBe(413);
        expect(closed).toBe(true);
      }),
    );
    expect(slowest.slowestProbeMs).toBeLessThan(100);
    // (No CPU bound here: the test's own client spends it sending megabytes.)
  });

  it('refuses large variables: without credentials before reading them, with credentials before coercing them', async () => {
    const where = { or: Array.from({ length: 30_000 }, (_, i) => ({ id: { eq: `o${i}` } })) };
    const query = 'query ($w: OrdersWhere) { orders(where: $w) { nodes { id } } }';
    expect(JSON.stringify(where).length).toBeGreaterThan(600_000);
    const body = Buffer.from(JSON.stringify({ query, variables: { w: where } }));
    // For a reader, a body of 10,000 terms (parsing 650 KB of JSON is the body limit's price).
    const smaller = Buffer.from(
      JSON.stringify({ query, variables: { w: { or: where.or.slice(0, 10_000) } } }),
    );
    const slowest = await healthzDuring([
      async () => expect((await rawPost(body, {})).status).toBe(401),
      async () => {
        const { text } = await rawPost(smaller, READER);
        expect(JSON.parse(text).errors[0]).toMatchObject({
          message: expect.stringMatching(/far larger than its limits/),
          extensions: { code: 'VALIDATION_FAILED' },
        });
      },
    ]);
    expect(slowest.slowestProbeMs).toBeLessThan(100);
    expect(slowest.mostCpuMs).toBeLessThan(100);
    // Nesting is refused before anything walks it.
    let deep: Record<string, unknown> = { id: { eq: 'x' } };
    for (let i = 0; i < 2000; i++) deep = { not: deep };
    const nested = await gql(query, { w: deep });
    expect(nested.errors![0]!.extensions).toMatchObject({
      code: 'VALIDATION_FAILED',
      limit: 'maxVariablesDepth',
    });
  });

  it('applies the query limits to subscription filters, over SSE and WebSocket', async () => {
    // 10,000 terms: GraphQL would spend about 200 ms coercing them, and the filter would run per change.
    const huge = { or: Array.from({ length: 10_000 }, (_, i) => ({ id: { eq: `o${i}` } })) };
    const subscription = 'subscription ($w: OrdersWhere) { ordersChanges(where: $w) { cursor } }';
    const body = Buffer.from(JSON.stringify({ query: subscription, variables: { w: huge } }));
    const slowest = await healthzDuring(
      Array.from({ length: 5 }, () => async () => {
        const { status, text } = await rawPost(body, READER, 'text/event-stream');
        expect(status).toBe(200);
        expect(text).toMatch(/"code":"VALIDATION_FAILED"/);
      }),
    );
    expect(slowest.slowestProbeMs).toBeLessThan(100);
    expect(slowest.mostCpuMs).toBeLessThan(100);
    // Within the byte budget but above the term limit: refused by the same rule as a query's where.
    const terms = { or: Array.from({ length: 65 }, (_, i) => ({ id: { eq: `o${i}` } })) };
    const socket = await openSocket({ authorization: READER.authorization });
    socket.ws.send(
      JSON.stringify({
        id: '1',
        type: 'subscribe',
        payload: { query: subscription, variables: { w: terms } },
      }),
    );
    const message = await socket.nextMessage();
    expect(message.type).toBe('next');
    expect(message.payload.errors[0]!.message).toMatch(/more than 64 terms/);
    socket.ws.terminate();
  });
});

// ---------------------------------------------------------------------------------------------

interface TestSocket {
  ws: WebSocket;
  nextMessage(): Promise<{
    type: string;
    payload: { errors: { message: string }[] } & Record<string, never>;
  }>;
  closed: Promise<{ code: number; reason: string }>;
}

/** A raw graphql-transport-ws connection; sends connection_init with `params` unless null. */
async function openSocket(
  params: Record<string, unknown> | null,
  headers: Record<string, string> = {},
  url = `${base.replace('http', 'ws')}/graphql`,
): Promise<TestSocket> {
  const ws = new WebSocket(url, 'graphql-transport-ws', { headers });
  const messages: unknown[] = [];
  let wake: (() => void) | undefined;
  ws.on('message', (data) => {
    messages.push(JSON.parse(String(data)));
    wake?.();
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.on('close', (code, reason) => resolve({ code, reason: String(reason) })),
  );
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const nextMessage = async () => {
    while (messages.length === 0) await new Promise<void>((resolve) => (wake = resolve));
    return messages.shift() as never;
  };
  if (params !== null) {
    ws.send(JSON.stringify({ type: 'connection_init', payload: params }));
    const ack = (await Promise.race([nextMessage(), closed])) as { type?: string };
    if (ack.type === 'connection_ack') return { ws, nextMessage, closed };
  }
  return { ws, nextMessage, closed };
}

describe('connections', () => {
  it('closes a WebSocket that presents no valid credentials at connection_init', async () => {
    for (const params of [{}, { authorization: 'Bearer wrong-key' }]) {
      const socket = await openSocket(params);
      expect((await socket.closed).code).toBe(4403);
    }
    // The upgrade request's Authorization header counts too.
    const viaHeader = await openSocket({}, READER);
    expect(viaHeader.ws.readyState).toBe(WebSocket.OPEN);
    viaHeader.ws.terminate();
  });

  it('closes a WebSocket that never says connection_init, and one that stays idle', async () => {
    const silent = await openSocket(null);
    expect((await silent.closed).code).toBe(4408);
    const idle = await openSocket({ authorization: READER.authorization });
    expect(idle.ws.readyState).toBe(WebSocket.OPEN);
    expect((await idle.closed).code).toBe(4408);
  });

  it('caps connections per address and in all, and times out a client that never finishes its headers', async () => {
    const limited = await startApi({ limits: { maxConnectionsPerAddress: 3, headersTimeoutMs: 300 } });
    const port = new URL(limited.base).port;
    try {
      const open = async () => {
        const socket = connect(Number(port), '127.0.0.1');
        socket.resume(); // read (and drop) what the server sends, so its close is seen
        await new Promise((resolve) => socket.once('connect', resolve));
        const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
        return { socket, closed };
      };
      const sockets = [await open(), await open(), await open()];
      const fourth = await open();
      await fourth.closed; // refused at once
      // The three others send half a request and stall: the headers timeout closes them.
      for (const { socket } of sockets) socket.write('GET /graphql HTTP/1.1\r\nHost: x\r\n');
      await Promise.all(sockets.map((s) => s.closed));
      // Their places are free again.
      expect((await fetch(`${limited.base}/healthz`)).status).toBe(200);
    } finally {
      await limited.server.close();
    }
    // Idle connections are held long enough here: no headers timeout during the check.
    const small = await startApi({ limits: { maxConnections: 2, headersTimeoutMs: 20_000 } });
    try {
      const port = Number(new URL(small.base).port);
      const held = [connect(port, '127.0.0.1'), connect(port, '127.0.0.1')];
      await Promise.all(held.map((socket) => new Promise((resolve) => socket.once('connect', resolve))));
      await waitFor(() => held.every((s) => s.readyState === 'open'), { what: 'two connections' });
      const third = connect(port, '127.0.0.1');
      third.resume();
      await new Promise<void>((resolve) => third.once('close', () => resolve()));
      for (const socket of held) socket.destroy();
    } finally {
      await small.server.close();
    }
  });
});

describe('errors that say what to fix, and no more', () => {
  it('gives no "Did you mean" suggestions when introspection is off', async () => {
    const misspelled = await gql('{ ordrs { nodes { id } } }');
    expect(codeOf(misspelled)).toBe('GRAPHQL_VALIDATION_FAILED');
    expect(JSON.stringify(misspelled)).not.toMatch(/Did you mean|orders/);
    const variable = await gql('query ($w: OrdersWhere) { orders(where: $w) { nodes { id } } }', {
      w: { amont: { eq: '1' } },
    });
    expect(variable.errors?.length).toBe(1);
    expect(JSON.stringify(variable)).not.toMatch(/Did you mean|amount/);
  });

  it('shows callers the code and message of a projection failure, never its stack', async () => {
    const failing = await startApi({
      status: {
        projections: async () => [
          {
            name: 'shop',
            version: 1,
            state: 'failed',
            position: '0000000000000001-0000000000000001',
            lagEvents: 0,
            lagSeconds: 0,
            eventsPerSecond: 0,
            deadLetters: 0,
            leaseOwner: null,
            lastError: {
              name: 'Error',
              message: 'boom',
              code: 'E_BOOM',
              stack: 'Error: boom\n    at /srv/app/handler.ts:3:9',
              attempts: 3,
            },
            updatedAt: new Date(),
          } as never,
        ],
      },
    });
    try {
      const result = (await post({ query: '{ projections { name lastError } }' }, READER, failing.url)).body;
      const lastError = (result.data!.projections as { lastError: Record<string, unknown> }[])[0]!.lastError;
      expect(lastError).toEqual({ name: 'Error', message: 'boom', code: 'E_BOOM', attempts: 3 });
    } finally {
      await failing.server.close();
    }
  });

  it('answers VALIDATION_FAILED, never INTERNAL_SERVER_ERROR, for values PostgreSQL would refuse', async () => {
    const cases: [string, Record<string, unknown>, Record<string, string>?][] = [
      ['query ($v: String!) { orders(where: { id: { eq: $v } }) { nodes { id } } }', { v: 'a\u0000b' }],
      [
        'query ($v: BigInt!) { orders(where: { big: { eq: $v } }) { nodes { id } } }',
        { v: '9223372036854775808' },
      ],
      [
        'query ($v: DateTime!) { orders(where: { at: { lt: $v } }) { nodes { id } } }',
        { v: '2024-02-30T00:00:00Z' },
      ],
      ['query ($v: DateTime!) { orders(where: { at: { lt: $v } }) { nodes { id } } }', { v: '0' }],
      ['{ orders(where: { big: { eq: "99999999999999999999" } }) { nodes { id } } }', {}],
      [
        'mutation ($id: String) { appendEvents(streamId: "s", events: [{ id: $id, type: "T", data: {} }]) { position } }',
        { id: 'bad\u0000id' },
        WRITER,
      ],
      [
        'mutation ($id: String) { appendEvents(streamId: "s", events: [{ id: $id, type: "T", data: {} }]) { position } }',
        { id: 'bad\ud800id' },
        WRITER,
      ],
    ];
    for (const [query, variables, headers] of cases) {
      const result = await gql(query, variables, headers ?? READER);
      expect(codeOf(result), `${query} ${JSON.stringify(variables)}`).toBe('VALIDATION_FAILED');
    }
    expect(
      Number((await pool.query(`select count(*) from tributary.events where stream_id = 's'`)).rows[0].count),
    ).toBe(0);
  });

  it('binds page cursors to their view and ordering, and refuses forged ones', async () => {
    const page = await gql('{ orders(first: 1) { pageInfo { endCursor } } }');
    const cursor = (page.data!.orders as { pageInfo: { endCursor: string } }).pageInfo.endCursor;
    const other = await gql('query ($c: String) { customers(after: $c) { nodes { id } } }', { c: cursor });
    expect(codeOf(other)).toBe('VALIDATION_FAILED');
    expect(other.errors![0]!.message).toMatch(/another view/);
    const forged = Buffer.from(JSON.stringify(['orders|n:ASC,id:ASC', ['not a number', 'x']])).toString(
      'base64url',
    );
    const result = await gql(
      'query ($c: String) { orders(after: $c, orderBy: [{ field: n }]) { nodes { id } } }',
      {
        c: forged,
      },
    );
    expect(codeOf(result)).toBe('VALIDATION_FAILED');
    expect(codeOf(await gql('{ orders(after: "") { nodes { id } } }'))).toBe('VALIDATION_FAILED');
  });

  it('refuses a subscription cursor from the future, and an empty one', async () => {
    const client = createSseClient({ url: `${base}/graphql`, headers: READER, retryAttempts: 0 });
    try {
      for (const after of ['7fffffffffffffff-0000000000000001', '', 'not-a-cursor']) {
        for await (const result of client.iterate({
          query: 'subscription ($a: String) { ordersChanges(after: $a) { cursor } }',
          variables: { a: after },
        })) {
          expect(codeOf(result as Result), after).toBe('VALIDATION_FAILED');
          break;
        }
      }
    } finally {
      client.dispose();
    }
  });

  it('logs a caller’s mistake at info with a request id, and keeps error for the server’s faults', async () => {
    logLines.length = 0;
    await fetch(`${base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'req-42', ...WRITER },
      body: JSON.stringify({
        query:
          'mutation { appendEvents(streamId: "log-test", expectedVersion: 7, events: [{ type: "T", data: {} }]) { position } }',
      }),
    });
    await gql('{ nope }');
    expect(logLines.filter((line) => line.level === 'error')).toEqual([]);
    const refused = logLines.filter((line) => line.msg === 'GraphQL request refused');
    expect(refused).toContainEqual(
      expect.objectContaining({ level: 'info', requestId: 'req-42', code: 'WRONG_EXPECTED_VERSION' }),
    );
    expect(refused.length).toBe(2);
  });
});

describe('settings that reach the API', () => {
  it('enforces log.maxEventBytes and log.maxEventsPerAppend on appendEvents, writing nothing', async () => {
    const append =
      'mutation ($events: [EventInput!]!) { appendEvents(streamId: "limits", events: $events) { position } }';
    const big = await gql(append, { events: [{ type: 'T', data: { pad: 'x'.repeat(70_000) } }] }, WRITER);
    expect(codeOf(big)).toBe('VALIDATION_FAILED');
    expect(big.errors![0]!.message).toMatch(/65536/);
    const many = await gql(
      append,
      { events: Array.from({ length: 1001 }, () => ({ type: 'T', data: {} })) },
      WRITER,
    );
    expect(codeOf(many)).toBe('VALIDATION_FAILED');
    expect(many.errors![0]!.message).toMatch(/1000/);
    const { rows } = await pool.query(
      `select count(*)::int as n from tributary.events where stream_id = 'limits'`,
    );
    expect(rows[0].n).toBe(0);
  });

  it('verifies JWTs by an algorithm allow-list, requires exp, and honours a maximum token age', async () => {
    const key = new TextEncoder().encode(SECRET);
    const now = Math.floor(Date.now() / 1000);
    const token = (alg: string, claims: Record<string, unknown>) =>
      new SignJWT({ scope: 'read', ...claims }).setProtectedHeader({ alg }).sign(key);
    const read = async (jwt: string, url = `${base}/graphql`) =>
      (await post({ query: '{ orders { nodes { id } } }' }, { authorization: `Bearer ${jwt}` }, url)).status;
    expect(await read(await token('HS256', { exp: now + 60 }))).toBe(200);
    expect(await read(await token('HS256', {}))).toBe(401); // no exp
    expect(await read(await token('HS256', { exp: now - 60 }))).toBe(401);
    const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ scope: 'read', exp: now + 60 })).toString('base64url')}.`;
    expect(await read(none)).toBe(401);
    const strict = await startApi({
      config: { auth: { jwt: { secret: SECRET, algorithms: ['HS512'], maxTokenAgeSeconds: 60 } } },
    });
    try {
      expect(await read(await token('HS256', { exp: now + 60, iat: now }), strict.url)).toBe(401);
      expect(await read(await token('HS512', { exp: now + 600, iat: now - 300 }), strict.url)).toBe(401);
      expect(await read(await token('HS512', { exp: now + 60, iat: now }), strict.url)).toBe(200);
    } finally {
      await strict.server.close();
    }
  });

  it('verifies EC and RSA-PSS public keys with their own algorithms', async () => {
    const now = Math.floor(Date.now() / 1000);
    for (const [type, options, alg] of [
      ['ec', { namedCurve: 'P-256' }, 'ES256'],
      ['rsa', { modulusLength: 2048 }, 'PS256'],
      ['rsa', { modulusLength: 2048 }, 'RS384'],
      ['ed25519', {}, 'EdDSA'],
    ] as const) {
      const { publicKey, privateKey } = generateKeyPairSync(type as 'ec', options as { namedCurve: string });
      const server = await startApi({
        config: {
          auth: { jwt: { publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString() } },
        },
      });
      try {
        const jwt = await new SignJWT({ scope: 'read', exp: now + 60 })
          .setProtectedHeader({ alg })
          .sign(privateKey);
        const result = await post(
          { query: '{ orders { nodes { id } } }' },
          { authorization: `Bearer ${jwt}` },
          server.url,
        );
        expect(result.status, type).toBe(200);
      } finally {
        await server.server.close();
      }
    }
  });

  it('refuses at start an HS secret under 32 bytes and a malformed API key digest', async () => {
    const start = (auth: Record<string, unknown>) =>
      createApi({ connectionString: db.url, pool, views: [orders], config: { auth } }).then(
        async (server) => {
          await server.close();
          return undefined;
        },
        (error: unknown) => error,
      );
    expect(await start({ jwt: { secret: 'short' } })).toBeInstanceOf(ConfigError);
    const malformed = await start({ apiKeys: [{ name: 'x', key: 'sha256:not-hex', scopes: ['read'] }] });
    expect(malformed).toBeInstanceOf(ConfigError);
    expect((malformed as Error).message).toMatch(/64 hex digits/);
  });
});

describe('introspection', () => {
  it('passes the standard introspection query when enabled, while the same depth in ordinary fields stays refused', async () => {
    const open = await startApi({ production: false, config: { introspection: true } });
    try {
      const standard = (await post({ query: getIntrospectionQuery() }, READER, open.url)).body;
      expect(standard.errors).toBeUndefined();
      expect((standard.data!.__schema as { types: unknown[] }).types.length).toBeGreaterThan(10);
      const bomb = (
        await post(
          { query: '{ __schema { types { fields { type { fields { type { name } } } } } } }' },
          READER,
          open.url,
        )
      ).body;
      expect(codeOf(bomb)).toBe('QUERY_TOO_COMPLEX');
      const deep = `{ ${'orders { '.repeat(13)}id${' }'.repeat(13)} }`;
      expect((await post({ query: deep }, READER, open.url)).body.errors![0]!.extensions?.limit).toBe(
        'maxDepth',
      );
    } finally {
      await open.server.close();
    }
  });
});
