import SchemaBuilder, { type InputObjectRef } from '@pothos/core';
import type { GraphQLSchema } from 'graphql';
import type { Pool } from '../db/index.js';
import { ConfigError, isTributaryError, type TributaryError } from '../errors.js';
import type { EventInput, EventStore, ExpectedVersion, JsonObject } from '../ingest/index.js';
import { type ChangeTailer, type ColumnType, waitForProjections } from '../projections/index.js';
import type { AnyView } from './anyView.js';
import { type Identity, requireScope } from './auth.js';
import type { Where } from './filter.js';
import { countRows, type OrderBy, type PageArgs, queryByKey, queryPage } from './queryView.js';
import { bigIntScalar, dateTimeScalar, decimalScalar, expectedVersionScalar, jsonScalar } from './scalars.js';
import type { StatusProvider } from './status.js';
import { type ChangeMessage, subscribeChanges } from './subscribeChanges.js';

export interface ApiContext {
  identity: Identity;
  /** The request's `x-request-id`, or one made up; logs about the request carry it. */
  requestId: string;
  /** Aborted when the request or the subscription ends. */
  signal?: AbortSignal;
}

export interface SchemaOptions {
  views: readonly AnyView[];
  viewSchema: string;
  pool: Pool;
  tailer: ChangeTailer;
  store: Pick<EventStore, 'append'>;
  status: StatusProvider;
  /** Projections whose checkpoints a read-your-writes query on `view` waits for. @default every projection */
  projectionsOf?: (view: string) => readonly string[] | undefined;
  defaultPageSize: number;
  maxPageSize: number;
  subscriptionBuffer: number;
  readYourWritesTimeoutMs: number;
  /** Called when a view subscription starts; the returned function when it ends. */
  onSubscription?: (view: string) => () => void;
}

type Row = Record<string, unknown>;
// biome-ignore lint/complexity/noBannedTypes: any non-undefined JSON value
type JsonInput = {} | null;
type FilterShape = Record<string, JsonInput | undefined>;
type Types = {
  Context: ApiContext;
  Scalars: {
    BigInt: { Input: string; Output: unknown };
    Decimal: { Input: string; Output: unknown };
    DateTime: { Input: string; Output: unknown };
    JSON: { Input: JsonInput; Output: unknown };
    ExpectedVersion: { Input: ExpectedVersion; Output: unknown };
  };
  DefaultFieldNullability: false;
};

/** `order_lines` → `OrderLines`; `order_lines` → `orderLines`. */
export const typeName = (name: string) =>
  name
    .split('_')
    .filter(Boolean)
    .map((part) => part[0]!.toUpperCase() + part.slice(1))
    .join('');
export const fieldName = (name: string) => {
  const type = typeName(name);
  return type[0]!.toLowerCase() + type.slice(1);
};

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

/** The GraphQL schema for a set of views: generated from their definitions. */
export function buildSchema(options: SchemaOptions): GraphQLSchema {
  const builder = new SchemaBuilder<Types>({ defaultFieldNullability: false });
  builder.scalarType('BigInt', bigIntScalar);
  builder.scalarType('Decimal', decimalScalar);
  builder.scalarType('DateTime', dateTimeScalar);
  builder.scalarType('JSON', {
    ...jsonScalar,
    parseValue: (value) => value as JsonInput,
    parseLiteral: (node) => jsonScalar.parseLiteral(node) as JsonInput,
  });
  builder.scalarType('ExpectedVersion', expectedVersionScalar);

  const scalarOf: Record<
    ColumnType,
    'String' | 'Int' | 'BigInt' | 'Decimal' | 'Float' | 'Boolean' | 'DateTime' | 'JSON'
  > = {
    text: 'String',
    integer: 'Int',
    bigint: 'BigInt',
    numeric: 'Decimal',
    double: 'Float',
    boolean: 'Boolean',
    timestamptz: 'DateTime',
    jsonb: 'JSON',
    'text[]': 'String',
  };

  // One filter input per column type, shared by every view.
  const filterOf = new Map<
    ColumnType,
    InputObjectRef<PothosSchemaTypes.ExtendDefaultTypes<Types>, FilterShape>
  >();
  const filterNames: Record<ColumnType, string> = {
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
  for (const [type, name] of Object.entries(filterNames) as [ColumnType, string][]) {
    const scalar = scalarOf[type];
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
    filterOf.set(type, ref);
  }

  const direction = builder.enumType('SortDirection', {
    description: 'Ascending sorts nulls last, descending sorts them first.',
    values: ['ASC', 'DESC'] as const,
  });
  const changeOp = builder.enumType('ChangeOp', {
    values: {
      UPSERT: { value: 'upsert', description: 'The row was inserted or replaced.' },
      DELETE: { value: 'delete', description: 'The row was deleted; `previous` holds it.' },
      RESET: { value: 'reset', description: 'The view was emptied (rebuild); re-query it.' },
    } as const,
  });

  const pageInfo = builder
    .objectRef<{
      hasNextPage: boolean;
      hasPreviousPage: boolean;
      startCursor: string | null;
      endCursor: string | null;
    }>('PageInfo')
    .implement({
      fields: (t) => ({
        hasNextPage: t.exposeBoolean('hasNextPage'),
        hasPreviousPage: t.exposeBoolean('hasPreviousPage'),
        startCursor: t.exposeString('startCursor', { nullable: true }),
        endCursor: t.exposeString('endCursor', { nullable: true }),
      }),
    });

  const consistency = async (view: string, minPosition: string | null | undefined, context: ApiContext) => {
    if (!minPosition) return;
    await waitForProjections(
      options.pool,
      options.projectionsOf?.(view),
      minPosition,
      options.readYourWritesTimeoutMs,
      context.signal,
    );
  };

  assertDistinctNames(options.views);
  builder.queryType({});
  // GraphQL forbids an empty Subscription type: without views there is nothing to subscribe to.
  if (options.views.length > 0) builder.subscriptionType({});
  builder.mutationType({});

  for (const view of options.views) {
    const type = typeName(view.name);
    const field = fieldName(view.name);
    const columns = Object.entries(view.columns);
    const rowRef = builder.objectRef<Row>(type).implement({
      description: view.description ?? `A row of the view '${view.name}'.`,
      fields: (t) =>
        Object.fromEntries(
          columns.map(([name, column]) => {
            const nullable = column.nullable !== false && !view.primaryKey.includes(name);
            const scalar = scalarOf[column.type];
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

    const whereRef = builder.inputRef<Where>(`${type}Where`);
    whereRef.implement({
      description: `Filter on ${view.name}; fields combine with and.`,
      fields: (t) => ({
        ...Object.fromEntries(
          columns.map(([name, column]) => [
            name,
            t.field({ type: filterOf.get(column.type)!, required: false }),
          ]),
        ),
        and: t.field({ type: [whereRef], required: false }),
        or: t.field({ type: [whereRef], required: false }),
        not: t.field({ type: whereRef, required: false }),
      }),
    });

    const orderable = columns.filter(([, c]) => !['jsonb', 'text[]'].includes(c.type)).map(([name]) => name);
    const fieldEnum = builder.enumType(`${type}Field`, { values: orderable as [string, ...string[]] });
    const orderRef = builder.inputRef<OrderBy>(`${type}OrderBy`).implement({
      fields: (t) => ({
        field: t.field({ type: fieldEnum, required: true }),
        direction: t.field({ type: direction, required: false, defaultValue: 'ASC' }),
      }),
    });

    interface Connection {
      page: Awaited<ReturnType<typeof queryPage>>;
      where: Where | null | undefined;
    }
    const edgeRef = builder.objectRef<{ cursor: string; node: Row }>(`${type}Edge`).implement({
      fields: (t) => ({
        cursor: t.exposeString('cursor'),
        node: t.field({ type: rowRef, resolve: (edge) => edge.node }),
      }),
    });
    const connectionRef = builder.objectRef<Connection>(`${type}Connection`).implement({
      fields: (t) => ({
        edges: t.field({ type: [edgeRef], resolve: (c) => c.page.edges }),
        nodes: t.field({ type: [rowRef], resolve: (c) => c.page.edges.map((edge) => edge.node) }),
        pageInfo: t.field({ type: pageInfo, resolve: (c) => c.page.pageInfo }),
        totalCount: t.int({
          description: 'Rows matching `where` (a separate count query: ask only when needed).',
          resolve: (c) => countRows(options.pool, options.viewSchema, view, c.where),
        }),
      }),
    });

    const changeRef = builder.objectRef<ChangeMessage>(`${type}Change`).implement({
      fields: (t) => ({
        op: t.field({ type: changeOp, resolve: (m) => m.op }),
        cursor: t.exposeString('cursor', {
          description: 'Pass as `after` to resume right after this change.',
        }),
        key: t.field({ type: 'JSON', resolve: (m) => m.key }),
        row: t.field({ type: rowRef, nullable: true, resolve: (m) => m.row }),
        previous: t.field({ type: rowRef, nullable: true, resolve: (m) => m.previous }),
        initial: t.boolean({
          description: 'A current row sent before the changes (initialRows: true).',
          resolve: (m) => m.initial,
        }),
      }),
    });

    builder.queryField(field, (t) =>
      t.field({
        type: connectionRef,
        description: view.description ?? `Rows of the view '${view.name}'.`,
        args: {
          where: t.arg({ type: whereRef, required: false }),
          orderBy: t.arg({ type: [orderRef], required: false }),
          first: t.arg.int({ required: false }),
          after: t.arg.string({ required: false }),
          last: t.arg.int({ required: false }),
          before: t.arg.string({ required: false }),
          minPosition: t.arg.string({
            required: false,
            description: 'Answer only once the projections behind this view have passed this log position.',
          }),
        },
        resolve: async (_root, args, context) => {
          requireScope(context.identity, 'read');
          await consistency(view.name, args.minPosition, context);
          const page = await queryPage(options.pool, options.viewSchema, view, args as PageArgs, {
            defaultPageSize: options.defaultPageSize,
            maxPageSize: options.maxPageSize,
          });
          return { page, where: args.where };
        },
      }),
    );

    builder.queryField(`${field}ByKey`, (t) =>
      t.field({
        type: rowRef,
        nullable: true,
        args: {
          ...Object.fromEntries(
            view.primaryKey.map((name) => {
              const scalar = scalarOf[view.columns[name]!.type];
              return [name, t.arg({ type: scalar as 'String', required: true })];
            }),
          ),
          minPosition: t.arg.string({ required: false }),
        },
        resolve: async (_root, args, context) => {
          requireScope(context.identity, 'read');
          await consistency(view.name, args.minPosition as string | undefined, context);
          return queryByKey(options.pool, options.viewSchema, view, args as Record<string, unknown>);
        },
      }),
    );

    builder.subscriptionField(`${field}Changes`, (t) =>
      t.field({
        type: changeRef,
        description: `Changes to '${view.name}': every change after \`after\` from the changelog, then live ones.`,
        args: {
          where: t.arg({ type: whereRef, required: false }),
          after: t.arg.string({
            required: false,
            description: 'Resume after this cursor. Absent: start now.',
          }),
          initialRows: t.arg.boolean({
            required: false,
            defaultValue: false,
            description: 'Send the current rows first (initial: true), then the changes after them.',
          }),
        },
        subscribe: (_root, args, context) => {
          requireScope(context.identity, 'read');
          const abort = new AbortController();
          context.signal?.addEventListener('abort', () => abort.abort(), { once: true });
          return guard(
            subscribeChanges({
              pool: options.pool,
              tailer: options.tailer,
              schema: options.viewSchema,
              view,
              where: args.where,
              after: args.after,
              initialRows: args.initialRows ?? false,
              maxBuffer: options.subscriptionBuffer,
              signal: abort.signal,
            }),
            abort,
            options.onSubscription?.(view.name),
          );
        },
        resolve: (message) => {
          if ('error' in message) throw message.error;
          return message;
        },
      }),
    );
  }

  const projectionStatus = builder
    .objectRef<Awaited<ReturnType<StatusProvider['projections']>>[number]>('ProjectionStatus')
    .implement({
      fields: (t) => ({
        name: t.exposeString('name'),
        state: t.exposeString('state', { description: 'running, failed or unregistered.' }),
        version: t.exposeInt('version', { nullable: true, description: 'Version the live views hold.' }),
        configuredVersion: t.exposeInt('configuredVersion', { nullable: true }),
        position: t.exposeString('position', { description: 'Log position after the last applied event.' }),
        lagEvents: t.exposeInt('lagEvents'),
        lagSeconds: t.exposeFloat('lagSeconds'),
        eventsPerSecond: t.exposeFloat('eventsPerSecond'),
        eventsProcessed: t.exposeInt('eventsProcessed'),
        deadLetters: t.exposeInt('deadLetters'),
        leaseOwner: t.exposeString('leaseOwner', { nullable: true }),
        lastError: t.field({
          type: 'JSON',
          nullable: true,
          description:
            'The last failure: its message, code and the event it stopped at (stacks stay in the server log).',
          resolve: (p) => publicError(p.lastError),
        }),
        rebuild: t.field({ type: 'JSON', nullable: true, resolve: (p) => p.rebuild ?? null }),
        updatedAt: t.field({ type: 'DateTime', nullable: true, resolve: (p) => p.updatedAt ?? null }),
      }),
    });
  const sourceStatus = builder
    .objectRef<Awaited<ReturnType<StatusProvider['sources']>>[number]>('SourceStatus')
    .implement({
      fields: (t) => ({
        source: t.exposeString('source'),
        slot: t.exposeString('slot'),
        streamId: t.exposeString('streamId', { description: 'Log stream the captured changes go to.' }),
        state: t.exposeString('state'),
        transactions: t.exposeInt('transactions'),
        lagBytes: t.field({
          type: 'BigInt',
          nullable: true,
          resolve: (s) => (s.lagBytes === null ? null : String(s.lagBytes)),
        }),
        lagSeconds: t.exposeFloat('lagSeconds', { nullable: true }),
        checkpointTime: t.field({ type: 'DateTime', nullable: true, resolve: (s) => s.checkpointTime }),
        lastError: t.exposeString('lastError', { nullable: true }),
        updatedAt: t.field({ type: 'DateTime', nullable: true, resolve: (s) => s.updatedAt }),
      }),
    });
  builder.queryField('projections', (t) =>
    t.field({
      type: [projectionStatus],
      description: 'Checkpoint, state and lag of every projection.',
      resolve: (_root, _args, context) => {
        requireScope(context.identity, 'read');
        return options.status.projections();
      },
    }),
  );
  builder.queryField('sources', (t) =>
    t.field({
      type: [sourceStatus],
      description: 'State and lag of every change data capture source.',
      resolve: (_root, _args, context) => {
        requireScope(context.identity, 'read');
        return options.status.sources();
      },
    }),
  );

  const eventInput = builder.inputRef<{
    type: string;
    data: unknown;
    metadata?: unknown;
    id?: string | null;
    eventTime?: string | null;
  }>('EventInput');
  eventInput.implement({
    fields: (t) => ({
      type: t.string({ required: true }),
      data: t.field({ type: 'JSON', required: true }),
      metadata: t.field({ type: 'JSON', required: false }),
      id: t.string({ required: false, description: 'Idempotency key, unique in the stream.' }),
      eventTime: t.field({ type: 'DateTime', required: false }),
    }),
  });
  const appendResult = builder
    .objectRef<{ position: string; nextExpectedVersion: number; appended: boolean }>('AppendResult')
    .implement({
      fields: (t) => ({
        position: t.exposeString('position', {
          description: 'Log position of the last event; pass it as minPosition to read your writes.',
        }),
        nextExpectedVersion: t.exposeInt('nextExpectedVersion'),
        appended: t.exposeBoolean('appended', {
          description: 'False when every event id was already in the stream (an idempotent retry).',
        }),
      }),
    });
  builder.mutationField('appendEvents', (t) =>
    t.field({
      type: appendResult,
      args: {
        streamId: t.arg.string({ required: true }),
        expectedVersion: t.arg({ type: 'ExpectedVersion', required: false, defaultValue: 'any' }),
        events: t.arg({ type: [eventInput], required: true }),
      },
      resolve: (_root, args, context) => {
        requireScope(context.identity, 'append');
        const events: EventInput[] = args.events.map((event) => ({
          type: event.type,
          data: event.data as JsonObject,
          ...(event.metadata != null ? { metadata: event.metadata as JsonObject } : {}),
          ...(event.id != null ? { id: event.id } : {}),
          ...(event.eventTime != null ? { eventTime: event.eventTime } : {}),
        }));
        return options.store.append(args.streamId, events, {
          expectedVersion: args.expectedVersion ?? 'any',
        });
      },
    }),
  );

  return builder.toSchema({ sortSchema: false });
}

/**
 * Wraps a change stream for GraphQL: a typed failure (overflow, expired cursor, bad cursor)
 * becomes a last message whose resolver throws it, so the client gets the error with its code
 * and `lastCursor`, then the end of the stream. Ending the subscription aborts the stream at
 * once, even while it waits for the next change. (Both transports wait for a message to be
 * written before taking the next, so a client that stops reading fills the stream's bounded
 * buffer, which ends it with SUBSCRIPTION_OVERFLOW.)
 */
function guard(
  source: AsyncGenerator<ChangeMessage>,
  abort: AbortController,
  done: (() => void) | undefined,
): AsyncIterableIterator<ChangeMessage | { error: TributaryError }> {
  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    abort.abort();
    done?.();
    source.return(undefined).catch(() => {});
  };
  const iterator: AsyncIterableIterator<ChangeMessage | { error: TributaryError }> = {
    async next() {
      if (finished) return { done: true, value: undefined };
      try {
        const result = await source.next();
        if (result.done) finish();
        return result;
      } catch (error) {
        finish();
        if (isTributaryError(error)) return { done: false, value: { error } };
        throw error;
      }
    },
    async return() {
      finish();
      return { done: true, value: undefined };
    },
    async throw(error: unknown) {
      finish();
      throw error;
    },
    [Symbol.asyncIterator]: () => iterator,
  };
  return iterator;
}

/** The facts of a recorded failure a caller may see: never its stack or cause. */
function publicError(error: unknown): Record<string, unknown> | null {
  if (error === null || typeof error !== 'object') return null;
  const shown: Record<string, unknown> = {};
  for (const fact of [
    'message',
    'code',
    'name',
    'at',
    'position',
    'eventId',
    'eventType',
    'streamId',
    'attempts',
  ]) {
    const value = (error as Record<string, unknown>)[fact];
    if (value !== undefined) shown[fact] = value;
  }
  return shown;
}
