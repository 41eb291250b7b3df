import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { expect, it } from 'vitest';
import {
  CUSTOMER_ORDERS_SQL,
  customerOrdersJoin,
  joinScript,
  WAITING_SQL,
} from '../../test/fixtures/joinCrash.js';
import { crashSpec, killRepeatedly } from '../../test/support/crashWorker.js';
import type { TestDatabase } from '../../test/support/database.js';
import { waitFor } from '../../test/support/waitFor.js';
import type { EventStore } from '../ingest/index.js';

const WORKER = fileURLToPath(new URL('../../test/fixtures/joinCrashWorker.ts', import.meta.url));

let db: TestDatabase;
let store: EventStore;
let client: pg.Client;

crashSpec((spec) => ({ db, store, client } = spec));

/** When a worker last took or renewed the lease (every commit renews it). */
async function leaseWritten(): Promise<string> {
  const { rows } = await client.query<{ at: string | null }>(
    'select max(lease_expires_at)::text as at from tributary.projections where name = any ($1)',
    [[customerOrdersJoin.name]],
  );
  return rows[0]?.at ?? '';
}

async function caughtUpTo(position: string): Promise<boolean> {
  const { rows } = await client.query<{ ok: boolean }>(
    'select position >= $2 as ok from tributary.projections where name = $1',
    [customerOrdersJoin.name, position],
  );
  return rows[0]?.ok === true;
}

it('a join keeping keyed state, SIGKILLed at random moments, ends as the join in SQL', async () => {
  const script = joinScript(30, 40);
  let kills = 0;
  const crashes = killRepeatedly({
    worker: WORKER,
    databaseUrl: db.url,
    leaseWritten,
    killAfterMs: { min: 150, spread: 600 },
  });

  try {
    for (const [index, phase] of script.entries()) {
      // Several appends per phase, so that batches and kills cut across them.
      const third = Math.ceil(phase.length / 3);
      await store.append(`shop-${index}-a`, phase.slice(0, third));
      await store.append(`shop-${index}-b`, phase.slice(third, 2 * third));
      const { position } = await store.append(`shop-${index}-c`, phase.slice(2 * third));
      // Every few phases, let the worker catch up, so that kills also land on a live tail.
      if (index % 5 === 4) {
        await waitFor(() => caughtUpTo(position), { timeoutMs: 60_000, what: 'the join to catch up' });
      }
    }
    // On a quiet machine the script can end before three kills: the loop goes on killing
    // restarted workers until it has, and the view must still end exact.
    await waitFor(() => crashes.kills >= 3, { timeoutMs: 120_000, what: 'three workers to be killed' });
    const { rows } = await client.query<{ p: string }>(
      `select lpad(to_hex(transaction_id::text::bigint), 16, '0') || '-' || lpad(to_hex(global_position), 16, '0') as p
         from tributary.events order by transaction_id desc, global_position desc limit 1`,
    );
    await waitFor(() => caughtUpTo(rows[0]!.p), {
      timeoutMs: 120_000,
      what: 'the join to catch up at the end',
    });
  } finally {
    kills = await crashes.stop();
  }
  expect(kills).toBeGreaterThanOrEqual(3);

  const expected = (await client.query(CUSTOMER_ORDERS_SQL)).rows;
  expect(expected.length).toBeGreaterThan(20);
  const view = (
    await client.query(
      'select customer, name, orders, total from tributary_views.customer_orders order by customer',
    )
  ).rows;
  expect(view).toEqual(expected);
  // The keyed state holds exactly the orders still waiting for a customer, and who is known.
  const waiting = (
    await client.query(
      `select key as customer, (value->>'orders')::int as orders, (value->>'total')::int as total
         from tributary.projection_state where projection = $1 and namespace = 'waiting' order by key`,
      [customerOrdersJoin.name],
    )
  ).rows;
  expect(waiting).toEqual((await client.query(WAITING_SQL)).rows);
  expect(waiting.length).toBeGreaterThan(0);
  const { rows: known } = await client.query(
    `select count(*)::int as n from tributary.projection_state where projection = $1 and namespace = 'customer'`,
    [customerOrdersJoin.name],
  );
  expect(known[0].n).toBe(expected.length);
}, 600_000);
