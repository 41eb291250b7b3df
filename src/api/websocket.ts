import type { Server } from 'node:http';
import {
  createSourceEventStream,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  execute,
  GraphQLError,
  Kind,
} from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import type { YogaServerInstance } from 'graphql-yoga';
import { type WebSocket, WebSocketServer } from 'ws';
import type { ApiLimitsConfig } from './apiConfig.js';
import type { Authenticator, Identity } from './auth.js';
import type { DocumentChecks } from './documentGuards.js';
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
  /** The document guards' variable check, applied where a subscription skips Yoga's hooks. */
  oversized?: DocumentChecks['oversized'];
  /** How Yoga masks the errors of a result (errorHandling.ts), for those shared subscriptions. */
  maskError?: (error: GraphQLError) => Error;
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
        const subscribe =
          options.oversized && options.maskError && sharesResults(document, payload.operationName)
            ? (args: ExecutionArgs) =>
                options.oversized!(args.document, args.variableValues as Record<string, unknown>)
                  ? enveloped.subscribe(args) // refused there, as usual
                  : sharedSubscribe(args, options.maskError!, () => enveloped.subscribe(args))
            : enveloped.subscribe;
        return {
          schema: enveloped.schema,
          operationName: payload.operationName,
          document,
          variableValues: payload.variables,
          contextValue: await enveloped.contextFactory(),
          rootValue: { execute: enveloped.execute, subscribe },
        };
      },
    },
    wss,
  );
  return wss;
}

/** A subscription of one field (a view's changes) with no directives: its results can be shared. */
function sharesResults(document: DocumentNode, operationName: string | null | undefined): boolean {
  const operations = document.definitions.filter((d) => d.kind === Kind.OPERATION_DEFINITION);
  const operation =
    operations.length === 1 ? operations[0] : operations.find((o) => o.name?.value === operationName);
  if (operation?.operation !== 'subscription' || operation.directives?.length) return false;
  const [field, ...others] = operation.selectionSet.selections;
  return (
    others.length === 0 &&
    field?.kind === Kind.FIELD &&
    field.name.value.endsWith('Changes') &&
    !JSON.stringify(document).includes('"kind":"Directive"')
  );
}

/** Results of shared messages by document and variables: made once, sent to every subscriber. */
const sharedResults = new WeakMap<object, Map<string, Promise<ExecutionResult>>>();
const documentIds = new WeakMap<DocumentNode, number>();
let nextDocumentId = 0;

/**
 * A view's changes for one subscriber, each change's result executed once per distinct
 * document and variables among all subscribers (the change messages are shared objects, see
 * subscribeChanges.ts) rather than once per subscriber: with a thousand subscribers of the
 * same selection, a change is executed once and only serialized per socket. Results do not
 * depend on the subscriber's context (the scope is checked when the subscription starts); its
 * errors are masked as Yoga masks them.
 * A stream that cannot start (bad cursor, missing scope) goes through `fallback`, Yoga's own
 * subscribe, which answers it as always; a typed error message is executed per subscriber.
 */
async function sharedSubscribe(
  args: ExecutionArgs,
  maskError: (error: GraphQLError) => Error,
  fallback: () => unknown,
): Promise<unknown> {
  const source = await createSourceEventStream({ ...args, rootValue: undefined });
  if (!(Symbol.asyncIterator in source)) return fallback();
  let id = documentIds.get(args.document);
  if (id === undefined) {
    id = nextDocumentId++;
    documentIds.set(args.document, id);
  }
  const key = `${id}\u0000${args.operationName ?? ''}\u0000${JSON.stringify(args.variableValues ?? null)}`;
  const resultOf = (event: object) => {
    // What Yoga's subscribe does with each event: execute the operation on it, mask its errors.
    const own = async (): Promise<ExecutionResult> => {
      const result = await execute({ ...args, rootValue: event });
      return result.errors
        ? { ...result, errors: result.errors.map((e) => maskError(e) as GraphQLError) }
        : result;
    };
    if ('error' in event || ('initial' in event && event.initial)) return own();
    let results = sharedResults.get(event);
    if (!results) {
      results = new Map();
      sharedResults.set(event, results);
    }
    let result = results.get(key);
    if (!result) {
      result = own();
      results.set(key, result);
    }
    return result;
  };
  const iterator = source[Symbol.asyncIterator]();
  const mapped: AsyncIterableIterator<ExecutionResult> = {
    async next() {
      const next = await iterator.next();
      if (next.done) return { done: true, value: undefined };
      return { done: false, value: await resultOf(next.value as object) };
    },
    async return() {
      await iterator.return?.();
      return { done: true, value: undefined };
    },
    async throw(error: unknown) {
      await iterator.return?.();
      throw error;
    },
    [Symbol.asyncIterator]: () => mapped,
  };
  return mapped;
}
