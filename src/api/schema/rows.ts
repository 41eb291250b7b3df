import type { ObjectRef } from '@pothos/core';
import type { AnyView } from '../anyView.js';
import { type Builder, type Row, SCALAR_OF, type SchemaTypes } from './builder.js';

export type RowType = ObjectRef<PothosSchemaTypes.ExtendDefaultTypes<SchemaTypes>, Row>;

/** `<View>`: the view's columns, with the GraphQL scalar of each column type. */
export function rowType(builder: Builder, view: AnyView, type: string): RowType {
  return builder.objectRef<Row>(type).implement({
    description: view.description ?? `A row of the view '${view.name}'.`,
    fields: (t) =>
      Object.fromEntries(
        Object.entries(view.columns).map(([name, column]) => {
          const nullable = column.nullable !== false && !view.primaryKey.includes(name);
          const scalar = SCALAR_OF[column.type];
          return [
            name,
            t.field({
              type: (column.type === 'text[]' ? [scalar] : scalar) as 'String',
              nullable,
              description: column.description,
              resolve: (row) => row[name] as string,
            }),
          ];
        }),
      ),
  });
}
