import { validateSchema } from 'graphql';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../errors.js';
import { defineView } from '../projections/index.js';
import { buildSchema, fieldName, typeName } from './index.js';

const view = (name: string) => defineView({ name, columns: { id: { type: 'text' } }, primaryKey: ['id'] });
// Building the schema touches none of these; they are only called when requests run.
const unused = { pool: {}, tailer: {}, store: {}, status: {} } as never as Parameters<typeof buildSchema>[0];
const build = (...names: string[]) =>
  buildSchema({
    ...unused,
    views: names.map(view),
    viewSchema: 'tributary_views',
    defaultPageSize: 50,
    maxPageSize: 1000,
    subscriptionBuffer: 100,
    readYourWritesTimeoutMs: 1000,
  });

describe('GraphQL names of views', () => {
  it('turns snake_case view names into type and field names', () => {
    expect(typeName('order_lines')).toBe('OrderLines');
    expect(fieldName('order_lines')).toBe('orderLines');
    expect(fieldName('_private_v2')).toBe('privateV2');
  });

  it('refuses views whose names clash with each other or with built-in fields', () => {
    expect(() => build('order_lines', 'order__lines')).toThrow(ConfigError);
    expect(() => build('projections')).toThrow(/built-in field/);
    expect(() => build('orders', 'orders_by_key')).toThrow(/already uses/);
    expect(() => build('orders', 'lines')).not.toThrow();
  });

  it('builds a valid schema without any view (status and appendEvents only)', () => {
    const schema = build();
    expect(validateSchema(schema)).toEqual([]);
    expect(validateSchema(build('orders', 'lines'))).toEqual([]);
    expect(schema.getSubscriptionType()).toBeUndefined();
    expect(Object.keys(schema.getQueryType()!.getFields())).toEqual(['projections', 'sources']);
  });
});
