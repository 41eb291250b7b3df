import type { GraphQLSchema } from 'graphql';
import { ConfigError } from '../../errors.js';
import type { AnyView } from '../anyView.js';
import { appendEventsField } from './appendEvents.js';
import { createBuilder } from './builder.js';
import { byKeyField } from './byKey.js';
import { changeOpEnum, changesField } from './changes.js';
import { connectionField, pageInfoType } from './connections.js';
import { fieldName, type SchemaOptions, typeName } from './context.js';
import { filterInputs, whereInput } from './filters.js';
import { orderByInput, sortDirection } from './ordering.js';
import { rowType } from './rows.js';
import { statusFields } from './status.js';

export { type ApiContext, fieldName, type SchemaOptions, typeName } from './context.js';

/**
 * The GraphQL schema for a set of views, generated from their definitions and composed of
 * single-purpose features: per view a row type, its filter and ordering inputs, a connection,
 * a by-key field and a change subscription; then status and appendEvents. The order of the
 * calls is the order types print in (the printSchema snapshot).
 */
export function buildSchema(options: SchemaOptions): GraphQLSchema {
  assertDistinctNames(options.views);
  const builder = createBuilder();
  const filters = filterInputs(builder);
  const direction = sortDirection(builder);
  const changeOp = changeOpEnum(builder);
  const pageInfo = pageInfoType(builder);
  builder.queryType({});
  // GraphQL forbids an empty Subscription type: without views there is nothing to subscribe to.
  if (options.views.length > 0) builder.subscriptionType({});
  builder.mutationType({});

  for (const view of options.views) {
    const names = { type: typeName(view.name), field: fieldName(view.name) };
    const row = rowType(builder, view, names.type);
    const where = whereInput(builder, view, names.type, filters);
    const orderBy = orderByInput(builder, view, names.type, direction);
    connectionField(builder, options, view, names, { row, where, orderBy, pageInfo });
    byKeyField(builder, options, view, names.field, row);
    changesField(builder, options, view, names, { row, where, changeOp });
  }
  statusFields(builder, options);
  appendEventsField(builder, options);
  return builder.toSchema({ sortSchema: false });
}

const RESERVED = new Set(['projections', 'sources', 'appendEvents']);

/** Two views whose GraphQL names clash (or clash with a built-in field) are a config error. */
function assertDistinctNames(views: readonly AnyView[]) {
  const seen = new Map<string, string>();
  for (const view of views) {
    for (const name of [
      fieldName(view.name),
      `${fieldName(view.name)}ByKey`,
      `${fieldName(view.name)}Changes`,
    ]) {
      const other = RESERVED.has(name) ? 'a built-in field' : seen.get(name);
      if (other !== undefined) {
        throw new ConfigError(
          `View '${view.name}' would be served as '${name}', which ${other === 'a built-in field' ? 'is a built-in field' : `view '${other}' already uses`}.`,
          {
            hint: 'Rename one of the views.',
          },
        );
      }
      seen.set(name, view.name);
    }
    if (seen.has(`type:${typeName(view.name)}`)) {
      throw new ConfigError(
        `Views '${view.name}' and '${seen.get(`type:${typeName(view.name)}`)}' would share the GraphQL type '${typeName(view.name)}'.`,
        { hint: 'Rename one of the views.' },
      );
    }
    seen.set(`type:${typeName(view.name)}`, view.name);
  }
}
