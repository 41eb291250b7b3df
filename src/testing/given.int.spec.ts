import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.js';
import { defineProjection, defineView } from '../projections/index.js';
import { cdcChange, given } from './index.js';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db.drop();
});

const balances = defineView({
  name: 'balances',
  columns: { account: { type: 'text' }, balance: { type: 'bigint', nullable: false } },
  primaryKey: ['account'],
});
const balanceProjection = defineProjection({
  name: 'balances',
  version: 1,
  views: [balances],
  filter: { types: ['Deposited', 'Withdrawn'] },
  async handle(event, ctx) {
    const account = String(event.data.account);
    const row = await ctx.get(balances, { account });
    const delta = BigInt(Number(event.data.amount)) * (event.type === 'Withdrawn' ? -1n : 1n);
    await ctx.upsert(balances, { account, balance: String(BigInt(row?.balance ?? '0') + delta) });
  },
});

const products = defineView({
  name: 'products',
  columns: { id: { type: 'integer' }, name: { type: 'text' }, price: { type: 'numeric' } },
  primaryKey: ['id'],
});
const catalog = defineProjection({
  name: 'catalog',
  version: 1,
  views: [products],
  filter: { typePrefixes: ['public.products.'] },
  async handle(event, ctx) {
    const { key, after } = event.data as { key: { id: number }; after: Record<string, never> | null };
    if (event.type.endsWith('.delete')) await ctx.delete(products, { id: key.id });
    else await ctx.upsert(products, { ...after, id: key.id });
  },
});

describe('given / when / then', () => {
  it('checks the rows a projection writes for the given events', async () => {
    await given([
      { type: 'Deposited', data: { account: 'a1', amount: 10 } },
      { type: 'Deposited', data: { account: 'a2', amount: 3 } },
      { type: 'Ignored', data: { account: 'a3', amount: 99 } },
      { type: 'Withdrawn', data: { account: 'a1', amount: 4 } },
    ])
      .when(balanceProjection, { url: db.url })
      .then(balances, [
        { account: 'a1', balance: 6 },
        { account: 'a2', balance: '3' },
      ]);
  });

  it('fails with a readable diff when the rows differ', async () => {
    const failure = await given([{ type: 'Deposited', data: { account: 'a1', amount: 10 } }])
      .when(balanceProjection, { url: db.url })
      .then(balances, [{ account: 'a1', balance: 11 }])
      .catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(Error);
    expect(String((failure as Error).message)).toMatch(/Rows of view 'balances' differ/);
  });

  it('takes CDC changes, and leaves nothing behind', async () => {
    const when = given([
      cdcChange('public.products', 'insert', {
        key: { id: 1 },
        after: { id: 1, name: 'Pen', price: '1.50' },
      }),
      cdcChange('public.products', 'insert', { key: { id: 2 }, after: { id: 2, name: 'Ink', price: '7' } }),
      cdcChange('public.products', 'update', {
        key: { id: 1 },
        after: { id: 1, name: 'Pen', price: '1.75' },
      }),
      cdcChange('public.products', 'delete', { key: { id: 2 }, before: { id: 2 } }),
    ]).when(catalog, { url: db.url });
    await when.then(products, [{ id: 1, name: 'Pen', price: '1.75' }]);
    expect(await when.rows(products)).toEqual([{ id: 1, name: 'Pen', price: '1.75' }]);
    const pg = await import('pg');
    const client = new pg.default.Client({ connectionString: db.url });
    await client.connect();
    const { rows } = await client.query(
      `select count(*)::int as n from pg_namespace where nspname like 'tributary_test_%'`,
    );
    await client.end();
    expect(rows[0].n).toBe(0);
  });
});
