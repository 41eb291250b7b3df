import type { ObjectRef } from '@pothos/core';
import type { AnyView } from '../anyView.js';
import type { Where } from '../filter.js';
import { countRows, type Page, type PageArgs, queryPage } from '../queryView.js';
import type { Builder, Row, SchemaTypes } from './builder.js';
import { type SchemaOptions, scoped } from './context.js';
import type { WhereInput } from './filters.js';
import type { OrderByInput } from './ordering.js';
import { MIN_POSITION_DESCRIPTION, readYourWrites } from './readYourWrites.js';
import type { RowType } from './rows.js';

export type PageInfoType = ObjectRef<PothosSchemaTypes.ExtendDefaultTypes<SchemaTypes>, Page['pageInfo']>;

export function pageInfoType(builder: Builder): PageInfoType {
  return builder.objectRef<Page['pageInfo']>('PageInfo').implement({
    fields: (t) => ({
      hasNextPage: t.exposeBoolean('hasNextPage'),
      hasPreviousPage: t.exposeBoolean('hasPreviousPage'),
      startCursor: t.exposeString('startCursor', { nullable: true }),
      endCursor: t.exposeString('endCursor', { nullable: true }),
    }),
  });
}

/** `<view>(where, orderBy, first/after, last/before, minPosition)`: a Relay connection, keyset-paginated. */
export function connectionField(
  builder: Builder,
  options: SchemaOptions,
  view: AnyView,
  names: { type: string; field: string },
  types: { row: RowType; where: WhereInput; orderBy: OrderByInput; pageInfo: PageInfoType },
): void {
  interface Connection {
    page: Page;
    where: Where | null | undefined;
  }
  const edge = builder.objectRef<{ cursor: string; node: Row }>(`${names.type}Edge`).implement({
    fields: (t) => ({
      cursor: t.exposeString('cursor'),
      node: t.field({ type: types.row, resolve: (e) => e.node }),
    }),
  });
  const connection = builder.objectRef<Connection>(`${names.type}Connection`).implement({
    fields: (t) => ({
      edges: t.field({ type: [edge], resolve: (c) => c.page.edges }),
      nodes: t.field({ type: [types.row], resolve: (c) => c.page.edges.map((e) => e.node) }),
      pageInfo: t.field({ type: types.pageInfo, resolve: (c) => c.page.pageInfo }),
      totalCount: t.int({
        description: 'Rows matching `where` (a separate count query: ask only when needed).',
        resolve: (c) => countRows(options.pool, options.viewSchema, view, c.where),
      }),
    }),
  });
  builder.queryField(names.field, (t) =>
    t.field({
      type: connection,
      description: view.description ?? `Rows of the view '${view.name}'.`,
      args: {
        where: t.arg({ type: types.where, required: false }),
        orderBy: t.arg({ type: [types.orderBy], required: false }),
        first: t.arg.int({ required: false }),
        after: t.arg.string({ required: false }),
        last: t.arg.int({ required: false }),
        before: t.arg.string({ required: false }),
        minPosition: t.arg.string({ required: false, description: MIN_POSITION_DESCRIPTION }),
      },
      resolve: scoped('read', async (_root, args, context) => {
        await readYourWrites(options, view.name, args.minPosition, context);
        const page = await queryPage(options.pool, options.viewSchema, view, args as PageArgs, {
          defaultPageSize: options.defaultPageSize,
          maxPageSize: options.maxPageSize,
        });
        return { page, where: args.where };
      }),
    }),
  );
}
