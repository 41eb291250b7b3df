import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { orderLines, productSales, products, shop } from '../examples/shop.js';
import { createPostgresEventStore, replayProjection, START, startWorkers } from '../src/index.js';
import { committedHead } from './support/committedHead.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { waitFor } from './support/waitFor.js';

let db: TestDatabase;
let pool: pg.Pool;

beforeAll(async () => {
  db = await createTestDatabase();
  pool = new pg.Pool({ connectionString: db.url, max: 4 });
});
afterAll(async () => {
  await pool.end();
  await db.drop();
});

/** A captured change of public.products, as the CDC capture appends it. */
const productChange = (op: 'insert' | 'update', id: number, name: string, price: string) => ({
  type: `public.products.${op}`,
  data: { key: { id }, before: null, after: { id, name, price, stock: 10 }, unchanged: [] },
});

async function views() {
  const read = async (view: { name: string }, key: string) =>
    (await pool.query(`select * from tributary_views.${view.name} order by ${key}`)).rows;
  return {
    products: await read(products, 'id'),
    orderLines: await read(orderLines, 'order_id'),
    productSales: await read(productSales, 'product_id'),
  };
}

it("the shop demo declares replay: 'idempotent', and a replay of its whole log changes none of its views", async () => {
  expect(shop.replay).toBe('idempotent');
  const store = createPostgresEventStore({ connectionString: db.url });
  const order = (id: string, productId: number, quantity: number) => ({
    type: 'OrderPlaced',
    data: { orderId: id, customer: 'ada', productId, quantity },
  });
  try {
    await store.append('public.products', [
      productChange('insert', 1, 'Mug', '12.00'),
      productChange('insert', 2, 'Kettle', '59.00'),
    ]);
    await store.append('order-a', [order('a', 1, 2)]);
    await store.append('order-b', [order('b', 2, 1)]);
    await store.append('order-c', [order('c', 1, 1)]);
    await store.append('order-a', [{ type: 'OrderShipped', data: { orderId: 'a' } }]);
    await store.append('order-b', [{ type: 'OrderCancelled', data: { orderId: 'b' } }]);
    await store.append('public.products', [productChange('update', 1, 'Mug', '14.00')]);
    await store.append('order-d', [order('d', 1, 3)]);
  } finally {
    await store.close();
  }
  const workers = startWorkers({ url: db.url, projections: [shop] });
  const caughtUp = async () =>
    (
      await pool.query(`select 1 from tributary.projections where name = 'shop' and position >= $1`, [
        await committedHead(pool),
      ])
    ).rowCount === 1;
  try {
    await waitFor(caughtUp, { what: 'the shop projection' });
    const before = await views();
    expect(before.productSales).toEqual([
      // a (2 × 12.00) and c (1 × 12.00) at the old price, d (3 × 14.00) at the new one; b was cancelled.
      { product_id: 1, product_name: 'Mug', orders: 3, units: 6, revenue: '78.00' },
      { product_id: 2, product_name: 'Kettle', orders: 0, units: 0, revenue: '0.00' },
    ]);

    // With the worker running: the replay takes the projection over and hands it back.
    const result = await replayProjection({ pool, projection: shop, from: START });
    expect(result.events).toBe(9);
    expect(await views()).toEqual(before);
  } finally {
    await workers.stop();
  }
});
