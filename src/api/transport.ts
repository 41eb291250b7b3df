import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { GraphQLSchema } from 'graphql';
import { createYoga, type YogaServerInstance } from 'graphql-yoga';
import type { WebSocketServer } from 'ws';
import type { Logger } from '../logger.js';
import type { Metrics } from '../observability/index.js';
import type { ApiLimitsConfig } from './apiConfig.js';
import type { Authenticator, Identity } from './auth.js';
import type { DocumentChecks } from './documentGuards.js';
import { type DocumentGuardOptions, documentGuards } from './documentGuards.js';
import {
  declaredBodyLimit,
  measureRequests,
  type OperationalEndpoint,
  operationalEndpoints,
} from './endpoints.js';
import { type errorHandling, requestIdOf } from './errorHandling.js';
import { graphiqlAssets, renderGraphiQL } from './graphiql.js';
import {
  createLimitedServer,
  createRequestHandler,
  credentialsOf,
  type RequestHandlerOptions,
} from './httpGuards.js';
import { observeOperations } from './observeOperations.js';
import type { ApiContext } from './schema/index.js';
import { serveWebSockets } from './websocket.js';

export interface TransportOptions {
  schema: GraphQLSchema;
  path: string;
  graphiql: boolean;
  /** What GraphiQL shows in its editor when it opens. */
  graphiqlDefaultQuery: string | undefined;
  publicEndpoints: readonly OperationalEndpoint[];
  authenticate: Authenticator;
  /** Resolves when the API can serve: `/readyz`. */
  ready: () => Promise<void>;
  metrics: Metrics;
  maxBodyBytes: number;
  guards: DocumentGuardOptions;
  errors: ReturnType<typeof errorHandling>;
  limits: ApiLimitsConfig;
  checks: DocumentChecks;
  serveFirst: RequestHandlerOptions['serveFirst'];
  onRefused: RequestHandlerOptions['onRefused'];
  logger: Logger;
}

type YogaOptions = Omit<TransportOptions, 'limits' | 'checks' | 'serveFirst' | 'onRefused' | 'logger'>;

export interface Transport {
  yoga: YogaServerInstance<Record<string, unknown>, ApiContext>;
  /** Node request handler (HTTP and SSE). */
  handle(req: IncomingMessage, res: ServerResponse): void;
  /** Serves GraphQL over HTTP, SSE and graphql-ws on one port. */
  listen(port: number, host: string): Promise<{ server: Server; url: string; port: number }>;
  /** Drops every WebSocket and connection, and closes the port (if it was opened). */
  close(): Promise<void>;
}

/**
 * How requests reach the schema: Yoga, the Node request handler in front of it (credentials,
 * limits, compiled reads first), and one port for HTTP, SSE and graphql-ws.
 */
export function createTransport(options: TransportOptions): Transport {
  const { path, authenticate, maxBodyBytes, errors } = options;
  const yoga = createYogaServer({ ...options, identityOf: (req) => requests.identityOf(req) });
  const requests = createRequestHandler({ ...options, yoga });
  let server: Server | undefined;
  let wss: WebSocketServer | undefined;
  return {
    yoga,
    handle: requests.handle,
    async listen(port, host) {
      const opened = createLimitedServer(requests.handle, options.limits);
      server = opened;
      wss = serveWebSockets({
        server: opened,
        path,
        yoga,
        authenticate,
        limits: options.limits,
        maxPayload: maxBodyBytes,
        oversized: options.checks.oversized,
        maskError: errors.maskedErrors.maskError,
      });
      await new Promise<void>((resolve, reject) => {
        opened.once('error', reject);
        opened.listen(port, host, () => resolve());
      });
      const address = opened.address() as AddressInfo;
      const shownHost = host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host;
      return { server: opened, url: `http://${shownHost}:${address.port}${path}`, port: address.port };
    },
    async close() {
      for (const client of wss?.clients ?? []) client.terminate();
      await new Promise<void>((resolve) => (wss ? wss.close(() => resolve()) : resolve()));
      if (server) {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server!.close(() => resolve()));
      }
    },
  };
}

/**
 * Yoga over the schema, with its plugins in the order they must run: the operational
 * endpoints and the body limit first, the operations counted before the guards (so that
 * their refusals count), the request log last. Each request's context carries its id and
 * the identity its credentials give.
 */
function createYogaServer(
  options: YogaOptions & {
    /** The identity of a Node request the request handler has authenticated already. */
    identityOf: (req: IncomingMessage) => Identity | undefined;
  },
): YogaServerInstance<Record<string, unknown>, ApiContext> {
  const { path, graphiql, authenticate, metrics, errors } = options;
  return createYoga<Record<string, unknown>, ApiContext>({
    schema: options.schema,
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
        publicEndpoints: options.publicEndpoints,
        authenticate,
        ready: options.ready,
        metrics,
      }),
      declaredBodyLimit(options.maxBodyBytes),
      ...(graphiql ? [graphiqlAssets(path)] : []),
      // Before the guards, so that it counts what they refuse.
      observeOperations(metrics),
      documentGuards(options.guards),
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
          (req && options.identityOf(req)) ??
          (await authenticate(request ? credentialsOf(request.headers) : undefined)),
        signal: request?.signal,
      };
    },
  });
}
