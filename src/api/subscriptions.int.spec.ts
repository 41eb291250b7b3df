import { createClient as createSseClient } from 'graphql-sse';
import { createClient as createWsClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.js';
import { createViewTable, writeChanges } from '../../test/support/viewTables.js';
import { waitFor } from '../../test/support/waitFor.js';
import { createPool, type Pool } from '../db/index.js';
import { START } from '../ingest/index.js';
import { changeCursor } from '../projections/changelog/index.js';
import {
  type ChangeTailer,
  defineView,
  pruneChanges,
  readChanges,
  type ViewChange,
} from '../projections/index.js';
import { type Api, type ChangeMessage, createApi, subscribeChanges } from './index.js';

const items = defineView({
  name: 'items',
  columns: {
    id: { type: 'integer' },
    label: { type: 'text' },
    qty: { type: 'integer' },
  },
  primaryKey: ['id'],
});

let db: TestDatabase;
let pool: Pool;
let api: Api;
let url: string;

beforeAll(async () => {
  db = await createTestDatabase();
  pool = createPool(db.url, { max: 8 });
  await createViewTable(pool, items);
  api = await createApi({
    connectionString: db.url,
    pool,
    views: [items],
    config: { auth: { open: true }, pollIntervalMs: 200 },
  });
  ({ url } = await api.listen(0));
});

afterAll(async () => {
  await api?.close();
  await pool?.end();
  await db?.drop();
});

const upsert = (id: number, qty = id, label = `item ${id}`) => ({
  op: 'upsert' as const,
  row: { id, label, qty },
});

interface Received {
  op: string;
  cursor: string;
  initial: boolean;
  row: { id: number; qty: number } | null;
  previous: { id: number; qty: number } | null;
}
const SUBSCRIPTION = `subscription ($after: String, $where: ItemsWhere, $initialRows: Boolean) {
  itemsChanges(after: $after, where: $where, initialRows: $initialRows) {
    op cursor initial row { id qty } previous { id qty }
  }
}`;

async function changelog(): Promise<string[]> {
  const { rows } = await pool.query<{ xid: string; row: string; entry: number; entries: number }>(
    `select transaction_id::text as xid, seq::text as row, entry,
            count(*) over (partition by transaction_id, seq)::int as entries
     from tributary.view_change_entries where view = 'items' order by transaction_id, seq, entry`,
  );
  return rows.map((row) => changeCursor(row.xid, row.row, row.entry, row.entries));
}

function wsClient() {
  return createWsClient({ url: url.replace('http', 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 });
}

describe('view subscriptions', () => {
  it('streams live changes over graphql-ws with op, cursor, row and previous', async () => {
    const client = wsClient();
    const received: Received[] = [];
    const iterator = client.iterate<{ itemsChanges: Received }>({ query: SUBSCRIPTION });
    const consuming = (async () => {
      for await (const result of iterator) {
        expect(result.errors).toBeUndefined();
        received.push(result.data!.itemsChanges);
        if (received.length === 3) break;
      }
    })();
    // The subscription starts "now": wait until it is attached before writing.
    await waitFor(() => api.tailer.listeners > 0, { what: 'subscriber attached' });
    await writeChanges(pool, items, [upsert(1), upsert(2)]);
    await writeChanges(pool, items, [{ op: 'delete', row: { id: 1 } }]);
    await consuming;
    await client.dispose();
    expect(received.map((r) => [r.op, r.row?.id ?? null, r.previous?.id ?? null])).toEqual([
      ['UPSERT', 1, null],
      ['UPSERT', 2, null],
      ['DELETE', null, 1],
    ]);
    expect(received.map((r) => r.cursor)).toEqual((await changelog()).slice(-3));
  });

  it('filters with where over SSE, and delivers a change that moves a row out of the filter', async () => {
    const client = createSseClient({ url, retryAttempts: 0 });
    const before = (await changelog()).at(-1)!;
    const received: Received[] = [];
    const iterator = client.iterate<{ itemsChanges: Received }>({
      query: SUBSCRIPTION,
      variables: { after: before, where: { qty: { gte: 100 } } },
    });
    await writeChanges(pool, items, [upsert(10, 5), upsert(11, 150), upsert(12, 500)]);
    await writeChanges(pool, items, [upsert(11, 7)]);
    for await (const result of iterator) {
      expect(result.errors).toBeUndefined();
      received.push(result.data!.itemsChanges);
      if (received.length === 3) break;
    }
    client.dispose();
    expect(received.map((r) => [r.row?.id, r.row?.qty, r.previous?.qty ?? null])).toEqual([
      [11, 150, null],
      [12, 500, null],
      [11, 7, 150],
    ]);
  });

  it('resumes after a disconnect in the middle of a burst: the union equals the changelog, in order, none twice', async () => {
    const start = (await changelog()).at(-1)!;
    const TOTAL = 3000;
    // Two concurrent writers, 50 changes per transaction: commits interleave out of xid order.
    const writer = async (offset: number) => {
      for (let i = 0; i < TOTAL / 2; i += 50) {
        await writeChanges(
          pool,
          items,
          Array.from({ length: 50 }, (_, j) => upsert(1000 + ((offset + i + j) % 700), offset + i + j)),
        );
      }
    };
    const received: string[] = [];
    let cursor = start;
    const first = wsClient();
    const writing = Promise.all([writer(0), writer(TOTAL / 2)]);
    for await (const result of first.iterate<{ itemsChanges: Received }>({
      query: SUBSCRIPTION,
      variables: { after: cursor },
    })) {
      expect(result.errors).toBeUndefined();
      cursor = result.data!.itemsChanges.cursor;
      received.push(cursor);
      if (received.length === 1037) break;
    }
    await first.dispose();
    const second = createSseClient({ url, retryAttempts: 0 });
    const resumed = second.iterate<{ itemsChanges: Received }>({
      query: SUBSCRIPTION,
      variables: { after: cursor },
    });
    await writing;
    const last = (await changelog()).at(-1);
    for await (const result of resumed) {
      expect(result.errors).toBeUndefined();
      received.push(result.data!.itemsChanges.cursor);
      if (received.length === TOTAL || received.at(-1) === last) break;
    }
    second.dispose();
    const all = await changelog();
    expect(received).toEqual(all.slice(all.indexOf(start) + 1));
    expect(new Set(received).size).toBe(TOTAL);
  });

  it('sends the current rows first, then the changes after them, consistently', async () => {
    const client = wsClient();
    const state = new Map<number, number>();
    let stop = false;
    const writing = (async () => {
      let n = 0;
      while (!stop) {
        await writeChanges(pool, items, [upsert(2000 + (n % 40), n), upsert(2100 + (n % 7), -n)]);
        n++;
      }
    })();
    let lastCursor = '';
    let initial = 0;
    let changesSeen = 0;
    const iterator = client.iterate<{ itemsChanges: Received }>({
      query: SUBSCRIPTION,
      variables: { initialRows: true },
    });
    for await (const result of iterator) {
      const message = result.data!.itemsChanges;
      if (message.initial) initial++;
      if (message.op === 'DELETE') state.delete(message.previous!.id);
      else state.set(message.row!.id, message.row!.qty);
      lastCursor = message.cursor;
      if (message.initial === false && ++changesSeen === 25) {
        stop = true;
        await writing;
        break;
      }
    }
    // Drain what was written up to the end of the writer, from the last cursor.
    for await (const result of client.iterate<{ itemsChanges: Received }>({
      query: SUBSCRIPTION,
      variables: { after: lastCursor },
    })) {
      const message = result.data!.itemsChanges;
      if (message.op === 'DELETE') state.delete(message.previous!.id);
      else state.set(message.row!.id, message.row!.qty);
      if (message.cursor === (await changelog()).at(-1)) break;
    }
    await client.dispose();
    const { rows } = await pool.query<{ id: number; qty: number }>(
      'select id, qty from tributary_views.items',
    );
    expect(initial).toBeGreaterThan(0);
    expect(new Map(rows.map((row) => [row.id, row.qty]))).toEqual(state);
  });

  it('after the initial rows, skips exactly the changes already in them, even from transactions above xmin', async () => {
    // An open transaction holds xmin back; a change committed after it is in the snapshot
    // (visible) although its transaction id is above xmin.
    const holder = await pool.connect();
    try {
      await holder.query('begin');
      await holder.query('select pg_current_xact_id()');
      await writeChanges(pool, items, [upsert(7001, 1)]);
      const { rows } = await pool.query<{ n: number }>(
        'select count(*)::int as n from tributary_views.items',
      );
      const abort = new AbortController();
      const iterator = subscribeChanges({
        pool,
        tailer: api.tailer,
        schema: 'tributary_views',
        view: items,
        initialRows: true,
        signal: abort.signal,
      });
      const initial: ChangeMessage[] = [];
      for (let i = 0; i < rows[0]!.n; i++) initial.push((await iterator.next()).value as ChangeMessage);
      expect(initial.every((m) => m.initial)).toBe(true);
      expect(initial.some((m) => m.row?.id === 7001)).toBe(true);
      // The held transaction now writes and commits, then another change follows.
      await holder.query(`insert into tributary_views.items values (7002, 'held', 2)`);
      await holder.query(
        `insert into tributary.view_changes (view, op, key, row) values ('items', 'upsert', '{"id":7002}', '{"id":7002,"label":"held","qty":2}')`,
      );
      await holder.query('commit');
      await writeChanges(pool, items, [upsert(7003, 3)]);
      // In transaction order: the held one (lowest id) first, then 7003; 7001 is in the rows already.
      const after = [(await iterator.next()).value, (await iterator.next()).value] as ChangeMessage[];
      expect(after.map((m) => [m.initial, m.row?.id])).toEqual([
        [false, 7002],
        [false, 7003],
      ]);
      abort.abort();
      await iterator.return(undefined);
    } finally {
      await holder.query('rollback').catch(() => {});
      holder.release();
    }
  });

  it('never repeats a change at the history/live boundary when its history read got ahead of the tailer', async () => {
    // A tailer that lags: it last read up to the middle of a burst this subscriber reads as history.
    const before = (await changelog()).at(-1) ?? START;
    await writeChanges(pool, items, [upsert(7101)]);
    await writeChanges(pool, items, [upsert(7102)]);
    await writeChanges(pool, items, [upsert(7103)]);
    const burst = (await readChanges(pool, before, { views: ['items'] })).changes;
    expect(burst).toHaveLength(3);
    const listeners = new Set<(changes: readonly ViewChange[], next: string) => void>();
    const lagging: ChangeTailer = {
      position: burst[0]!.cursor,
      ready: Promise.resolve(),
      get listeners() {
        return listeners.size;
      },
      listen(listener) {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
      close: async () => {},
    };
    const iterator = subscribeChanges({
      pool,
      tailer: lagging,
      schema: 'tributary_views',
      view: items,
      after: before,
    });
    const received: string[] = [];
    for (let i = 0; i < 3; i++) received.push(((await iterator.next()).value as ChangeMessage).cursor);
    const pending = iterator.next();
    await waitFor(() => listeners.size > 0, { what: 'live attach' });
    // The tailer catches up: its batch repeats two changes the subscriber already has, then a new one.
    await writeChanges(pool, items, [upsert(7104)]);
    const fresh = (await readChanges(pool, burst[2]!.cursor, { views: ['items'] })).changes;
    for (const listener of listeners) listener([...burst.slice(1), ...fresh], fresh.at(-1)!.cursor);
    received.push(((await pending).value as ChangeMessage).cursor);
    expect(received).toEqual([...burst, ...fresh].map((c) => c.cursor));
    await iterator.return(undefined);
  });

  it('cuts off a subscriber that falls behind its buffer with an error carrying the last delivered cursor', async () => {
    const abort = new AbortController();
    const iterator = subscribeChanges({
      pool,
      tailer: api.tailer,
      schema: 'tributary_views',
      view: items,
      maxBuffer: 5,
      signal: abort.signal,
    });
    const firstMessage = iterator.next();
    await waitFor(() => api.tailer.listeners > 0, { what: 'subscriber attached' });
    await writeChanges(pool, items, [upsert(3000)]);
    const first = (await firstMessage).value as ChangeMessage;
    // The consumer stops reading while 20 more changes arrive.
    await writeChanges(
      pool,
      items,
      Array.from({ length: 20 }, (_, i) => upsert(3001 + i)),
    );
    const all = await changelog();
    await waitFor(() => api.tailer.position > all.at(-1)!, { what: 'tailer past the burst' });
    const delivered: string[] = [];
    const error = await (async () => {
      try {
        for (;;) {
          const next = await iterator.next();
          if (next.done) return undefined;
          delivered.push(next.value.cursor);
        }
      } catch (caught) {
        return caught as { code: string; lastCursor: string };
      }
    })();
    expect(error?.code).toBe('SUBSCRIPTION_OVERFLOW');
    expect(delivered).toEqual(all.slice(all.indexOf(first.cursor) + 1).slice(0, 5));
    expect(error?.lastCursor).toBe(delivered.at(-1));

    // Resuming from lastCursor delivers exactly the rest.
    const rest: string[] = [];
    for await (const message of subscribeChanges({
      pool,
      tailer: api.tailer,
      schema: 'tributary_views',
      view: items,
      after: error!.lastCursor,
      signal: abort.signal,
    })) {
      rest.push(message.cursor);
      if (message.cursor === all.at(-1)) break;
    }
    expect([first.cursor, ...delivered, ...rest]).toEqual(all.slice(all.indexOf(first.cursor)));
  });

  it('cuts off a WebSocket client that stopped reading once its buffer is full, after delivering everything up to lastCursor', async () => {
    const slowApi = await createApi({
      connectionString: db.url,
      pool,
      views: [items],
      config: { auth: { open: true }, limits: { subscriptionBuffer: 50 } },
    });
    const { url: slowUrl } = await slowApi.listen(0);
    try {
      const socket = new WebSocket(slowUrl.replace('http', 'ws'), 'graphql-transport-ws');
      const messages: {
        type: string;
        payload?: { data?: { itemsChanges: Received }; errors?: { extensions: Record<string, string> }[] };
      }[] = [];
      socket.on('message', (data: Buffer) => messages.push(JSON.parse(data.toString())));
      await new Promise((resolve) => socket.once('open', resolve));
      socket.send(JSON.stringify({ type: 'connection_init' }));
      await waitFor(() => messages.some((m) => m.type === 'connection_ack'), { what: 'connection_ack' });
      socket.send(
        JSON.stringify({
          id: '1',
          type: 'subscribe',
          payload: { query: SUBSCRIPTION.replace('row { id qty }', 'row { id qty label }') },
        }),
      );
      await waitFor(() => slowApi.tailer.listeners > 0, { what: 'subscriber attached' });
      const start = (await changelog()).at(-1)!;
      // The client stops reading its socket; the server keeps producing 16 KB messages.
      const tcp = (socket as unknown as { _socket: { pause(): void; resume(): void } })._socket;
      tcp.pause();
      // (Quickly: graphql-ws drops a connection that answers no ping for 12 s.)
      for (let batch = 0; batch < 8; batch++) {
        await writeChanges(
          pool,
          items,
          Array.from({ length: 80 }, (_, i) => upsert(5000 + batch * 100 + i, i, 'x'.repeat(16 * 1024))),
        );
      }
      await waitFor(() => slowApi.tailer.listeners === 0, {
        timeoutMs: 30_000,
        what: 'the slow subscriber to be cut off',
      });
      tcp.resume();
      await waitFor(() => messages.some((m) => m.type === 'complete' || m.type === 'error'), {
        timeoutMs: 30_000,
        what: 'the end of the subscription',
      });
      const delivered = messages
        .filter((m) => m.payload?.data)
        .map((m) => m.payload!.data!.itemsChanges.cursor);
      const failure = messages.find((m) => m.payload?.errors)!.payload!.errors![0]!.extensions;
      expect(failure.code).toBe('SUBSCRIPTION_OVERFLOW');
      expect(failure.lastCursor).toBe(delivered.at(-1));
      const all = await changelog();
      expect(delivered.length).toBeLessThan(640);
      expect(delivered).toEqual(all.slice(all.indexOf(start) + 1, all.indexOf(start) + 1 + delivered.length));
      socket.close();
    } finally {
      await slowApi.close();
    }
  });

  it('delivers a view reset (a rebuild swapped in) to every subscriber, whatever its filter', async () => {
    const after = (await changelog()).at(-1)!;
    await pool.query(`insert into tributary.view_changes (view, op, key) values ('items', 'reset', '{}')`);
    const client = createSseClient({ url, retryAttempts: 0 });
    for await (const result of client.iterate<{ itemsChanges: Received }>({
      query: SUBSCRIPTION,
      variables: { after, where: { qty: { eq: -12345 } } },
    })) {
      expect(result.data!.itemsChanges).toMatchObject({ op: 'RESET', row: null, previous: null });
      break;
    }
    client.dispose();
  });

  it('refuses a cursor older than the retained changelog with CURSOR_EXPIRED', async () => {
    const oldest = (await changelog())[0]!;
    await writeChanges(pool, items, [upsert(4000)]);
    await pool.query("update tributary.view_changes set created_at = now() - interval '1 hour'");
    expect(await pruneChanges(pool, 60_000)).toBeGreaterThan(0);
    const client = wsClient();
    const results = [];
    for await (const result of client.iterate({ query: SUBSCRIPTION, variables: { after: oldest } })) {
      results.push(result);
    }
    await client.dispose();
    expect(results).toHaveLength(1);
    expect(results[0]!.errors?.[0]?.extensions).toMatchObject({ code: 'CURSOR_EXPIRED' });
  });

  it('retention prunes the oldest changes in changelog order, up to the first one it keeps', async () => {
    await writeChanges(pool, items, [upsert(5001)]);
    await writeChanges(pool, items, [upsert(5002)]);
    await writeChanges(pool, items, [upsert(5003)]);
    const [a, b, c] = (await changelog()).slice(-3) as [string, string, string];
    // Everything is past the retention except b: a and all before it go, b and c (after b) stay.
    await pool.query(
      `update tributary.view_changes set created_at = case when (transaction_id, seq) = ($1::xid8, $2::bigint)
         then now() else now() - interval '1 hour' end`,
      [BigInt(`0x${b.slice(0, 16)}`).toString(), BigInt(`0x${b.slice(17)}`).toString()],
    );
    expect(await pruneChanges(pool, 60_000)).toBeGreaterThan(0);
    expect(await changelog()).toEqual([b, c]);
    const { rows } = await pool.query('select pruned_through from tributary.view_changes_pruned');
    expect(rows[0].pruned_through).toBe(a);
    expect((await readChanges(pool, a, { views: ['items'] })).changes.map((change) => change.cursor)).toEqual(
      [b, c],
    );
    expect(await pruneChanges(pool, 60_000)).toBe(0);
  });
});
