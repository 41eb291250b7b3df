import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { Socket } from 'node:net';
import { ConfigError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Authenticator, Identity } from './auth.js';

/** Connection limits and timeouts of the HTTP server (which also carries the WebSockets). */
export interface ConnectionLimits {
  /** Open connections in all. @default 10_000 */
  maxConnections?: number;
  /** Open connections from one client address (0: no limit). @default 500 */
  maxConnectionsPerAddress?: number;
  /** Time for a client to send its request headers. @default 10_000 */
  headersTimeoutMs?: number;
  /** Time for a client to send its whole request, body included. @default 30_000 */
  requestTimeoutMs?: number;
  /** An idle keep-alive connection is closed after this. @default 5_000 */
  keepAliveTimeoutMs?: number;
}

/**
 * An HTTP server with connection caps and timeouts: every connection costs bounded resources
 * before it has said anything, and no client holds more than its share of them.
 */
export function createLimitedServer(
  handle: (req: IncomingMessage, res: ServerResponse) => void,
  limits: ConnectionLimits = {},
): Server {
  const headersTimeout = limits.headersTimeoutMs ?? 10_000;
  const requestTimeout = limits.requestTimeoutMs ?? Math.max(30_000, headersTimeout);
  if (requestTimeout < headersTimeout) {
    throw new ConfigError(
      `api.limits.requestTimeoutMs (${requestTimeout}) is shorter than headersTimeoutMs (${headersTimeout}).`,
      { hint: 'The whole request cannot take less time than its headers: raise requestTimeoutMs.' },
    );
  }
  const server = createServer(
    {
      headersTimeout,
      requestTimeout,
      keepAliveTimeout: limits.keepAliveTimeoutMs ?? 5_000,
      // Node checks the two timeouts above only this often (30 s by default).
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(headersTimeout / 4))),
    },
    handle,
  );
  server.maxConnections = limits.maxConnections ?? 10_000;
  const perAddress = limits.maxConnectionsPerAddress ?? 500;
  if (perAddress <= 0) return server;
  const open = new Map<string, number>();
  server.on('connection', (socket: Socket) => {
    const address = socket.remoteAddress ?? 'unknown';
    const count = (open.get(address) ?? 0) + 1;
    if (count > perAddress) {
      socket.destroy();
      return;
    }
    open.set(address, count);
    socket.once('close', () => {
      const left = (open.get(address) ?? 1) - 1;
      if (left <= 0) open.delete(address);
      else open.set(address, left);
    });
  });
  return server;
}

/** The credentials a request carries: `Authorization` (Bearer) or `X-API-Key`. */
export function credentialsOf(
  headers: IncomingHttpHeaders | { get(name: string): string | null },
): string | undefined {
  const get = (name: string) => {
    // Fetch-style headers (of whichever Fetch implementation) or Node's header object.
    const value =
      typeof headers.get === 'function' ? headers.get(name) : (headers as IncomingHttpHeaders)[name];
    return Array.isArray(value) ? value[0] : (value ?? undefined);
  };
  return get('authorization') ?? get('x-api-key');
}

/**
 * Reads a request body of at most `maxBytes`, however it is framed (Content-Length or
 * chunked); undefined when it is larger, after reading no more than `maxBytes` of it.
 */
export function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        cleanup();
        req.pause();
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (error: Error) => {
      cleanup();
      reject(error);
    };
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

/** How long a refused request's unread body is drained (and dropped) before its connection closes. */
const LINGER_MS = 1000;

/**
 * Answers with a GraphQL error and no further work. When the request's body was not read,
 * the connection is closed after the answer: for a moment what the client still sends is
 * read and dropped (closing a socket with unread data would reset it, and a reset can
 * destroy the answer before the client reads it), then the socket goes.
 */
export function refuse(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  error: { code: string; message: string; hint?: string },
  closeConnection: boolean,
): void {
  const { code, message, hint } = error;
  const body = JSON.stringify({ errors: [{ message, extensions: hint ? { code, hint } : { code } }] });
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    ...(closeConnection ? { connection: 'close' } : {}),
    ...(status === 401 ? { 'www-authenticate': 'Bearer' } : {}),
  });
  res.end(body);
  if (!closeConnection) return;
  res.once('finish', () => {
    const socket = res.socket ?? req.socket;
    req.resume();
    setTimeout(() => socket.destroy(), LINGER_MS).unref();
  });
}

const AUTH_HINT =
  'Send `Authorization: Bearer <API key or JWT>` (over WebSocket: the `authorization` connection parameter).';

export interface RequestHandlerOptions {
  /** Serves what passes the guards. */
  yoga: { handle(req: IncomingMessage, res: ServerResponse): unknown };
  /** The GraphQL path; other paths (health, metrics) go straight to `yoga`. */
  path: string;
  authenticate: Authenticator;
  maxBodyBytes: number;
  /** Whether GraphiQL is served: its page is the one thing served without credentials. */
  graphiql: boolean;
  /**
   * Serves a GraphQL request before Yoga when it can (compiledReads.ts): true when it answered.
   * Given the request's identity and its body, read already.
   */
  serveFirst?: (
    req: IncomingMessage,
    res: ServerResponse,
    identity: Identity,
    body: Buffer | undefined,
  ) => Promise<boolean>;
  /** Told of each request refused here. */
  onRefused: (status: number, seconds: number, method: string) => void;
  logger: Logger;
}

/**
 * The Node request handler, and what it does before GraphQL sees a request: its credentials
 * are checked from its headers (an unauthenticated request costs no more than its headers),
 * and its body is read up to maxBodyBytes however it is framed. `identityOf` gives the
 * identity it found, for the GraphQL context.
 */
export function createRequestHandler(options: RequestHandlerOptions): {
  handle: (req: IncomingMessage, res: ServerResponse) => void;
  identityOf: (req: IncomingMessage) => Identity | undefined;
} {
  const { yoga, path, authenticate, maxBodyBytes } = options;
  const identities = new WeakMap<IncomingMessage, Identity>();
  const serve = async (req: IncomingMessage, res: ServerResponse) => {
    const startedAt = performance.now();
    const pathname = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (pathname !== path || req.method === 'OPTIONS') return yoga.handle(req, res);
    const reject = (status: number, error: Parameters<typeof refuse>[3], close: boolean) => {
      refuse(req, res, status, error, close);
      options.onRefused(status, (performance.now() - startedAt) / 1000, req.method ?? 'GET');
    };
    const identity = await authenticate(credentialsOf(req.headers));
    const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
    const page = options.graphiql && req.method === 'GET' && (req.headers.accept ?? '').includes('text/html');
    if (!identity.principal && !identity.open && !page) {
      const message = identity.error ?? 'Authentication required.';
      return reject(401, { code: 'UNAUTHENTICATED', message, hint: AUTH_HINT }, hasBody);
    }
    let read: Buffer | undefined;
    if (hasBody) {
      const tooLarge = { code: 'PAYLOAD_TOO_LARGE', message: `Request body exceeds ${maxBodyBytes} bytes.` };
      if (Number(req.headers['content-length'] ?? 0) > maxBodyBytes) return reject(413, tooLarge, true);
      const body = await readBody(req, maxBodyBytes);
      if (body === undefined) return reject(413, tooLarge, true);
      read = body;
      // Yoga's Node adapter takes a body already read from `req.body`, as an async iterable:
      // given a Buffer there, it would list the Buffer's keys, one per byte.
      (req as IncomingMessage & { body?: unknown }).body = {
        bytes: body.length,
        async *[Symbol.asyncIterator]() {
          yield body;
        },
      };
    }
    if (options.serveFirst && (await options.serveFirst(req, res, identity, read))) return;
    identities.set(req, identity);
    return yoga.handle(req, res);
  };
  return {
    handle: (req, res) => {
      serve(req, res).catch((error: unknown) => {
        options.logger.warn('request failed before GraphQL', { error });
        if (!res.headersSent)
          refuse(req, res, 400, { code: 'BAD_REQUEST', message: 'The request could not be read.' }, true);
        else res.destroy();
      });
    },
    identityOf: (req) => identities.get(req),
  };
}
