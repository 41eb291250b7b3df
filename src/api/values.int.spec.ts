import { createClient as createSseClient } from 'graphql-sse';
import { createClient as createWsClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.js';
import { seededRandom } from '../../test/support/random.js';
import { waitFor } from '../../test/support/waitFor.js';
import { createPool, type Pool } from '../db/index.js';
import {
  createPostgresEventStore,
  type EventStore,
  formatPosition,
  type JsonObject,
} from '../ingest/index.js';
import {
  canonicalSelectList,
  defineProjection,
  defineView,
  startWorkers,
  type Workers,
} from '../projections/index.js';
import { type Api, createApi, matchesWhere, type Where } from './index.js';

/**
 * Exact values on every path: random values of every column type, extremes included, are
 * written through a projection, then read through a query, by-key fields, initialRows,
 * history and live changes over graphql-ws and SSE. Every path must give, string for string,
 * what PostgreSQL itself prints for the value (the oracle casts each input in SQL).
 */
const samples = defineView({
  name: 'samples',
  columns: {
    id: { type: 'text' },
    v: { type: 'integer', nullable: false },
    t: { type: 'text' },
    i: { type: 'integer' },
    b: { type: 'bigint' },
    n: { type: 'numeric' },
    d: { type: 'double' },
    bo: { type: 'boolean' },
    ts: { type: 'timestamptz' },
    j: { type: 'jsonb' },
    a: { type: 'text[]' },
  },
  primaryKey: ['id'],
});
const COLUMNS = Object.keys(samples.columns);
const FIELDS = COLUMNS.join(' ');

const projection = defineProjection({
  name: 'samples',
  version: 1,
  views: [samples],
  handle: async (event, ctx) => {
    const data = event.data as { row: Record<string, unknown> };
    if (event.type === 'Set') await ctx.upsert(samples, data.row);
    if (event.type === 'Deleted') await ctx.delete(samples, { id: data.row.id as string });
  },
});

let db: TestDatabase;
let pool: Pool;
let store: EventStore;
let workers: Workers;
let api: Api;
let url: string;

beforeAll(async () => {
  db = await createTestDatabase();
  pool = createPool(db.url, { max: 8 });
  store = createPostgresEventStore({ connectionString: db.url });
  workers = startWorkers({ url: db.url, projections: [projection], batchSize: 25 });
  await waitFor(async () => (await pool.query(`select to_regclass('tributary_views.samples') t`)).rows[0].t, {
    what: 'view table',
  });
  api = await createApi({
    connectionString: db.url,
    pool,
    projections: [projection],
    config: { auth: { open: true }, pollIntervalMs: 200, limits: { maxPageSize: 1000 } },
  });
  ({ url } = await api.listen(0, '127.0.0.1'));
});

afterAll(async () => {
  await api?.close();
  await workers?.stop();
  await store?.close();
  await pool?.end();
  await db?.drop();
});

// ---------------------------------------------------------------------------------------------
// Random values, extremes included. Inputs are what a handler may write; the oracle says what
// PostgreSQL stores and prints.

type Random = () => number;
const pick = <T>(random: Random, items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
const digits = (random: Random, min: number, max: number) =>
  Array.from({ length: min + Math.floor(random() * (max - min + 1)) }, () => Math.floor(random() * 10)).join(
    '',
  );

const AWKWARD = [
  '',
  'plain',
  'quote " and \\ backslash',
  'tab\tnew\nline\rcr',
  '\u2028\u2029',
  '\u0001\u001f',
  'émoji 😀 and 𝄞',
  '\uffff\ue000',
  '{braces}, commas',
  'NULL',
  '\\N',
  "'; drop table x; --",
];

const text = (random: Random) =>
  random() < 0.5
    ? pick(random, AWKWARD)
    : pick(random, AWKWARD) + digits(random, 0, 5) + pick(random, AWKWARD);

const bigint = (random: Random): unknown =>
  pick(random, [
    () => '9223372036854775807',
    () => '-9223372036854775808',
    () => '9007199254740993',
    () => '-0009',
    () => '0',
    () => (random() < 0.5 ? '-' : '') + digits(random, 1, 18),
    () => Math.floor(random() * 2 ** 40),
  ])();

const numeric = (random: Random): unknown =>
  pick(random, [
    () => '12345678901234567890.123456789',
    () => '80.00',
    () => '-0.000',
    () => '1e3',
    () => '1.50e1',
    () => '0.0001e-3',
    () => 'NaN',
    () => 'Infinity',
    () => '-Infinity',
    () => `${digits(random, 1, 40)}.${digits(random, 0, 30)}`,
    () => `-${digits(random, 1, 3)}.${digits(random, 1, 6)}e${Math.floor(random() * 40) - 20}`,
    () => `.${digits(random, 1, 5)}`,
    () => random() * 1e6,
  ])();

const double = (random: Random): unknown =>
  pick(random, [
    () => Number.MAX_VALUE,
    () => Number.MIN_VALUE,
    () => -0,
    () => 0.1 + 0.2,
    () => 1e21,
    () => 123456789012345680000,
    () => (random() - 0.5) * 10 ** Math.floor(random() * 40 - 20),
    () => '2.5e-7',
  ])();

const timestamp = (random: Random): unknown =>
  pick(random, [
    () => '0001-01-01T00:00:00Z',
    () => '9999-12-31T23:59:59.999999Z',
    () => '2026-11-30T21:14:05.01+00:00',
    () => '2026-11-30 21:14:05.0000005Z',
    () => '2026-11-30T21:14:05.0000015Z',
    () => '2024-02-29T12:00:00+05:30',
    () => '2024-03-01T00:30:00-11:00',
    () => '2026-06-01',
    () => new Date(Math.floor(random() * 4e12)),
    () =>
      `${1000 + Math.floor(random() * 8000)}-0${1 + Math.floor(random() * 9)}-1${Math.floor(random() * 9)}T0${Math.floor(random() * 10)}:${10 + Math.floor(random() * 50)}:0${Math.floor(random() * 10)}.${digits(random, 1, 9)}Z`,
  ])();

const jsonValue = (random: Random, depth = 0): unknown => {
  const kind = Math.floor(random() * (depth > 2 ? 4 : 6));
  switch (kind) {
    case 0:
      return text(random);
    case 1:
      return pick(random, [0, -1.5, 1e21, 0.1, 2 ** 53, -0, 5e-324]);
    case 2:
      return pick(random, [true, false, null]);
    case 3:
      return Math.floor(random() * 1000);
    case 4:
      return Array.from({ length: Math.floor(random() * 4) }, () => jsonValue(random, depth + 1));
    default: {
      const object: Record<string, unknown> = {};
      const keys = ['b', 'aa', 'a', 'zz', 'é', '😀', '\uffff', 'key with space', '10', '9', 'ccc'];
      for (let k = Math.floor(random() * 6); k > 0; k--)
        object[pick(random, keys)] = jsonValue(random, depth + 1);
      return object;
    }
  }
};

function randomRow(random: Random, id: string, v: number): Record<string, unknown> {
  const maybe = (make: () => unknown) => (random() < 0.1 ? null : make());
  return {
    id,
    v,
    t: maybe(() => text(random)),
    i: maybe(() => pick(random, [2147483647, -2147483648, 0, Math.floor((random() - 0.5) * 2e9)])),
    b: maybe(() => bigint(random)),
    n: maybe(() => numeric(random)),
    d: maybe(() => double(random)),
    bo: maybe(() => random() < 0.5),
    ts: maybe(() => timestamp(random)),
    j: maybe(() => jsonValue(random)),
    a: maybe(() => Array.from({ length: Math.floor(random() * 4) }, () => text(random))),
  };
}

/** What PostgreSQL prints for each input, cast in SQL: the expected value on every path. */
async function oracle(row: Record<string, unknown>): Promise<Record<string, unknown>> {
  const client = await pool.connect();
  try {
    await client.query(`set time zone 'UTC'`);
    const input = (value: unknown) =>
      value instanceof Date ? value.toISOString() : value === null ? null : String(value);
    const { rows } = await client.query(
      `select $1::text as id, $2::integer as v, $3::text as t, $4::integer as i, $5::bigint::text as b,
              $6::numeric::text as n, $7::float8 as d, $8::boolean as bo,
              to_char($9::timestamptz at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as ts,
              $10::jsonb::text as j, $11::text[] as a`,
      [
        row.id,
        row.v,
        row.t,
        row.i,
        input(row.b),
        input(row.n),
        input(row.d === null ? null : Object.is(row.d, -0) ? '-0' : row.d),
        row.bo,
        input(row.ts),
        row.j === null ? null : JSON.stringify(row.j),
        row.a,
      ],
    );
    const expected = rows[0] as Record<string, unknown>;
    expected.j = expected.j === null ? null : JSON.parse(expected.j as string);
    return expected;
  } finally {
    client.release();
  }
}

/** A row as its JSON text per column, for string-for-string comparison. */
const text_ = (row: Record<string, unknown> | null | undefined) =>
  row == null ? null : COLUMNS.map((column) => `${column}=${JSON.stringify(row[column])}`).join(' | ');

async function appendRows(rows: Record<string, unknown>[], deletes: string[] = []) {
  let position = '';
  for (let i = 0; i < rows.length; i += 10) {
    const result = await store.append(
      `samples-${i}`,
      rows.slice(i, i + 10).map((row) => ({ type: 'Set', data: { row: jsonSafe(row) as JsonObject } })),
    );
    position = result.position;
  }
  if (deletes.length > 0) {
    const result = await store.append(
      'samples-deletes',
      deletes.map((id) => ({ type: 'Deleted', data: { row: { id } } })),
    );
    position = result.position;
  }
  await waitFor(
    async () =>
      (
        await pool.query('select 1 from tributary.projections where name = $1 and position >= $2', [
          'samples',
          position,
        ])
      ).rowCount === 1,
    { what: 'projection to apply the appends', timeoutMs: 30_000 },
  );
}

/** Event data is JSON: what cannot travel as a JSON number travels as text (as a client would send it). */
function jsonSafe(row: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(row)) {
    if (value instanceof Date) out[key] = value.toISOString();
    else if (typeof value === 'number' && (key === 'b' || key === 'n' || key === 'd'))
      out[key] = String(value);
    else out[key] = value;
  }
  return out;
}

interface Change {
  op: string;
  cursor: string;
  initial: boolean;
  row: Record<string, unknown> | null;
  previous: Record<string, unknown> | null;
}

const SUBSCRIPTION = `subscription ($after: String, $initialRows: Boolean) {
  samplesChanges(after: $after, initialRows: $initialRows) {
    op cursor initial row { ${FIELDS} } previous { ${FIELDS} }
  }
}`;

/** Collects the changes of one subscription until `done` says so. */
function collect(
  transport: 'ws' | 'sse',
  variables: Record<string, unknown>,
): { changes: Change[]; stop: () => Promise<void>; errors: unknown[] } {
  const changes: Change[] = [];
  const errors: unknown[] = [];
  const client =
    transport === 'ws'
      ? createWsClient({ url: url.replace('http', 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 })
      : createSseClient({ url, retryAttempts: 0 });
  const iterator = client.iterate<{ samplesChanges: Change }>({ query: SUBSCRIPTION, variables });
  const consuming = (async () => {
    for await (const result of iterator) {
      if (result.errors) errors.push(result.errors);
      else changes.push(result.data!.samplesChanges);
    }
  })().catch((error: unknown) => errors.push(error));
  return {
    changes,
    errors,
    stop: async () => {
      await iterator.return?.();
      await client.dispose();
      await consuming;
    },
  };
}

async function graphql(query: string, variables: Record<string, unknown> = {}) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { data?: Record<string, unknown>; errors?: unknown[] };
  expect(body.errors).toBeUndefined();
  return body.data!;
}

async function changelogCount(): Promise<number> {
  const { rows } = await pool.query(
    `select count(*)::int as n from tributary.view_change_entries where view = 'samples'`,
  );
  return rows[0].n as number;
}

describe('exact values on every path', () => {
  it('a query, by-key fields, initialRows, history and live changes over graphql-ws and SSE all print what PostgreSQL prints', async () => {
    const random = seededRandom(20261130);
    const expected = new Map<string, string>(); // `${id}:${v}` → row text
    const remember = async (row: Record<string, unknown>) =>
      expected.set(`${row.id}:${row.v}`, text_(await oracle(row))!);
    const expectedOf = (row: Record<string, unknown> | null) =>
      row === null ? null : expected.get(`${row.id}:${row.v}`);

    // Batch A: 60 rows.
    let version = 0;
    const first = Array.from({ length: 60 }, (_, i) => randomRow(random, `r${i}`, ++version));
    for (const row of first) await remember(row);
    await appendRows(first);

    // Subscribers: initial rows then live, and live only, over both transports.
    const subscribers = {
      wsInitial: collect('ws', { initialRows: true }),
      sseInitial: collect('sse', { initialRows: true }),
      wsLive: collect('ws', {}),
      sseLive: collect('sse', {}),
    };
    await waitFor(() => api.tailer.listeners >= 4, { what: 'four subscribers attached' });
    const before = await changelogCount();

    // Batch B: updates of random rows, new rows and deletes.
    const second = Array.from({ length: 80 }, () => {
      const id = random() < 0.8 ? `r${Math.floor(random() * 60)}` : `n${Math.floor(random() * 20)}`;
      return randomRow(random, id, ++version);
    });
    for (const row of second) await remember(row);
    const deleted = ['r1', 'r2', 'r3'];
    await appendRows(second, deleted);
    const live = (await changelogCount()) - before;
    expect(live).toBeGreaterThan(50);
    await waitFor(
      () =>
        subscribers.wsLive.changes.length >= live &&
        subscribers.sseLive.changes.length >= live &&
        subscribers.wsInitial.changes.length >= 60 + live &&
        subscribers.sseInitial.changes.length >= 60 + live,
      { what: 'every subscriber to receive every change', timeoutMs: 30_000 },
    );

    // History from the start, over both transports.
    const start = formatPosition(0n, 0n);
    const total = await changelogCount();
    const history = { ws: collect('ws', { after: start }), sse: collect('sse', { after: start }) };
    await waitFor(() => history.ws.changes.length >= total && history.sse.changes.length >= total, {
      what: 'history to be delivered',
      timeoutMs: 30_000,
    });

    // Every row and previous row on every path is PostgreSQL's print of that version.
    const streams = { ...subscribers, historyWs: history.ws, historySse: history.sse };
    for (const [name, stream] of Object.entries(streams)) {
      expect(stream.errors, name).toEqual([]);
      for (const change of stream.changes) {
        expect(text_(change.row), `${name} row`).toBe(expectedOf(change.row));
        expect(text_(change.previous), `${name} previous`).toBe(expectedOf(change.previous));
      }
    }
    // History and live agree change for change, over both transports.
    const asText = (changes: Change[]) =>
      changes.map((c) => `${c.cursor} ${c.op} ${text_(c.row)} ${text_(c.previous)}`);
    const liveText = asText(subscribers.wsLive.changes);
    expect(asText(subscribers.sseLive.changes)).toEqual(liveText);
    expect(asText(subscribers.wsInitial.changes.filter((c) => !c.initial))).toEqual(liveText);
    expect(asText(subscribers.sseInitial.changes.filter((c) => !c.initial))).toEqual(liveText);
    expect(asText(history.ws.changes)).toEqual(asText(history.sse.changes));
    expect(asText(history.ws.changes).slice(-live)).toEqual(liveText);
    // Initial rows are batch A's rows, as PostgreSQL prints them.
    const initial = subscribers.wsInitial.changes.filter((c) => c.initial).map((c) => text_(c.row));
    expect(initial).toHaveLength(60);
    expect(new Set(initial)).toEqual(new Set(first.map((row) => expectedOf(row))));
    expect(subscribers.sseInitial.changes.filter((c) => c.initial).map((c) => text_(c.row))).toEqual(initial);

    // Queries: the connection and by-key fields give the final version of each row.
    const page = (await graphql(`{ samples(first: 1000) { nodes { ${FIELDS} } } }`)).samples as {
      nodes: Record<string, unknown>[];
    };
    const finalVersion = new Map<string, Record<string, unknown>>();
    for (const row of [...first, ...second]) finalVersion.set(row.id as string, row);
    for (const id of deleted) finalVersion.delete(id);
    expect(page.nodes.map((node) => text_(node)).sort()).toEqual(
      [...finalVersion.values()].map((row) => expectedOf(row)).sort(),
    );
    for (const id of ['r0', 'r5', 'n1', 'r59']) {
      const byKey = (await graphql(`query ($id: String!) { samplesByKey(id: $id) { ${FIELDS} } }`, { id }))
        .samplesByKey as Record<string, unknown> | null;
      const row = finalVersion.get(id);
      expect(text_(byKey)).toBe(row ? expectedOf(row) : null);
    }
    // The last change of each key, live, equals the query.
    const lastLive = new Map<string, string | null>();
    for (const change of subscribers.wsLive.changes) {
      const id = (change.row ?? change.previous)!.id as string;
      lastLive.set(id, change.op === 'DELETE' ? null : text_(change.row));
    }
    for (const [id, row] of lastLive) {
      expect(row, id).toBe(finalVersion.has(id) ? expectedOf(finalVersion.get(id)!) : null);
    }

    for (const stream of Object.values(streams)) await stream.stop();
  });

  it('subscription filters give the answer of the same SQL, nulls, exact numbers and jsonb included', async () => {
    const random = seededRandom(7);
    const { rows } = await pool.query<Record<string, unknown>>(
      `select ${canonicalSelectList(samples.columns)} from tributary_views.samples`,
    );
    // The changelog's rows are what subscriptions filter: check they are these rows.
    expect(rows.length).toBeGreaterThan(40);
    const { rows: collation } = await pool.query(
      `select datcollate from pg_database where datname = current_database()`,
    );
    const textOrdered = ['C', 'POSIX'].includes(collation[0].datcollate as string);

    const values = (column: string) => rows.map((row) => row[column]).filter((value) => value !== null);
    const sample = (column: string) => pick(random, values(column));
    const leaf = (): Where => {
      const column = pick(random, ['t', 'i', 'b', 'n', 'd', 'bo', 'ts', 'j', 'a']);
      const type = samples.columns[column as keyof typeof samples.columns].type;
      if (random() < 0.1) return { [column]: { isNull: random() < 0.5 } };
      if (type === 'jsonb') {
        const value = sample(column);
        return {
          [column]: random() < 0.5 ? { eq: reorder(value) } : { contains: containedIn(random, value) },
        };
      }
      if (type === 'text[]') return { [column]: { contains: (sample(column) as string[]).slice(0, 1) } };
      if (type === 'boolean') return { [column]: { [pick(random, ['eq', 'ne'])]: random() < 0.5 } };
      const ops = [
        'eq',
        'ne',
        'in',
        'notIn',
        ...(type !== 'text' || textOrdered ? ['lt', 'lte', 'gt', 'gte'] : []),
      ];
      const op = pick(random, ops);
      const value = () => nearby(random, type, sample(column));
      if (op === 'in' || op === 'notIn') {
        return { [column]: { [op]: Array.from({ length: Math.floor(random() * 3) }, value) } };
      }
      return { [column]: { [op]: value() } };
    };
    const where = (depth: number): Where => {
      if (depth > 2 || random() < 0.4) return leaf();
      const kind = pick(random, ['and', 'or', 'not']);
      if (kind === 'not') return { not: where(depth + 1) };
      return { [kind]: Array.from({ length: Math.floor(random() * 3) }, () => where(depth + 1)) };
    };

    let nonTrivial = 0;
    for (let round = 0; round < 300; round++) {
      const condition = where(0);
      const inMemory = rows
        .filter((row) => matchesWhere(samples, condition, row))
        .map((row) => row.id as string);
      const page = (
        await graphql(
          `query ($where: SamplesWhere) { samples(first: 1000, where: $where) { nodes { id } } }`,
          {
            where: condition,
          },
        )
      ).samples as { nodes: { id: string }[] };
      const bySql = page.nodes.map((node) => node.id);
      expect(inMemory.sort(), JSON.stringify(condition)).toEqual(bySql.sort());
      if (bySql.length > 0 && bySql.length < rows.length) nonTrivial++;
    }
    expect(nonTrivial).toBeGreaterThan(50);
  });
});

describe('values a handler does not change', () => {
  it('stay exact through patches, from the row cache and from the table after a restart', async () => {
    const notes = defineView({
      name: 'exact_notes',
      columns: {
        id: { type: 'text' },
        at: { type: 'timestamptz' },
        amount: { type: 'numeric' },
        big: { type: 'bigint' },
        doc: { type: 'jsonb' },
        note: { type: 'text' },
      },
      primaryKey: ['id'],
    });
    const patching = defineProjection({
      name: 'exact_notes',
      version: 1,
      views: [notes],
      filter: { streamPrefixes: ['exact-notes'] },
      handle: async (event, ctx) => {
        const data = event.data as Record<string, string>;
        if (event.type === 'Created') {
          await ctx.upsert(notes, {
            id: data.id!,
            at: '2026-11-30T21:14:05.123456Z',
            amount: '80.00',
            big: '9007199254740993',
            doc: { b: 1, a: 2 },
            note: 'first',
          });
        } else {
          const row = await ctx.get(notes, { id: data.id! });
          await ctx.patch(notes, { id: data.id! }, { note: `${row?.note} then ${data.note}` });
        }
      },
    });
    const run = async (events: { type: string; data: JsonObject }[]) => {
      const { position } = await store.append('exact-notes', events);
      const runner = startWorkers({ url: db.url, projections: [patching] });
      try {
        await waitFor(
          async () =>
            (
              await pool.query('select 1 from tributary.projections where name = $1 and position >= $2', [
                'exact_notes',
                position,
              ])
            ).rowCount === 1,
          { what: 'patches applied' },
        );
      } finally {
        await runner.stop();
      }
    };
    // The first run patches from its cache, the second (a new worker) from the table.
    await run([
      { type: 'Created', data: { id: 'n1' } },
      { type: 'Noted', data: { id: 'n1', note: 'second' } },
    ]);
    await run([{ type: 'Noted', data: { id: 'n1', note: 'third' } }]);
    const { rows } = await pool.query(
      `select to_char(at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as at, amount::text, big::text, doc::text, note
       from tributary_views.exact_notes`,
    );
    expect(rows).toEqual([
      {
        at: '2026-11-30T21:14:05.123456Z',
        amount: '80.00',
        big: '9007199254740993',
        doc: '{"a": 2, "b": 1}',
        note: 'first then second then third',
      },
    ]);
    const { rows: changes } = await pool.query<{ row: string }>(
      `select row::text from tributary.view_change_entries where view = 'exact_notes' order by transaction_id, seq, entry`,
    );
    expect(changes.map((change) => JSON.parse(change.row).at)).toEqual([
      '2026-11-30T21:14:05.123456Z',
      '2026-11-30T21:14:05.123456Z',
    ]);
    expect(changes.at(-1)!.row).toContain('"amount":"80.00","big":"9007199254740993","doc":{"a":2,"b":1}');
  });
});

/** The same jsonb value with its object keys in another order. */
function reorder(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reorder);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value)
      .reverse()
      .map(([k, v]) => [k, reorder(v)]),
  );
}

/** A value that `value` contains (as jsonb @> defines it), or occasionally one it does not. */
function containedIn(random: Random, value: unknown): unknown {
  if (random() < 0.2) return { missing: 1 };
  if (Array.isArray(value)) return value.filter(() => random() < 0.5);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(Object.entries(value).filter(() => random() < 0.5));
}

/** A filter value equal to, or just beside, a stored one: where rounding through a double would show. */
function nearby(random: Random, type: string, value: unknown): unknown {
  const choice = random();
  switch (type) {
    case 'bigint': {
      const n = BigInt(value as string) + BigInt(Math.floor(choice * 3) - 1);
      return n > 9223372036854775807n || n < -9223372036854775808n ? (value as string) : n.toString();
    }
    case 'numeric': {
      const text = value as string;
      if (!/^-?\d/.test(text)) return text;
      if (choice < 0.3) return `${text}${text.includes('.') ? '' : '.'}000`; // equal, another scale
      if (choice < 0.6) return `${text}${text.includes('.') ? '' : '.'}0000001`; // just above
      return text;
    }
    case 'timestamptz': {
      const text = value as string;
      if (choice < 0.3) return text.replace(/\d(?=Z$)/, (d) => String((Number(d) + 1) % 10));
      if (choice < 0.5) return text.replace('Z', '+00:00');
      return text;
    }
    default:
      return value;
  }
}
