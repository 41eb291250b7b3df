import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { GraphQLSchema } from 'graphql';
import type { YogaServerInstance } from 'graphql-yoga';
import {
  closePool,
  createPool,
  type Pool,
  type ReadRouter,
  type ReplicaOptions,
  readRouterFor,
} from '../db/index.js';
import {
  type CdcSourcesConfig,
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
  oldestSinkPosition,
  type Projection,
  projectionOfView,
  type ResolvedSink,
  startPruning,
} from '../projections/index.js';
import type { AnyView } from './anyView.js';
import type { ApiConfig } from './apiConfig.js';
import { observeApi } from './apiMetrics.js';
import { createAuthenticator } from './auth.js';
import { compiledReads } from './compiledReads.js';
import { documentChecks } from './documentGuards.js';
import { errorHandling } from './errorHandling.js';
import { type ApiContext, buildSchema, type SchemaOptions } from './schema/index.js';
import { searchSources } from './searchSources.js';
import { type StatusProvider, statusProvider } from './status.js';
import { createTransport } from './transport.js';

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
  const { connectionString } = options;
  const logger = options.logger ?? silentLogger;
  const limits = config.limits ?? {};
  const production = options.production ?? process.env.NODE_ENV === 'production';
  const path = config.path ?? '/graphql';
  const pool = options.pool ?? createPool(connectionString, { applicationName: 'tributary-api', logger });
  const ownedStore = options.store
    ? undefined
    : createPostgresEventStore({ connectionString, pool, logger, ...options.log });
  const projections = options.projections ?? [];
  const status = statusProvider({ pool, projections, sources: options.sources, given: options.status });
  const authenticate = await createAuthenticator(config.auth);
  const pollIntervalMs = config.pollIntervalMs ?? 1000;
  const tailer = createChangeTailer({ pool, connectionString, pollIntervalMs, logger });
  const reads = readRouterFor(pool, options.replicas && { logger, ...options.replicas });
  const search = searchSources(options.sinks ?? [], connectionString, pool, logger);
  const metrics = options.metrics ?? createMetrics();
  const observed = observeApi(metrics, { status, pool, tailer });
  const defaultPageSize = limits.defaultPageSize ?? 50;
  const schemaOptions: SchemaOptions = {
    views: options.views ?? projections.flatMap((projection) => projection.views),
    viewSchema: config.viewSchema ?? DEFAULT_VIEW_SCHEMA,
    pool,
    reads,
    tailer,
    store: options.store ?? ownedStore!,
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
  const maxEventsPerAppend = options.log?.maxEventsPerAppend ?? 10_000;
  const errors = errorHandling(logger, introspection);
  const guards = { schema, limits, introspection, defaultPageSize, maxEventsPerAppend };
  const checks = documentChecks(guards);
  const transport = createTransport({
    schema,
    path,
    graphiql,
    graphiqlDefaultQuery: options.graphiqlDefaultQuery,
    publicEndpoints: config.publicEndpoints ?? ['healthz', 'readyz'],
    authenticate,
    ready: async () => {
      await tailer.ready;
      await pool.query('select 1');
    },
    metrics,
    maxBodyBytes,
    guards,
    errors,
    limits,
    checks,
    serveFirst: compiledReads({
      schema,
      options: schemaOptions,
      checks,
      onServed: observed.served,
      ...(config.preparedStatements !== undefined ? { preparedStatements: config.preparedStatements } : {}),
    }).serve,
    onRefused: observed.refused,
    logger,
  });
  const stopPruning = startPruning({
    db: pool,
    retentionMs: config.changelogRetentionMs ?? 7 * 24 * 3600 * 1000,
    holdMs: config.changelogSinkHoldMs ?? 30 * 24 * 3600 * 1000,
    keepAfter: () => oldestSinkPosition(pool),
    logger,
  });

  return {
    yoga: transport.yoga,
    schema,
    metrics,
    tailer,
    replicas: reads,
    handle: transport.handle,
    listen: (port = config.port ?? 4000, host = config.host ?? '127.0.0.1') => transport.listen(port, host),
    async close() {
      stopPruning();
      observed.stop();
      await transport.close();
      await tailer.close();
      await reads.close();
      await search.close();
      await transport.yoga.dispose();
      if (ownedStore) await ownedStore.close();
      if (options.pool === undefined) await closePool(pool);
    },
  };
}
