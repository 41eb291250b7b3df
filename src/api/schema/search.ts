import type { ObjectRef } from '@pothos/core';
import { TributaryError, ValidationError } from '../../errors.js';
import { isPosition } from '../../ingest/index.js';
import { type SearchHit, type SearchPage, searchPostgres, waitForSink } from '../../projections/index.js';
import type { AnyView } from '../anyView.js';
import { compileWhere, type Where } from '../filter.js';
import type { SearchSource } from '../searchSources.js';
import type { Builder, SchemaTypes } from './builder.js';
import type { PageInfoType } from './connections.js';
import { type SchemaOptions, scoped } from './context.js';
import type { WhereInput } from './filters.js';
import type { RowType } from './rows.js';

export const SEARCH_NOT_READY = 'SEARCH_NOT_READY';

type HighlightType = ObjectRef<
  PothosSchemaTypes.ExtendDefaultTypes<SchemaTypes>,
  { field: string; snippet: string }
>;

/** `SearchHighlight`: the matched words of one field, shared by every search field. */
export function searchHighlightType(builder: Builder): HighlightType {
  return builder.objectRef<{ field: string; snippet: string }>('SearchHighlight').implement({
    description: 'Where the query matched one field: HTML-escaped text with <mark> around the matched words.',
    fields: (t) => ({
      field: t.exposeString('field'),
      snippet: t.exposeString('snippet'),
    }),
  });
}

/**
 * `search<View>(query, first, after, where)`: ranked full-text hits from the view's
 * PostgreSQL search index, keyset-paginated like the other connections, under the same
 * limits and the `read` scope. The nodes are rows of the view, in canonical form.
 */
export function searchField(
  builder: Builder,
  options: SchemaOptions,
  view: AnyView,
  source: SearchSource,
  names: { type: string; field: string },
  types: { row: RowType; where: WhereInput; pageInfo: PageInfoType; highlight: HighlightType },
): void {
  const edge = builder.objectRef<SearchHit>(`${names.type}SearchEdge`).implement({
    fields: (t) => ({
      cursor: t.exposeString('cursor'),
      score: t.exposeFloat('score', { description: 'Relevance; hits come best first.' }),
      highlights: t.field({ type: [types.highlight], resolve: (hit) => hit.highlights }),
      node: t.field({ type: types.row, resolve: (hit) => hit.node }),
    }),
  });
  const connection = builder.objectRef<SearchPage>(`${names.type}SearchConnection`).implement({
    fields: (t) => ({
      edges: t.field({ type: [edge], resolve: (page) => page.hits }),
      nodes: t.field({ type: [types.row], resolve: (page) => page.hits.map((hit) => hit.node) }),
      pageInfo: t.field({
        type: types.pageInfo,
        resolve: (page) => ({
          hasNextPage: page.hasNextPage,
          hasPreviousPage: false,
          startCursor: page.hits[0]?.cursor ?? null,
          endCursor: page.endCursor,
        }),
      }),
      totalCount: t.int({
        description: 'Hits in all (a separate count query: ask only when needed).',
        resolve: (page) => page.count(),
      }),
    }),
  });
  const field = `search${names.type}`;
  builder.queryField(field, (t) =>
    t.field({
      type: connection,
      description: `Full-text search over '${view.name}' (sink '${source.sink.name}'): websearch syntax ("quoted phrases", or, -excluded), the last word also as a prefix${source.sink.fuzzy ? ', misspelt plain words through trigrams where pg_trgm is installed' : ''}. Best hits first.`,
      args: {
        query: t.arg.string({ required: true }),
        first: t.arg.int({ required: false }),
        after: t.arg.string({ required: false }),
        where: t.arg({ type: types.where, required: false }),
        minPosition: t.arg.string({
          required: false,
          description:
            'Answer only once the projections behind this view have passed this log position and the search index holds what they wrote by then.',
        }),
      },
      resolve: scoped('read', async (_root, args, context) => {
        const first = args.first ?? options.defaultPageSize;
        if (!Number.isInteger(first) || first < 0 || first > options.maxPageSize) {
          throw new ValidationError(`Page size must be between 0 and ${options.maxPageSize}, got ${first}.`, {
            field: 'first',
          });
        }
        const where = args.where as Where | null | undefined;
        const { rows } = await source.pool.query<{ ready: boolean }>(
          'select to_regclass($1) is not null as ready',
          [`"${source.schema}"."${source.sink.alias}"`],
        );
        if (!rows[0]?.ready) {
          throw new TributaryError(
            SEARCH_NOT_READY,
            `The search index of '${view.name}' is still being built.`,
            {
              hint: 'Try again shortly; `tributary sinks status` shows its progress.',
            },
          );
        }
        if (args.minPosition) {
          if (!isPosition(args.minPosition)) {
            throw new ValidationError(`'${args.minPosition.slice(0, 80)}' is not a Tributary log position.`, {
              field: 'minPosition',
              hint: 'Pass the position an append returned (appendEvents.position) unchanged.',
            });
          }
          await waitForSink(
            options.pool,
            source.sink,
            options.projectionsOf?.(view.name),
            args.minPosition,
            options.readYourWritesTimeoutMs,
            context.signal,
          );
        }
        return searchPostgres(
          source.pool,
          {
            view,
            schema: source.schema,
            alias: source.sink.alias,
            fields: source.sink.fields,
            language: source.sink.language,
            trigram: await source.trigram(),
          },
          {
            query: args.query,
            first,
            after: args.after,
            ...(where ? { where: (params: unknown[]) => compileWhere(view, where, params) } : {}),
          },
        );
      }),
    }),
  );
}
