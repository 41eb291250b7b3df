import { sleep } from '../sleep.js';

/**
 * Subscribes to one view's changes and keeps the subscription going across dropped
 * connections, resuming each time right after the last change it delivered: every change
 * once, in order. (A GraphQL client's own retry re-sends the original `after`, which repeats
 * every change since then.)
 */

/** One change as the server sends it: at least its cursor. */
export interface ResumableChange {
  cursor: string;
  initial?: boolean;
}

export interface ResumableSubscriptionOptions {
  /** The GraphQL endpoint: `http(s)://…` for SSE, `ws(s)://…` for graphql-ws. */
  url: string;
  /** @default 'ws' for ws:// and wss:// URLs, else 'sse' */
  transport?: 'ws' | 'sse';
  /**
   * A subscription document selecting one view's changes (`<view>Changes`), declaring
   * `$after: String` and passing it as `after`, and selecting `cursor`.
   */
  query: string;
  variables?: Record<string, unknown>;
  /** Resume after this cursor (the last one your application stored). Absent: start now. */
  after?: string | null;
  /** Sent as the `Authorization` header (SSE) or the `authorization` connection parameter (WebSocket). */
  authorization?: string;
  /** More headers for SSE requests. */
  headers?: Record<string, string>;
  /** A WebSocket implementation where there is no global one (Node 20: pass `ws`). */
  webSocketImpl?: unknown;
  /** The fetch used for SSE. @default globalThis.fetch */
  fetchFn?: typeof fetch;
  /** First delay before re-subscribing after a connection failure; doubles each time. @default 250 */
  retryDelayMs?: number;
  /** @default 10_000 */
  maxRetryDelayMs?: number;
  /** Consecutive failed attempts before giving up (a delivered change resets the count). @default Infinity */
  maxRetries?: number;
  /** Ends the subscription. */
  signal?: AbortSignal;
  /** Told of every reconnection, with what ended the previous connection. */
  onReconnect?: (info: { attempt: number; after: string | null; reason: unknown }) => void;
}

/** The server refused the subscription itself (bad query, credentials, an expired cursor): retrying cannot help. */
export class SubscriptionRefusedError extends Error {
  constructor(
    readonly errors: readonly { message: string; extensions?: Record<string, unknown> }[],
    readonly code: string | undefined,
  ) {
    super(errors.map((error) => error.message).join('; '));
    this.name = 'SubscriptionRefusedError';
  }
}

interface Sink {
  next(value: { data?: Record<string, unknown> | null; errors?: readonly GraphQLErrorLike[] }): void;
  error(error: unknown): void;
  complete(): void;
}
interface GraphQLErrorLike {
  message: string;
  extensions?: Record<string, unknown>;
}
interface TransportClient {
  subscribe(payload: { query: string; variables: Record<string, unknown> }, sink: Sink): () => void;
  dispose(): void | Promise<void>;
}

/** Codes after which re-subscribing from the last delivered cursor is the right answer. */
const RESUMABLE = new Set(['SUBSCRIPTION_OVERFLOW']);

/**
 * Yields each change (the value of the subscription's root field) exactly once. With
 * `variables.initialRows`, the current rows come first; if the connection drops before a
 * change after them arrives, they are sent again from a new snapshot (`initial: true`, whole
 * rows: applying them twice is harmless), then changes resume by cursor.
 */
export async function* resumableSubscription<T extends ResumableChange = ResumableChange>(
  options: ResumableSubscriptionOptions,
): AsyncGenerator<T> {
  const transport = options.transport ?? (/^wss?:/i.test(options.url) ? 'ws' : 'sse');
  const baseDelay = options.retryDelayMs ?? 250;
  const maxDelay = options.maxRetryDelayMs ?? 10_000;
  const maxRetries = options.maxRetries ?? Number.POSITIVE_INFINITY;
  let after = options.after ?? null;
  let wantInitialRows = options.variables?.initialRows === true && after === null;
  let failures = 0;

  while (!options.signal?.aborted) {
    const client = await createTransport(transport, options);
    const variables: Record<string, unknown> = { ...options.variables, after };
    if (!wantInitialRows) variables.initialRows = false;
    let reason: unknown;
    try {
      for await (const message of iterate(client, { query: options.query, variables }, options.signal)) {
        if (message.errors?.length) {
          const code = message.errors[0]?.extensions?.code as string | undefined;
          if (code && RESUMABLE.has(code)) {
            reason = new SubscriptionRefusedError(message.errors, code);
            break;
          }
          throw new SubscriptionRefusedError(message.errors, code);
        }
        const change = Object.values(message.data ?? {})[0] as T | undefined;
        if (!change) continue;
        failures = 0;
        if (!change.initial) {
          after = change.cursor;
          wantInitialRows = false;
        }
        yield change;
      }
      reason ??= new Error('The server ended the subscription.');
    } catch (error) {
      if (error instanceof SubscriptionRefusedError || options.signal?.aborted) throw error;
      reason = error;
    } finally {
      await client.dispose();
    }
    if (options.signal?.aborted) return;
    const overflowed = reason instanceof SubscriptionRefusedError;
    if (!overflowed && ++failures > maxRetries) throw reason;
    options.onReconnect?.({ attempt: failures, after, reason });
    if (!overflowed)
      await sleep(Math.min(maxDelay, baseDelay * 2 ** Math.max(0, failures - 1)), options.signal);
  }
}

async function createTransport(
  transport: 'ws' | 'sse',
  options: ResumableSubscriptionOptions,
): Promise<TransportClient> {
  if (transport === 'ws') {
    const { createClient } = await import('graphql-ws');
    return createClient({
      url: options.url,
      // One connection per attempt, never retried by the client itself: this helper resumes.
      retryAttempts: 0,
      lazy: true,
      ...(options.webSocketImpl ? { webSocketImpl: options.webSocketImpl } : {}),
      ...(options.authorization ? { connectionParams: { authorization: options.authorization } } : {}),
    }) as unknown as TransportClient;
  }
  const { createClient } = await import('graphql-sse');
  return createClient({
    url: options.url,
    retryAttempts: 0,
    headers: {
      ...options.headers,
      ...(options.authorization ? { authorization: options.authorization } : {}),
    },
    ...(options.fetchFn ? { fetchFn: options.fetchFn } : {}),
  }) as unknown as TransportClient;
}

/** A sink-based subscription as an async iterator that ends on complete and throws on error. */
async function* iterate(
  client: TransportClient,
  payload: { query: string; variables: Record<string, unknown> },
  signal: AbortSignal | undefined,
): AsyncGenerator<{ data?: Record<string, unknown> | null; errors?: readonly GraphQLErrorLike[] }> {
  const queue: { data?: Record<string, unknown> | null; errors?: readonly GraphQLErrorLike[] }[] = [];
  let done = false;
  let failure: { error: unknown } | undefined;
  let wake: (() => void) | undefined;
  const unsubscribe = client.subscribe(payload, {
    next: (value) => {
      queue.push(value);
      wake?.();
    },
    error: (error) => {
      failure = { error };
      wake?.();
    },
    complete: () => {
      done = true;
      wake?.();
    },
  });
  const onAbort = () => wake?.();
  signal?.addEventListener('abort', onAbort);
  try {
    for (;;) {
      const next = queue.shift();
      if (next) {
        yield next;
        continue;
      }
      if (failure) throw failure.error;
      if (done || signal?.aborted) return;
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      wake = undefined;
    }
  } finally {
    signal?.removeEventListener('abort', onAbort);
    unsubscribe();
  }
}
