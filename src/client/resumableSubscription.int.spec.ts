import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.js';
import { startTcpProxy, type TcpProxy } from '../../test/support/tcpProxy.js';
import { createViewTable, writeChanges } from '../../test/support/viewTables.js';
import { type Api, createApi } from '../api/index.js';
import { createPool, type Pool } from '../db/index.js';
import { defineView } from '../projections/index.js';
import { resumableSubscription, SubscriptionRefusedError } from './index.js';

const items = defineView({
  name: 'items',
  columns: { id: { type: 'integer' }, qty: { type: 'integer' } },
  primaryKey: ['id'],
});

let db: TestDatabase;
let pool: Pool;
let api: Api;
let proxy: TcpProxy;

beforeAll(async () => {
  db = await createTestDatabase();
  pool = createPool(db.url, { max: 8 });
  await createViewTable(pool, items);
  api = await createApi({
    connectionString: db.url,
    pool,
    views: [items],
    config: { auth: { apiKeys: [{ name: 'app', key: 'app-key', scopes: ['read'] }] }, pollIntervalMs: 200 },
  });
  const { port } = await api.listen(0);
  proxy = await startTcpProxy(port);
});

afterAll(async () => {
  await proxy?.close();
  await api?.close();
  await pool?.end();
  await db?.drop();
});

async function changelog(): Promise<string[]> {
  const { rows } = await pool.query<{ cursor: string }>(
    `select lpad(to_hex(transaction_id::text::bigint), 16, '0') || '-' || lpad(to_hex(seq), 16, '0') as cursor
     from tributary.view_changes where view = 'items' order by transaction_id, seq`,
  );
  return rows.map((row) => row.cursor);
}

const QUERY = `subscription ($after: String) { itemsChanges(after: $after) { op cursor row { id qty } } }`;

describe('resumableSubscription', () => {
  for (const transport of ['ws', 'sse'] as const) {
    it(`over ${transport}: delivers every change exactly once, in order, while the connection is cut again and again mid-burst`, async () => {
      const start = (await changelog()).at(-1) ?? '0000000000000000-0000000000000000';
      const TOTAL = 3000;
      // Two writers, 50 changes per transaction: commits interleave out of transaction-id order.
      const writer = async (offset: number) => {
        for (let i = 0; i < TOTAL / 2; i += 50) {
          await writeChanges(
            pool,
            items,
            Array.from({ length: 50 }, (_, j) => ({
              op: 'upsert' as const,
              row: { id: (offset + i + j) % 700, qty: offset + i + j },
            })),
          );
        }
      };
      const writing = Promise.all([writer(0), writer(TOTAL / 2)]);
      const received: string[] = [];
      let reconnects = 0;
      let drops = 0;
      const abort = new AbortController();
      const scheme = transport === 'ws' ? 'ws' : 'http';
      for await (const change of resumableSubscription<{ cursor: string; op: string }>({
        url: `${scheme}://127.0.0.1:${proxy.port}/graphql`,
        query: QUERY,
        after: start,
        authorization: 'Bearer app-key',
        webSocketImpl: WebSocket,
        retryDelayMs: 5,
        signal: abort.signal,
        onReconnect: () => reconnects++,
      })) {
        received.push(change.cursor);
        // Cut the connection every 250 changes, in the middle of whatever is in flight.
        if (received.length % 250 === 0 && drops < 10) drops += proxy.dropAll() > 0 ? 1 : 0;
        if (received.length === TOTAL) break;
      }
      await writing;
      const all = await changelog();
      expect(drops).toBeGreaterThanOrEqual(8);
      expect(reconnects).toBeGreaterThanOrEqual(drops);
      expect(new Set(received).size).toBe(received.length);
      expect(received).toEqual(all.slice(all.indexOf(start) + 1));
    });
  }

  it('gives up with the reason when the server refuses the subscription itself', async () => {
    const subscription = resumableSubscription({
      url: `http://127.0.0.1:${proxy.port}/graphql`,
      query: QUERY,
      after: '7fffffffffffffff-0000000000000001',
      authorization: 'Bearer app-key',
    });
    const refused = await subscription.next().catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(SubscriptionRefusedError);
    expect((refused as SubscriptionRefusedError).code).toBe('VALIDATION_FAILED');
    expect((refused as Error).message).toMatch(/ahead of this changelog/);
  });
});
