import { randomUUID } from 'node:crypto';
import { GraphQLError } from 'graphql';
import type { Plugin, YogaServerOptions } from 'graphql-yoga';
import { ConcurrencyError, isTributaryError, ValidationError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { ApiContext } from './schema/index.js';

/**
 * How the API answers and logs errors. Expected ones (typed Tributary errors, GraphQL's
 * validation) keep their message and code and are logged at info with the request id;
 * anything else reaches the caller as "Unexpected error." and the server log at error.
 * With introspection off, no error names fields or types through "Did you mean …?".
 */
export function errorHandling(
  logger: Logger,
  introspection: boolean,
): {
  logging: YogaServerOptions<Record<string, unknown>, ApiContext>['logging'];
  maskedErrors: { maskError: (error: unknown) => Error };
  requestLog: Plugin<ApiContext>;
} {
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
  return {
    logging: {
      debug: (...args) => logger.debug(String(args[0]), { detail: args.slice(1) }),
      info: (...args) => logger.info(String(args[0]), { detail: args.slice(1) }),
      warn: (...args) => logger.warn(String(args[0]), { detail: args.slice(1) }),
      // Yoga reports every error of a result here; a caller's mistake is not the server's fault
      // (requestLog records those at info), and real faults are logged by maskError.
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
    requestLog: {
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
    },
  };
}

const requestIds = new WeakMap<Request, string>();
/** The request's `x-request-id` (as sent, within reason), or one made up, the same every time it is asked. */
export function requestIdOf(request: Request): string {
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
