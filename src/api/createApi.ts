import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { GraphQLSchema } from 'graphql';
import { createYoga, type YogaServerInstance } from 'graphql-yoga';
import type { WebSocketServer } from 'ws';
import {
  createPool,
  createReadRouter,
  type Pool,
  primaryOnly,
  type ReadRouter,
  type ReplicaOptions,
} from '../db/index.js';
import {
  type CdcSourcesConfig,
  cdcStatus,
  createPostgresEventStore,
  type EventStore,
  type LimitOptions,
} from '../ingest/index.js';
import { type Logger, silentLogger } from '../logger.js';
import { createMetrics, type Metrics } from '../observability/index.js';
import {
  type ChangeTailer,
  createChangeTailer,
  DEFAULT_VIEW_SCHEMA,
  getProjectionStatuses,
  oldestSinkPosition,
  type Projection,
  projectionOfView,
  pruneChanges,
  type ResolvedSink,
} from '../projections/index.js';
import type { AnyView } from './anyView.js';
import type { ApiConfig } from './apiConfig.js';
import { type Authenticator, createAuthenticator, type Identity } from './auth.js';
import { compiledReads } from './compiledReads.js';
import { documentChecks, documentGuards } from './documentGuards.js';
import { declaredBodyLimit, measureRequests, operationalEndpoints } from './endpoints.js';
import { errorHandling, requestIdOf } from './errorHandling.js';
import { graphiqlAssets, renderGraphiQL } from './graphiql.js';
import { createLimitedServer, createRequestHandler, credentialsOf } from './httpGuards.js';
import { observeOperations } from './observeOperations.js';
import { type ApiContext, buildSchema, type SchemaOptions } from './schema/index.js';
import { searchSources } from './searchSources.js';
import type { StatusProvider } from './status.js';
import { serveWebSockets } from './websocket.js';

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
  /** Hot-standby replicas that queries of views may read (writes and subscriptions use the primary). */
  replicas?: ReplicaOptions;
  /** Limits of appended events (`log` of tributary.config.ts), enforced on `appendEvents`. */
  log?: LimitOptions;
  /** Sinks (resolved `sinks` of tributary.config.ts): `search<View>` for those on PostgreSQL; pruning keeps what they still need. */
  sinks?: readonly ResolvedSink[];
  /** CDC sources (`sources` of tributary.config.ts), for the `sources` field and the CDC lag metrics. */
  sources?: CdcSourcesConfig;
  /** @default projections from their checkpoints, sources from the CDC status */
  status?: Partial<StatusProvider>;
  /** What GraphiQL shows in its editor when it opens. */
  graphiqlDefaultQuery?: string;
  /** Production defaults: no GraphiQL, no introspection. @default NODE_ENV === 'production' */
  production?: boolean;
  logger?: Logger;
  /**
   * Where the API records its metrics, and what `/metrics` serves: pass the process's metrics
   * (also given to `startWorkers` and `startCapture`) to serve them all. @default metrics of its own
   */
  metrics?: Metrics;
}

export interface Api {
  yoga: YogaServerInstance<Record<string, unknown>, ApiContext>;
  schema: GraphQLSchema;
  metrics: Metrics;
  tailer: ChangeTailer;
  /** The replicas queries may read, and how each one stands. */
  replicas: Pick<ReadRouter, 'status'>;
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
  const reads: ReadRouter = options.replicas?.urls.length
    ? createReadRouter(pool, { logger, ...options.replicas })
    : primaryOnly(pool);
  const search = searchSources(options.sinks ?? [], options.connectionString, pool, logger);
  const closeSearch = search.close;
  const metrics = options.metrics ?? createMetrics();
  const unobserve = [
    metrics.watchLag(status),
    metrics.trackPool('api', pool),
    metrics.observe(
      'tributary_api_changelog_listeners',
      'Subscriptions listening to the changelog reader.',
      () => tailer.listeners,
    ),
  ];
  const defaultPageSize = limits.defaultPageSize ?? 50;
  const schemaOptions: SchemaOptions = {
    views,
    viewSchema: config.viewSchema ?? DEFAULT_VIEW_SCHEMA,
    pool,
    reads,
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
    search: search.sources,
  };
  const schema = buildSchema(schemaOptions);
  const introspection = config.introspection ?? !production;
  const graphiql = config.graphiql ?? !production;
  const maxBodyBytes = limits.maxBodyBytes ?? 1_000_000;
  const errors = errorHandling(logger, introspection);

  const guards = {
    schema,
    limits,
    introspection,
    defaultPageSize,
    maxEventsPerAppend: options.log?.maxEventsPerAppend ?? 10_000,
  };
  const checks = documentChecks(guards);
  const compiled = compiledReads({
    schema,
    options: schemaOptions,
    checks,
    onServed: ({ method, status, seconds, operation }) => {
      metrics.httpRequest({ method: method.toUpperCase(), status: String(status) }, seconds);
      metrics.graphqlOperation({ operation, type: 'query', outcome: 'ok' }, seconds);
    },
  });
  const yoga = createYoga<Record<string, unknown>, ApiContext>({
    schema,
    graphqlEndpoint: path,
    landingPage: false,
    healthCheckEndpoint: '/healthz',
    renderGraphiQL: renderGraphiQL(path),
    graphiql: graphiql
      ? {
          subscriptionsProtocol: 'WS',
          title: 'Tributary',
          ...(options.graphiqlDefaultQuery ? { defaultQuery: options.graphiqlDefaultQuery } : {}),
        }
      : false,
    logging: errors.logging,
    maskedErrors: errors.maskedErrors,
    plugins: [
      operationalEndpoints({
        publicEndpoints: config.publicEndpoints ?? ['healthz', 'readyz'],
        authenticate,
        ready: async () => {
          await tailer.ready;
          await pool.query('select 1');
        },
        metrics,
      }),
      declaredBodyLimit(maxBodyBytes),
      ...(graphiql ? [graphiqlAssets(path)] : []),
      // Before the guards, so that it counts what they refuse.
      observeOperations(metrics),
      documentGuards(guards),
      measureRequests(metrics, path),
      errors.requestLog,
    ],
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
          (req && requests.identityOf(req)) ??
          (await authenticate(request ? credentialsOf(request.headers) : undefined)),
        signal: request?.signal,
      };
    },
  });
  const requests = createRequestHandler({
    yoga,
    path,
    authenticate,
    maxBodyBytes,
    graphiql,
    serveFirst: compiled.serve,
    onRefused: (status, seconds, method) => metrics.httpRequest({ method, status: String(status) }, seconds),
    logger,
  });

  let server: Server | undefined;
  let wss: WebSocketServer | undefined;
  const retentionMs = config.changelogRetentionMs ?? 7 * 24 * 3600 * 1000;
  const sinkHoldMs = Math.max(retentionMs, config.changelogSinkHoldMs ?? 30 * 24 * 3600 * 1000);
  const prune = () => {
    (async () => {
      // What the sinks have not applied yet stays, up to sinkHoldMs; past it, it goes too
      // (and a sink that needed it rebuilds its index from the view).
      const keepAfter = await oldestSinkPosition(pool);
      let deleted = await pruneChanges(pool, retentionMs, keepAfter ? { keepAfter } : {});
      if (keepAfter) deleted += await pruneChanges(pool, sinkHoldMs);
      if (deleted > 0) logger.info('pruned changelog', { deleted, retentionMs });
    })().catch((error: unknown) => logger.warn('changelog pruning failed', { error }));
  };
  const pruner = setInterval(prune, Math.min(retentionMs, 60 * 60 * 1000));
  pruner.unref();
  prune();

  return {
    yoga,
    schema,
    metrics,
    tailer,
    replicas: reads,
    handle: requests.handle,
    async listen(port = config.port ?? 4000, host = config.host ?? '127.0.0.1') {
      server = createLimitedServer(requests.handle, limits);
      wss = serveWebSockets({
        server,
        path,
        yoga,
        authenticate,
        limits,
        maxPayload: maxBodyBytes,
        oversized: checks.oversized,
        maskError: errors.maskedErrors.maskError,
      });
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
      for (const stop of unobserve) stop();
      for (const client of wss?.clients ?? []) client.terminate();
      await new Promise<void>((resolve) => (wss ? wss.close(() => resolve()) : resolve()));
      if (server) {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server!.close(() => resolve()));
      }
      await tailer.close();
      await reads.close();
      await closeSearch();
      await yoga.dispose();
      if (ownedStore) await ownedStore.close();
      if (ownsPool) await pool.end();
    },
  };
}
