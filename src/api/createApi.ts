import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type ExecutionArgs,
  GraphQLError,
  type GraphQLSchema,
  NoSchemaIntrospectionCustomRule,
  parse,
} from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { createYoga, type Plugin, type YogaServerInstance } from 'graphql-yoga';
import { WebSocketServer } from 'ws';
import { createPool, type Pool } from '../db/index.js';
import { ConcurrencyError, isTributaryError, ValidationError } from '../errors.js';
import {
  type CdcSourcesConfig,
  cdcStatus,
  createPostgresEventStore,
  type EventStore,
} from '../ingest/index.js';
import { type Logger, silentLogger } from '../logger.js';
import {
  DEFAULT_VIEW_SCHEMA,
  getProjectionStatuses,
  type Projection,
  projectionOfView,
} from '../projections/index.js';
import type { AnyView } from './anyView.js';
import type { ApiConfig } from './apiConfig.js';
import { type Authenticator, createAuthenticator } from './auth.js';
import { type ApiContext, buildSchema } from './buildSchema.js';
import { type ChangeTailer, createChangeTailer } from './changeTailer.js';
import { type ApiMetrics, createApiMetrics } from './metrics.js';
import { queryLimitRules } from './queryLimits.js';
import { pruneChanges } from './readChanges.js';
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
    : createPostgresEventStore({ connectionString: options.connectionString, pool, logger });
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
  const rules = queryLimitRules({
    maxDepth: limits.maxDepth ?? 12,
    maxAliases: limits.maxAliases ?? 30,
    maxComplexity: limits.maxComplexity ?? 50_000,
    defaultPageSize,
  });
  const introspection = config.introspection ?? !production;
  const maxBodyBytes = limits.maxBodyBytes ?? 1_000_000;
  const maxTokens = limits.maxTokens ?? 5000;

  const ready = async () => {
    await tailer.ready;
    await pool.query('select 1');
  };

  const endpoints: Plugin = {
    async onRequest({ request, url, endResponse, fetchAPI }) {
      if (url.pathname === '/healthz') {
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
  const guards: Plugin = {
    onParse({ setParseFn }) {
      setParseFn((source, parseOptions) => parse(source, { ...parseOptions, maxTokens }));
    },
    onValidate({ addValidationRule }) {
      for (const rule of rules) addValidationRule(rule);
      if (!introspection) addValidationRule(NoSchemaIntrospectionCustomRule);
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
    graphiql:
      (config.graphiql ?? !production)
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
      error: (...args) => logger.error(String(args[0]), { detail: args.slice(1) }),
    },
    maskedErrors: { maskError: (error) => maskError(error, logger) },
    plugins: [endpoints, guards, measure],
    context: async (initial) => {
      const { request, connectionParams } = initial as {
        request?: Request;
        connectionParams?: Record<string, unknown>;
      };
      const fromSocket = connectionParams?.authorization ?? connectionParams?.Authorization;
      const credentials =
        (typeof fromSocket === 'string' ? fromSocket : undefined) ??
        request?.headers.get('authorization') ??
        request?.headers.get('x-api-key') ??
        undefined;
      return {
        identity: await authenticate(credentials),
        signal: request?.signal,
      };
    },
  });

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    void yoga.handle(req, res);
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
      server = createServer(handle);
      wss = new WebSocketServer({ server, path, maxPayload: maxBodyBytes });
      useServer<Record<string, unknown>>(
        {
          execute: (args) =>
            (args.rootValue as { execute: (a: ExecutionArgs) => unknown }).execute(args) as never,
          subscribe: (args) =>
            (args.rootValue as { subscribe: (a: ExecutionArgs) => unknown }).subscribe(args) as never,
          onSubscribe: async (ctx, _id, payload) => {
            const enveloped = yoga.getEnveloped({
              ...ctx,
              req: ctx.extra.request,
              socket: ctx.extra.socket,
              params: payload,
              connectionParams: ctx.connectionParams,
            });
            let document: ReturnType<typeof enveloped.parse>;
            try {
              document = enveloped.parse(payload.query);
            } catch (error) {
              return [error instanceof GraphQLError ? error : new GraphQLError('Syntax error.')];
            }
            const errors = enveloped.validate(enveloped.schema, document);
            if (errors.length > 0) return errors;
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
