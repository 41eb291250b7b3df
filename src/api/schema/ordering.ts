import type { EnumRef, InputObjectRef } from '@pothos/core';
import type { AnyView } from '../anyView.js';
import type { OrderBy } from '../queryView.js';
import type { Builder, SchemaTypes } from './builder.js';

type Types = PothosSchemaTypes.ExtendDefaultTypes<SchemaTypes>;
export type SortDirection = EnumRef<Types, 'ASC' | 'DESC', 'ASC' | 'DESC'>;
export type OrderByInput = InputObjectRef<Types, OrderBy>;

export function sortDirection(builder: Builder): SortDirection {
  return builder.enumType('SortDirection', {
    description: 'Ascending sorts nulls last, descending sorts them first.',
    values: ['ASC', 'DESC'] as const,
  });
}

/** `<View>Field` (the orderable columns) and `<View>OrderBy`. */
export function orderByInput(
  builder: Builder,
  view: AnyView,
  type: string,
  direction: SortDirection,
): OrderByInput {
  const orderable = Object.entries(view.columns)
    .filter(([, column]) => column.type !== 'jsonb' && column.type !== 'text[]')
    .map(([name]) => name);
  const field = builder.enumType(`${type}Field`, { values: orderable as [string, ...string[]] });
  return builder.inputRef<OrderBy>(`${type}OrderBy`).implement({
    fields: (t) => ({
      field: t.field({ type: field, required: true }),
      direction: t.field({ type: direction, required: false, defaultValue: 'ASC' }),
    }),
  });
}
