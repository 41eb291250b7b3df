import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type DocumentNode,
  type ExecutionArgs,
  GraphQLError,
  type GraphQLSchema,
  Kind,
  NoSchemaIntrospectionCustomRule,
  parse,
  type TypeNode,
  validate,
} from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { createYoga, type Plugin, type YogaServerInstance } from 'graphql-yoga';
import { type WebSocket, WebSocketServer } from 'ws';
import { createPool, type Pool } from '../db/index.js';
import { ConcurrencyError, isTributaryError, ValidationError } from '../errors.js';
import {
  type CdcSourcesConfig,
  cdcStatus,
  createPostgresEventStore,
  type EventStore,
  type LimitOptions,
} from '../ingest/index.js';
import { type Logger, silentLogger } from '../logger.js';
import {
  type ChangeTailer,
  createChangeTailer,
  DEFAULT_VIEW_SCHEMA,
  getProjectionStatuses,
  type Projection,
  projectionOfView,
  pruneChanges,
} from '../projections/index.js';
import type { AnyView } from './anyView.js';
import type { ApiConfig } from './apiConfig.js';
import { type Authenticator, createAuthenticator, type Identity } from './auth.js';
import { type ApiContext, buildSchema } from './buildSchema.js';
import { assertWhereSize } from './filter.js';
import { createLimitedServer, credentialsOf, readBody, refuse } from './httpGuards.js';
import { type ApiMetrics, createApiMetrics } from './metrics.js';
import { checkFieldMerges, checkQueryLimits, type QueryLimits, validationRules } from './queryLimits.js';
import type { StatusProvider } from './status.js';

export interface CreateApiOptions {
  connectionString: string;
  /** Use this pool (not closed by `close()`). */
  pool?: Pool;
  /** The projections behind the views: status, read-your-writes and (by default) the views served. */
  projections?: readonly Projection[];
  /** Views served. @default every view of `projections` */
  views?: readonly AnyView[];
  config?: ApiConfig;
  /** Where appendEvents writes. @default the PostgreSQL log of `connectionString` */
  store?: Pick<EventStore, 'append'>;
  /** Limits of appended events (`log` of tributary.config.ts), enforced on `appendEvents`. */
  log?: LimitOptions;
  /** CDC sources (`sources` of tributary.config.ts), for the `sources` field and the CDC lag metrics. */
  sources?: CdcSourcesConfig;
  /** @default projections from their checkpoints, sources from the CDC status */
  status?: Partial<StatusProvider>;
  /** What GraphiQL shows in its editor when it opens. */
  graphiqlDefaultQuery?: string;
  /** Production defaults: no GraphiQL, no introspection. @default NODE_ENV === 'production' */
  production?: boolean;
  logger?: Logger;
}

export interface Api {
  yoga: YogaServerInstance<Record<string, unknown>, ApiContext>;
  schema: GraphQLSchema;
  metrics: ApiMetrics;
  tailer: ChangeTailer;
  /** Node request handler (HTTP and SSE); WebSockets need `listen` or `attach`. */
  handle(req: IncomingMessage, res: ServerResponse): void;
  /** Serves GraphQL over HTTP, SSE and graphql-ws on one port. */
  listen(port?: number, host?: string): Promise<{ server: Server; url: string; port: number }>;
  close(): Promise<void>;
}

/** The GraphQL API over a set of views: Yoga for HTTP and SSE, graphql-ws on the same path. */
export async function createApi(options: CreateApiOptions): Promise<Api> {
  const config = options.config ?? {};
  const logger = options.logger ?? silentLogger;
  const limits = config.limits ?? {};
  const production = options.production ?? process.env.NODE_ENV === 'production';
  const path = config.path ?? '/graphql';
  const ownsPool = options.pool === undefined;
  const pool =
    options.pool ?? createPool(options.connectionString, { applicationName: 'tributary-api', logger });
  const ownedStore = options.store
    ? undefined
    : createPostgresEventStore({ connectionString: options.connectionString, pool, logger, ...options.log });
  const store = options.store ?? ownedStore!;
  const projections = options.projections ?? [];
  const views = options.views ?? projections.flatMap((projection) => projection.views);
  const status: StatusProvider = {
    projections: options.status?.projections ?? (() => getProjectionStatuses(pool, projections)),
    sources:
      options.status?.sources ??
      (async () => (options.sources ? cdcStatus({ sources: options.sources, db: pool }) : [])),
  };
  const authenticate: Authenticator = await createAuthenticator(config.auth);
  const tailer = createChangeTailer({
    pool,
    connectionString: options.connectionString,
    pollIntervalMs: config.pollIntervalMs ?? 1000,
    logger,
  });
  const metrics = createApiMetrics(status, () => ({ tributary_api_changelog_listeners: tailer.listeners }));
  const defaultPageSize = limits.defaultPageSize ?? 50;
  const schema = buildSchema({
    views,
    viewSchema: config.viewSchema ?? DEFAULT_VIEW_SCHEMA,
    pool,
    tailer,
    store,
    status,
    projectionsOf: (view) => {
      const projection = projectionOfView(projections, view);
      return projection ? [projection.name] : undefined;
    },
    defaultPageSize,
    maxPageSize: limits.maxPageSize ?? 1000,
    subscriptionBuffer: limits.subscriptionBuffer ?? 10_000,
    readYourWritesTimeoutMs: limits.readYourWritesTimeoutMs ?? 5000,
    onSubscription: (view) => metrics.subscriptionStarted(view),
  });
  const introspection = config.introspection ?? !production;
  const graphiql = config.graphiql ?? !production;
  const rules = [...validationRules(schema), ...(introspection ? [] : [NoSchemaIntrospectionCustomRule])];
  const queryLimits: QueryLimits = {
    maxDepth: limits.maxDepth ?? 12,
    maxAliases: limits.maxAliases ?? 30,
    maxComplexity: limits.maxComplexity ?? 50_000,
    maxFields: limits.maxFields ?? 2000,
    defaultPageSize,
    introspection,
  };
  const maxBodyBytes = limits.maxBodyBytes ?? 1_000_000;
  const maxTokens = limits.maxTokens ?? 5000;

  const ready = async () => {
    await tailer.ready;
    await pool.query('select 1');
  };

  const publicEndpoints = new Set(config.publicEndpoints ?? ['healthz', 'readyz']);
  /** Whether a request may read an operational endpoint: public, or a credential with the metrics scope. */
  const mayRead = async (endpoint: 'healthz' | 'readyz' | 'metrics', request: Request) => {
    if (publicEndpoints.has(endpoint)) return true;
    const principal = (await authenticate(credentialsOf(request.headers))).principal;
    return principal !== null && (principal.scopes.has('metrics') || principal.scopes.has('admin'));
  };
  const endpoints: Plugin = {
    async onRequest({ request, url, endResponse, fetchAPI }) {
      const endpoint = OPERATIONAL_ENDPOINTS.get(url.pathname);
      if (endpoint && !(await mayRead(endpoint, request))) {
        endResponse(
          fetchAPI.Response.json(
            {
              errors: [
                {
                  message: `${url.pathname} needs a credential with the metrics scope.`,
                  extensions: { code: 'UNAUTHENTICATED' },
                },
              ],
            },
            { status: 401, headers: { 'www-authenticate': 'Bearer' } },
          ),
        );
      } else if (url.pathname === '/healthz') {
        endResponse(new fetchAPI.Response('ok\n', { status: 200 }));
      } else if (url.pathname === '/readyz') {
        const ok = await ready().then(
          () => true,
          () => false,
        );
        endResponse(new fetchAPI.Response(ok ? 'ready\n' : 'not ready\n', { status: ok ? 200 : 503 }));
      } else if (url.pathname === '/metrics') {
        endResponse(
          new fetchAPI.Response(await metrics.render(), {
            headers: { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' },
          }),
        );
      } else if (Number(request.headers.get('content-length') ?? 0) > maxBodyBytes) {
        endResponse(
          fetchAPI.Response.json(
            {
              errors: [
                {
                  message: `Request body exceeds ${maxBodyBytes} bytes.`,
                  extensions: { code: 'PAYLOAD_TOO_LARGE' },
                },
              ],
            },
            { status: 413 },
          ),
        );
      }
    },
  };
  const maxVariablesDepth = limits.maxVariablesDepth ?? 64;
  const maxEventsPerAppend = options.log?.maxEventsPerAppend ?? 10_000;
  const oversizedVariables = (
    document: DocumentNode,
    variables: Record<string, unknown> | null | undefined,
  ): GraphQLError | undefined => {
    if (!variables) return undefined;
    for (const definition of document.definitions) {
      if (definition.kind !== Kind.OPERATION_DEFINITION) continue;
      for (const variable of definition.variableDefinitions ?? []) {
        const value = variables[variable.variable.name.value];
        const type = namedType(variable.type);
        try {
          if (type.endsWith('Where')) assertWhereSize(value);
          else if (type === 'EventInput' && Array.isArray(value) && value.length > maxEventsPerAppend) {
            throw new ValidationError(
              `An append may carry at most ${maxEventsPerAppend} events; got ${value.length}.`,
              { field: 'events', hint: 'Split it into several appends.' },
            );
          }
        } catch (error) {
          if (!(error instanceof ValidationError)) throw error;
          return new GraphQLError(error.message, {
            extensions: { code: error.code, ...(error.field ? { field: error.field } : {}) },
          });
        }
      }
    }
    return undefined;
  };
  const guards: Plugin = {
    onParams({ params, setResult }) {
      if (jsonDepth(params.variables, maxVariablesDepth) > maxVariablesDepth) {
        setResult({
          errors: [
            new GraphQLError(`Variables nest deeper than ${maxVariablesDepth} levels.`, {
              extensions: { code: 'VALIDATION_FAILED', limit: 'maxVariablesDepth' },
            }),
          ],
        });
      }
    },
    // Before GraphQL coerces variables (which costs far more than counting them).
    onExecute({ args, setResultAndStopExecution }) {
      const refused = oversizedVariables(args.document, args.variableValues);
      if (refused) setResultAndStopExecution({ errors: [refused] });
    },
    onSubscribe({ args, setResultAndStopExecution }) {
      const refused = oversizedVariables(args.document, args.variableValues);
      if (refused) setResultAndStopExecution({ errors: [refused] });
    },
    onParse({ setParseFn }) {
      setParseFn((source, parseOptions) => parse(source, { ...parseOptions, maxTokens }));
    },
    onValidate({ params, setResult, setValidationFn }) {
      // Measured first, in linear time: GraphQL's own rules only see documents within the limits.
      const refused = checkQueryLimits(params.documentAST, queryLimits);
      const conflicts = refused.length > 0 ? refused : checkFieldMerges(params.documentAST);
      if (conflicts.length > 0) {
        setResult(conflicts);
        return;
      }
      setValidationFn((served, document, _rules, options, typeInfo) =>
        validate(served, document, rules, options, typeInfo),
      );
    },
  };
  /** A refused request is logged at info, once, with its request id: enough to answer "why?". */
  const logRefusals = (
    context: Partial<ApiContext> & { request?: Request },
    errors: readonly unknown[] | undefined,
  ) => {
    for (const error of errors ?? []) {
      if (!isClientError(error)) continue;
      const { message, extensions, originalError } = error as GraphQLError;
      logger.info('GraphQL request refused', {
        requestId: context.requestId ?? (context.request && requestIdOf(context.request)),
        code: isTributaryError(originalError)
          ? originalError.code
          : (extensions?.code ?? 'GRAPHQL_VALIDATION_FAILED'),
        message,
      });
    }
  };
  const requestLog: Plugin<ApiContext> = {
    onValidate({ context }) {
      return ({ result, setResult }) => {
        const errors = introspection
          ? result
          : result.map((error) => withoutSuggestions(error as GraphQLError));
        if (!introspection) setResult([...errors]);
        logRefusals(context, errors);
      };
    },
    onExecute({ args }) {
      return {
        onExecuteDone: ({ result }) =>
          logRefusals(args.contextValue, 'errors' in result ? result.errors : undefined),
      };
    },
  };
  const measure: Plugin = {
    onRequest({ serverContext }) {
      (serverContext as { startedAt?: number }).startedAt = performance.now();
    },
    onResponse({ response, serverContext, request }) {
      const url = new URL(request.url);
      if (url.pathname !== path) return;
      const startedAt = (serverContext as { startedAt?: number }).startedAt;
      if (startedAt === undefined) return;
      const streaming = response.headers.get('content-type')?.includes('text/event-stream') ?? false;
      metrics.request(
        {
          operation: streaming ? 'subscription' : request.method === 'GET' ? 'get' : 'post',
          status: String(response.status),
        },
        (performance.now() - startedAt) / 1000,
      );
    },
  };

  const yoga = createYoga<Record<string, unknown>, ApiContext>({
    schema,
    graphqlEndpoint: path,
    landingPage: false,
    healthCheckEndpoint: '/healthz',
    graphiql: graphiql
      ? {
          subscriptionsProtocol: 'WS',
          title: 'Tributary',
          ...(options.graphiqlDefaultQuery ? { defaultQuery: options.graphiqlDefaultQuery } : {}),
        }
      : false,
    logging: {
      debug: (...args) => logger.debug(String(args[0]), { detail: args.slice(1) }),
      info: (...args) => logger.info(String(args[0]), { detail: args.slice(1) }),
      warn: (...args) => logger.warn(String(args[0]), { detail: args.slice(1) }),
      // Yoga reports every error of a result here; a caller's mistake is not the server's fault
      // (requestLog below records those at info), and real faults are logged by maskError.
      error: (...args) => {
        if (!isClientError(args[0])) logger.error(String(args[0]), { detail: args.slice(1) });
      },
    },
    maskedErrors: {
      maskError: (error) => {
        const masked = maskError(error, logger);
        return introspection || !(masked instanceof GraphQLError) ? masked : withoutSuggestions(masked);
      },
    },
    plugins: [endpoints, guards, measure, requestLog],
    context: async (initial) => {
      const { request, req, identity } = initial as {
        request?: Request;
        /** The Node request, when served by `handle` (which authenticated it already). */
        req?: IncomingMessage;
        /** Set by the WebSocket server at connection_init. */
        identity?: Identity;
      };
      return {
        requestId: request ? requestIdOf(request) : randomUUID(),
        identity:
          identity ??
          (req && authenticated.get(req)) ??
          (await authenticate(request ? credentialsOf(request.headers) : undefined)),
        signal: request?.signal,
      };
    },
  });

  /** Identities of requests `handle` authenticated, for the GraphQL context. */
  const authenticated = new WeakMap<IncomingMessage, Identity>();
  /**
   * Before GraphQL sees a request: its credentials are checked from its headers (an
   * unauthenticated request costs no more than its headers), and its body is read up to
   * maxBodyBytes however it is framed.
   */
  const serve = async (req: IncomingMessage, res: ServerResponse) => {
    const startedAt = performance.now();
    const pathname = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (pathname !== path || req.method === 'OPTIONS') return yoga.handle(req, res);
    const reject = (status: number, error: Parameters<typeof refuse>[2], close: boolean) => {
      refuse(res, status, error, close);
      metrics.request(
        { operation: 'refused', status: String(status) },
        (performance.now() - startedAt) / 1000,
      );
    };
    const identity = await authenticate(credentialsOf(req.headers));
    const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
    const page = graphiql && req.method === 'GET' && (req.headers.accept ?? '').includes('text/html');
    if (!identity.principal && !identity.open && !page) {
      return reject(
        401,
        { code: 'UNAUTHENTICATED', message: identity.error ?? 'Authentication required.', hint: AUTH_HINT },
        hasBody,
      );
    }
    if (hasBody) {
      const tooLarge = { code: 'PAYLOAD_TOO_LARGE', message: `Request body exceeds ${maxBodyBytes} bytes.` };
      if (Number(req.headers['content-length'] ?? 0) > maxBodyBytes) return reject(413, tooLarge, true);
      const body = await readBody(req, maxBodyBytes);
      if (body === undefined) return reject(413, tooLarge, true);
      // Yoga's Node adapter takes a body already read from `req.body`, as an async iterable:
      // given a Buffer there, it would list the Buffer's keys, one per byte.
      (req as IncomingMessage & { body?: unknown }).body = {
        bytes: body.length,
        async *[Symbol.asyncIterator]() {
          yield body;
        },
      };
    }
    authenticated.set(req, identity);
    return yoga.handle(req, res);
  };
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    serve(req, res).catch((error: unknown) => {
      logger.warn('request failed before GraphQL', { error });
      if (!res.headersSent)
        refuse(res, 400, { code: 'BAD_REQUEST', message: 'The request could not be read.' }, true);
      else res.destroy();
    });
  };

  let server: Server | undefined;
  let wss: WebSocketServer | undefined;
  let pruner: NodeJS.Timeout | undefined;
  const retentionMs = config.changelogRetentionMs ?? 7 * 24 * 3600 * 1000;
  const prune = () => {
    pruneChanges(pool, retentionMs)
      .then((deleted) => {
        if (deleted > 0) logger.info('pruned changelog', { deleted, retentionMs });
      })
      .catch((error: unknown) => logger.warn('changelog pruning failed', { error }));
  };
  pruner = setInterval(prune, Math.min(retentionMs, 60 * 60 * 1000));
  pruner.unref();
  prune();

  return {
    yoga,
    schema,
    metrics,
    tailer,
    handle,
    async listen(port = config.port ?? 4000, host = config.host ?? '127.0.0.1') {
      server = createLimitedServer(handle, limits);
      wss = new WebSocketServer({ server, path, maxPayload: maxBodyBytes });
      const idleTimeoutMs = limits.idleTimeoutMs ?? 60_000;
      const sockets = new WeakMap<object, { identity?: Identity; active: number; idle?: NodeJS.Timeout }>();
      const stateOf = (socket: object) => {
        let state = sockets.get(socket);
        if (!state) {
          state = { active: 0 };
          sockets.set(socket, state);
        }
        return state;
      };
      /** A socket without a running subscription is closed once it stays so for idleTimeoutMs. */
      const idle = (socket: WebSocket) => {
        const state = stateOf(socket);
        clearTimeout(state.idle);
        if (state.active > 0) return;
        state.idle = setTimeout(
          () => socket.close(4408, 'Idle: no subscription for too long.'),
          idleTimeoutMs,
        );
        state.idle.unref();
      };
      wss.on('connection', (socket) => {
        idle(socket);
        socket.once('close', () => clearTimeout(stateOf(socket).idle));
      });
      useServer<Record<string, unknown>, { identity?: Identity }>(
        {
          connectionInitWaitTimeout: limits.connectionInitTimeoutMs ?? 3000,
          // Credentials at connection_init (the `authorization` parameter) or on the upgrade request.
          onConnect: async (ctx) => {
            const fromParams = ctx.connectionParams?.authorization ?? ctx.connectionParams?.Authorization;
            const identity = await authenticate(
              (typeof fromParams === 'string' ? fromParams : undefined) ??
                credentialsOf(ctx.extra.request.headers),
            );
            if (!identity.principal && !identity.open) return false;
            stateOf(ctx.extra.socket).identity = identity;
            return true;
          },
          onComplete: (ctx) => {
            const state = stateOf(ctx.extra.socket);
            state.active = Math.max(0, state.active - 1);
            idle(ctx.extra.socket);
          },
          execute: (args) =>
            (args.rootValue as { execute: (a: ExecutionArgs) => unknown }).execute(args) as never,
          subscribe: (args) =>
            (args.rootValue as { subscribe: (a: ExecutionArgs) => unknown }).subscribe(args) as never,
          onSubscribe: async (ctx, _id, payload) => {
            const state = stateOf(ctx.extra.socket);
            const enveloped = yoga.getEnveloped({
              ...ctx,
              socket: ctx.extra.socket,
              params: payload,
              connectionParams: ctx.connectionParams,
              identity: state.identity,
            });
            let document: ReturnType<typeof enveloped.parse>;
            try {
              document = enveloped.parse(payload.query);
            } catch (error) {
              return [error instanceof GraphQLError ? error : new GraphQLError('Syntax error.')];
            }
            const errors = enveloped.validate(enveloped.schema, document);
            if (errors.length > 0) return errors;
            state.active++;
            idle(ctx.extra.socket);
            return {
              schema: enveloped.schema,
              operationName: payload.operationName,
              document,
              variableValues: payload.variables,
              contextValue: await enveloped.contextFactory(),
              rootValue: { execute: enveloped.execute, subscribe: enveloped.subscribe },
            };
          },
        },
        wss,
      );
      await new Promise<void>((resolve, reject) => {
        server!.once('error', reject);
        server!.listen(port, host, () => resolve());
      });
      const address = server.address() as AddressInfo;
      const shownHost = host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host;
      return { server, url: `http://${shownHost}:${address.port}${path}`, port: address.port };
    },
    async close() {
      clearInterval(pruner);
      pruner = undefined;
      for (const client of wss?.clients ?? []) client.terminate();
      await new Promise<void>((resolve) => (wss ? wss.close(() => resolve()) : resolve()));
      if (server) {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server!.close(() => resolve()));
      }
      await tailer.close();
      await yoga.dispose();
      if (ownedStore) await ownedStore.close();
      if (ownsPool) await pool.end();
    },
  };
}

const OPERATIONAL_ENDPOINTS = new Map<string, 'healthz' | 'readyz' | 'metrics'>([
  ['/healthz', 'healthz'],
  ['/readyz', 'readyz'],
  ['/metrics', 'metrics'],
]);

const AUTH_HINT =
  'Send `Authorization: Bearer <API key or JWT>` (over WebSocket: the `authorization` connection parameter).';

function namedType(type: TypeNode): string {
  return type.kind === Kind.NAMED_TYPE ? type.name.value : namedType(type.type);
}

/** Nesting depth of a JSON value, looked at no deeper than `limit + 1` (so recursion stays shallow). */
function jsonDepth(value: unknown, limit: number): number {
  if (value === null || typeof value !== 'object') return 0;
  if (limit < 0) return 1;
  let deepest = 0;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const item = value[i];
      if (item !== null && typeof item === 'object') deepest = Math.max(deepest, jsonDepth(item, limit - 1));
      if (deepest > limit) break;
    }
  } else {
    for (const key in value) {
      const item = (value as Record<string, unknown>)[key];
      if (item !== null && typeof item === 'object') deepest = Math.max(deepest, jsonDepth(item, limit - 1));
      if (deepest > limit) break;
    }
  }
  return deepest + 1;
}

const requestIds = new WeakMap<Request, string>();
/** The request's `x-request-id` (as sent, within reason), or one made up, the same every time it is asked. */
function requestIdOf(request: Request): string {
  let id = requestIds.get(request);
  if (id === undefined) {
    id = request.headers.get('x-request-id')?.slice(0, 128) || randomUUID();
    requestIds.set(request, id);
  }
  return id;
}

/** An error the caller caused (validation, a refused input, a typed Tributary error), not a fault. */
function isClientError(error: unknown): boolean {
  if (!(error instanceof GraphQLError)) return false;
  const code = error.extensions?.code;
  if (code === 'INTERNAL_SERVER_ERROR') return false;
  const original = error.originalError;
  return (
    original === undefined ||
    original instanceof GraphQLError ||
    isTributaryError(original) ||
    typeof code === 'string'
  );
}

/**
 * With introspection off, GraphQL's "Did you mean …?" would name fields and types the caller
 * cannot otherwise learn: the suggestion goes, the error stays.
 */
function withoutSuggestions(error: GraphQLError): GraphQLError {
  const message = error.message.replace(/ Did you mean [^?]*\?/g, '');
  if (message === error.message) return error;
  return new GraphQLError(message, {
    nodes: error.nodes,
    path: error.path,
    extensions: error.extensions,
  });
}

/**
 * Expected errors keep their message and code (and the facts a client needs); anything else
 * becomes "Unexpected error." with code INTERNAL_SERVER_ERROR, logged here, never sent.
 */
function maskError(error: unknown, logger: Logger): Error {
  const graphqlError = error instanceof GraphQLError ? error : undefined;
  const original = graphqlError?.originalError ?? error;
  if (isTributaryError(original)) {
    const extensions: Record<string, unknown> = { code: original.code };
    if (original.hint) extensions.hint = original.hint;
    if (original instanceof ConcurrencyError) {
      extensions.streamId = original.streamId;
      extensions.currentVersion = original.actual;
      extensions.expectedVersion = original.expected;
    }
    if (original instanceof ValidationError && original.field) extensions.field = original.field;
    for (const fact of ['lastCursor', 'cursor'] as const) {
      if (fact in original) extensions[fact] = (original as unknown as Record<string, unknown>)[fact];
    }
    return new GraphQLError(original.message, {
      nodes: graphqlError?.nodes,
      path: graphqlError?.path,
      extensions,
    });
  }
  if (original instanceof GraphQLError) return original;
  if (graphqlError && !graphqlError.originalError) return graphqlError;
  logger.error('unexpected error in a GraphQL request', { error: original });
  return new GraphQLError('Unexpected error.', {
    nodes: graphqlError?.nodes,
    path: graphqlError?.path,
    extensions: { code: 'INTERNAL_SERVER_ERROR' },
  });
}
