import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.js';
import { createPool, type Pool } from '../db/index.js';
import { createPostgresEventStore, type EventStore, formatPosition } from '../ingest/index.js';
import { defineProjection, defineView, getProjectionStatuses } from './index.js';

const view = defineView({ name: 'lagging', columns: { id: { type: 'text' } }, primaryKey: ['id'] });
const everything = defineProjection({ name: 'everything', version: 1, views: [view], handle: () => {} });
const halves = defineProjection({
  name: 'halves',
  version: 1,
  views: [view],
  filter: { types: ['Even'] },
  handle: () => {},
});

let db: TestDatabase;
let pool: Pool;
let store: EventStore;

beforeAll(async () => {
  db = await createTestDatabase();
  pool = createPool(db.url, { max: 2 });
  store = createPostgresEventStore({ connectionString: db.url, pool });
});
afterAll(async () => {
  await store?.close();
  await pool?.end();
  await db?.drop();
});

describe('projection lag', () => {
  it('is counted exactly up to 10,000 events behind, and estimated from positions (and labelled so) beyond', async () => {
    const append = async (count: number) => {
      for (let i = 0; i < count; i += 1000) {
        await store.append(
          `s-${i}`,
          Array.from({ length: Math.min(1000, count - i) }, (_, j) => ({
            type: (i + j) % 2 ? 'Odd' : 'Even',
            data: {},
          })),
        );
      }
    };
    await append(4000);
    const [small, smallHalf] = await getProjectionStatuses(pool, [everything, halves]);
    expect(small).toMatchObject({ lagEvents: 4000, lagEstimated: false });
    expect(smallHalf).toMatchObject({ lagEvents: 2000, lagEstimated: false });

    await append(26_000);
    const [big, bigHalf] = await getProjectionStatuses(pool, [everything, halves]);
    expect(big!.lagEstimated).toBe(true);
    expect(big!.lagEvents).toBe(30_000); // every position since START was used, none rolled back
    expect(bigHalf!.lagEstimated).toBe(true);
    expect(Math.abs(bigHalf!.lagEvents - 15_000)).toBeLessThan(300);
    expect(big!.lagSeconds).toBeGreaterThanOrEqual(0);
    expect(formatPosition(0n, 0n)).toBe(big!.position);
  });
});
