import type { Server } from 'node:http';
import { type ExecutionArgs, GraphQLError } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import type { YogaServerInstance } from 'graphql-yoga';
import { type WebSocket, WebSocketServer } from 'ws';
import type { ApiLimitsConfig } from './apiConfig.js';
import type { Authenticator, Identity } from './auth.js';
import { credentialsOf } from './httpGuards.js';
import type { ApiContext } from './schema/index.js';

interface SocketState {
  identity?: Identity;
  /** Running subscriptions. */
  active: number;
  idle?: NodeJS.Timeout;
}

/**
 * graphql-ws on the HTTP server's GraphQL path, running each operation through Yoga's
 * envelope (the same plugins, limits and errors as HTTP). A socket must present valid
 * credentials at connection_init (or on its upgrade request), within the init timeout, and
 * is closed once it has run no subscription for the idle timeout.
 */
export function serveWebSockets(options: {
  server: Server;
  path: string;
  yoga: YogaServerInstance<Record<string, unknown>, ApiContext>;
  authenticate: Authenticator;
  limits: ApiLimitsConfig;
  maxPayload: number;
}): WebSocketServer {
  const { yoga, authenticate, limits } = options;
  const wss = new WebSocketServer({
    server: options.server,
    path: options.path,
    maxPayload: options.maxPayload,
  });
  const idleTimeoutMs = limits.idleTimeoutMs ?? 60_000;
  const sockets = new WeakMap<object, SocketState>();
  const stateOf = (socket: object) => {
    let state = sockets.get(socket);
    if (!state) {
      state = { active: 0 };
      sockets.set(socket, state);
    }
    return state;
  };
  const idle = (socket: WebSocket) => {
    const state = stateOf(socket);
    clearTimeout(state.idle);
    if (state.active > 0) return;
    state.idle = setTimeout(() => socket.close(4408, 'Idle: no subscription for too long.'), idleTimeoutMs);
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
  return wss;
}
