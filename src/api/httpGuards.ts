import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { Socket } from 'node:net';
import { ConfigError } from '../errors.js';

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

/**
 * Answers with a GraphQL error and no further work. The connection is closed when the
 * request's body was not read, so no unread bytes are taken for the next request.
 */
export function refuse(
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
  if (closeConnection) res.once('finish', () => res.socket?.destroy());
}
