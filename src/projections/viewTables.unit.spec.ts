import { describe, expect, it } from 'vitest';
import { ValidationError } from '../errors.js';
import { defineProjection, defineView, projectionOfView, validateProjections } from './index.js';
import { viewsFingerprint, viewTableStatements } from './viewTables.js';

const orders = defineView({
  name: 'orders',
  columns: {
    id: { type: 'bigint' },
    customer: { type: 'text', nullable: false },
    total: { type: 'numeric' },
    tags: { type: 'text[]' },
    placed_at: { type: 'timestamptz' },
  },
  primaryKey: ['id'],
  indexes: [{ columns: ['customer', 'placed_at'] }, { columns: ['customer'], unique: true }],
  description: 'Orders by id',
});

describe('view tables', () => {
  it('turns a definition into DDL with quoted identifiers, NOT NULL keys and anonymous indexes', () => {
    expect(viewTableStatements(orders, 'views')).toEqual([
      'create table "views"."orders" ("id" bigint not null, "customer" text not null, "total" numeric, "tags" text[], "placed_at" timestamptz, primary key ("id")) with (fillfactor = 90)',
      'create index on "views"."orders" ("customer", "placed_at")',
      'create unique index on "views"."orders" ("customer")',
    ]);
    expect(() => viewTableStatements(orders, 'Bad Schema')).toThrow(ValidationError);
  });

  it('leaves room for HOT updates unless a view asks for full pages, and refuses a bad fill', () => {
    expect(viewTableStatements(defineView({ ...orders, fillfactor: 100 }), 'views')[0]).toMatch(
      / with \(fillfactor = 100\)$/,
    );
    expect(() => defineView({ ...orders, fillfactor: 5 })).toThrow(/fillfactor 5/);
    expect(() => defineView({ ...orders, fillfactor: 90.5 })).toThrow(ValidationError);
    // The fill is storage, not shape: changing it needs no new version.
    expect(viewsFingerprint([{ ...orders, fillfactor: 100 }])).toBe(viewsFingerprint([orders]));
  });

  it('fingerprints what shapes the tables, not descriptions or search fields', () => {
    const base = viewsFingerprint([orders]);
    expect(viewsFingerprint([{ ...orders, description: 'other' }])).toBe(base);
    expect(viewsFingerprint([{ ...orders, search: { fields: ['customer'] } }])).toBe(base);
    expect(
      viewsFingerprint([{ ...orders, columns: { ...orders.columns, total: { type: 'double' } } }]),
    ).not.toBe(base);
    expect(
      viewsFingerprint([
        { ...orders, columns: { ...orders.columns, total: { type: 'numeric', nullable: false } } },
      ]),
    ).not.toBe(base);
    expect(viewsFingerprint([{ ...orders, indexes: [] }])).not.toBe(base);
  });
});

describe('defineProjection', () => {
  const handle = async () => {};
  it('checks names, versions, handlers and policies up front', () => {
    expect(() => defineProjection({ name: 'Bad-Name', version: 1, views: [], handle })).toThrow(
      ValidationError,
    );
    expect(() => defineProjection({ name: 'p', version: 0, views: [], handle })).toThrow(/positive integer/);
    expect(() => defineProjection({ name: 'p', version: 1, views: [] })).toThrow(
      /exactly one of handle, handleBatch or sql/,
    );
    expect(() => defineProjection({ name: 'p', version: 1, views: [orders, orders], handle })).toThrow(
      /twice/,
    );
    expect(() =>
      defineProjection({ name: 'p', version: 1, views: [], handle, onError: 'skip' as never }),
    ).toThrow(/'stop' or 'dead-letter'/);
  });

  it('refuses two projections writing one view, and maps a view to its projection', () => {
    const a = defineProjection({ name: 'a', version: 1, views: [orders], handle });
    const b = defineProjection({ name: 'b', version: 1, views: [orders], handle });
    expect(() => validateProjections([a, b])).toThrow(/written by both 'a' and 'b'/);
    expect(() => validateProjections([a, a])).toThrow(/Two projections are named 'a'/);
    expect(projectionOfView([a], 'orders')).toBe(a);
    expect(projectionOfView([a], 'missing')).toBeUndefined();
  });
});
