import type { InputObjectRef } from '@pothos/core';
import type { ColumnType } from '../../projections/index.js';
import type { AnyView } from '../anyView.js';
import type { Where } from '../filter.js';
import { type Builder, type JsonInput, SCALAR_OF, type SchemaTypes } from './builder.js';

type FilterShape = Record<string, JsonInput | undefined>;
export type FilterInputs = Map<
  ColumnType,
  InputObjectRef<PothosSchemaTypes.ExtendDefaultTypes<SchemaTypes>, FilterShape>
>;
export type WhereInput = InputObjectRef<PothosSchemaTypes.ExtendDefaultTypes<SchemaTypes>, Where>;

const FILTER_NAMES: Record<ColumnType, string> = {
  text: 'StringFilter',
  integer: 'IntFilter',
  bigint: 'BigIntFilter',
  numeric: 'DecimalFilter',
  double: 'FloatFilter',
  boolean: 'BooleanFilter',
  timestamptz: 'DateTimeFilter',
  jsonb: 'JSONFilter',
  'text[]': 'StringListFilter',
};

/** One filter input per column type, shared by every view: the operators the type offers. */
export function filterInputs(builder: Builder): FilterInputs {
  const inputs: FilterInputs = new Map();
  for (const [type, name] of Object.entries(FILTER_NAMES) as [ColumnType, string][]) {
    const scalar = SCALAR_OF[type];
    const ref = builder.inputRef<FilterShape>(name).implement({
      description: `Conditions on a ${type} column; all given conditions must hold.`,
      fields: (t) => {
        const fields: Record<string, ReturnType<typeof t.field>> = {
          isNull: t.boolean({ required: false }),
        };
        if (type === 'jsonb') {
          fields.eq = t.field({ type: 'JSON', required: false });
          fields.contains = t.field({ type: 'JSON', required: false, description: 'JSON containment (@>).' });
          return fields as Record<string, never>;
        }
        if (type === 'text[]') {
          fields.contains = t.field({ type: ['String'], required: false, description: 'Has all of these.' });
          return fields as Record<string, never>;
        }
        fields.eq = t.field({ type: scalar, required: false });
        fields.ne = t.field({ type: scalar, required: false });
        if (type === 'boolean') return fields as Record<string, never>;
        fields.in = t.field({ type: [scalar], required: false });
        fields.notIn = t.field({ type: [scalar], required: false });
        fields.lt = t.field({ type: scalar, required: false });
        fields.lte = t.field({ type: scalar, required: false });
        fields.gt = t.field({ type: scalar, required: false });
        fields.gte = t.field({ type: scalar, required: false });
        if (type === 'text') {
          fields.contains = t.string({ required: false, description: 'Substring, case-sensitive.' });
          fields.startsWith = t.string({ required: false });
        }
        return fields as Record<string, never>;
      },
    });
    inputs.set(type, ref);
  }
  return inputs;
}

/** `<View>Where`: a filter per column, combined with and/or/not. */
export function whereInput(builder: Builder, view: AnyView, type: string, filters: FilterInputs): WhereInput {
  const where = builder.inputRef<Where>(`${type}Where`);
  where.implement({
    description: `Filter on ${view.name}; fields combine with and.`,
    fields: (t) => ({
      ...Object.fromEntries(
        Object.entries(view.columns).map(([name, column]) => [
          name,
          t.field({ type: filters.get(column.type)!, required: false }),
        ]),
      ),
      and: t.field({ type: [where], required: false }),
      or: t.field({ type: [where], required: false }),
      not: t.field({ type: where, required: false }),
    }),
  });
  return where;
}
