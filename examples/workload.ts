// A small generated workload for the demo: customers place orders through the GraphQL
// appendEvents mutation, some get shipped or cancelled, and product prices, stock and names
// change in the public.products table (which CDC captures).
import pg from 'pg';

const PRODUCTS: [string, number][] = [
  ['Espresso beans 1kg', 24.5],
  ['Pour-over kettle', 59],
  ['Ceramic mug', 12],
  ['Hand grinder', 89.9],
  ['Paper filters (100)', 6.5],
  ['Milk frother', 34],
  ['Cold brew jar', 27.75],
  ['Scale 0.1g', 42],
];
const CUSTOMERS = ['ada', 'grace', 'linus', 'barbara', 'ken', 'margaret', 'dennis', 'radia'];

/** Creates and fills public.products (the table CDC captures) when it does not exist yet. */
export async function ensureProducts(databaseUrl: string): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query(`create table if not exists public.products (
      id integer primary key, name text not null, price numeric(10,2) not null, stock integer not null)`);
    for (const [i, [name, price]] of PRODUCTS.entries()) {
      await client.query('insert into public.products values ($1, $2, $3, $4) on conflict (id) do nothing', [
        i + 1,
        name,
        price,
        50 + i * 10,
      ]);
    }
  } finally {
    await client.end();
  }
}

const APPEND = `mutation Append($stream: String!, $expected: ExpectedVersion, $events: [EventInput!]!) {
  appendEvents(streamId: $stream, expectedVersion: $expected, events: $events) { position nextExpectedVersion }
}`;

export interface Workload {
  stop(): Promise<void>;
}

/** Runs until stopped: an order every ~700 ms, a shipment or cancellation every ~1.5 s, a price change every ~4 s. */
export function startWorkload(options: {
  apiUrl: string;
  databaseUrl: string;
  onError?: (error: unknown) => void;
}): Workload {
  const pool = new pg.Pool({ connectionString: options.databaseUrl, max: 2 });
  const open: { stream: string; version: number }[] = [];
  let next = Date.now() % 100_000;
  let stopped = false;
  const pick = <T>(list: readonly T[]) => list[Math.floor(Math.random() * list.length)]!;

  const append = async (stream: string, expected: number | string, events: unknown[]) => {
    const response = await fetch(options.apiUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: APPEND, variables: { stream, expected, events } }),
    });
    const result = (await response.json()) as {
      data?: { appendEvents: { nextExpectedVersion: number } };
      errors?: { message: string }[];
    };
    if (result.errors) throw new Error(result.errors[0]!.message);
    return result.data!.appendEvents.nextExpectedVersion;
  };

  const placeOrder = async () => {
    const orderId = `o-${(next++).toString(36)}`;
    const stream = `order-${orderId}`;
    const version = await append(stream, 'no_stream', [
      {
        type: 'OrderPlaced',
        data: {
          orderId,
          customer: pick(CUSTOMERS),
          productId: 1 + Math.floor(Math.random() * PRODUCTS.length),
          quantity: 1 + Math.floor(Math.random() * 3),
        },
      },
    ]);
    open.push({ stream, version });
  };
  const settleOrder = async () => {
    const order = open.splice(Math.floor(Math.random() * open.length), 1)[0];
    if (!order) return;
    const orderId = order.stream.slice('order-'.length);
    const type = Math.random() < 0.8 ? 'OrderShipped' : 'OrderCancelled';
    await append(order.stream, order.version, [{ type, data: { orderId } }]);
  };
  const changeProduct = async () => {
    const id = 1 + Math.floor(Math.random() * PRODUCTS.length);
    await pool.query(
      'update public.products set price = greatest(1, round(price * (0.9 + random() * 0.2)::numeric, 2)), stock = greatest(0, stock - 1 + floor(random() * 3)::int) where id = $1',
      [id],
    );
  };

  // A product goes in and out of a limited edition: search finds it under its new name.
  const renameProduct = async () => {
    const id = 1 + Math.floor(Math.random() * PRODUCTS.length);
    await pool.query(
      `update public.products set name = case when name like '% (limited edition)'
         then left(name, length(name) - length(' (limited edition)')) else name || ' (limited edition)' end
       where id = $1`,
      [id],
    );
  };

  const every = (ms: number, task: () => Promise<void>) => {
    const timer = setInterval(() => {
      if (stopped) return;
      task().catch((error: unknown) => options.onError?.(error));
    }, ms);
    return timer;
  };
  const timers = [
    every(700, placeOrder),
    every(1500, settleOrder),
    every(4000, changeProduct),
    every(5000, renameProduct),
  ];
  return {
    async stop() {
      stopped = true;
      for (const timer of timers) clearInterval(timer);
      await pool.end();
    },
  };
}
