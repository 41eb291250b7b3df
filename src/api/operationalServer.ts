import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Metrics } from '../observability/index.js';
import type { AuthConfig } from './apiConfig.js';
import { createAuthenticator } from './auth.js';
import { type OperationalEndpoint, operationalResponder } from './endpoints.js';
import { createLimitedServer } from './httpGuards.js';

export interface OperationalServerOptions {
  metrics: Metrics;
  /** What `/readyz` waits for: resolves when the process is ready, rejects when it is not. */
  ready: () => Promise<void>;
  /** Who may read what is not public, as for the API. Without it, every endpoint is public. */
  auth?: AuthConfig;
  /** @default ['healthz', 'readyz'] (every endpoint when there is no `auth`) */
  publicEndpoints?: readonly OperationalEndpoint[];
  /** @default 9464 */
  port?: number;
  /** @default '127.0.0.1' */
  host?: string;
}

export interface OperationalServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

/**
 * `/healthz`, `/readyz` and `/metrics` on a port of their own, for a process that serves no
 * GraphQL API (`tributary start --no-api`, `tributary cdc run`, or workers in your own
 * process). The same rules as the API's endpoints apply.
 */
export async function serveOperationalEndpoints(
  options: OperationalServerOptions,
): Promise<OperationalServer> {
  const authenticate = await createAuthenticator(options.auth ?? { open: true });
  const respond = operationalResponder({
    publicEndpoints: options.auth
      ? (options.publicEndpoints ?? ['healthz', 'readyz'])
      : ['healthz', 'readyz', 'metrics'],
    authenticate,
    ready: options.ready,
    metrics: options.metrics,
  });
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const headers = new Headers();
    for (const [name, value] of Object.entries(req.headers)) {
      if (typeof value === 'string') headers.set(name, value);
    }
    const request = new Request(url, { method: req.method ?? 'GET', headers });
    (req.method === 'GET' || req.method === 'HEAD'
      ? respond(request, url.pathname)
      : Promise.resolve(new Response('method not allowed\n', { status: 405 }))
    )
      .then(async (response) => {
        const answer = response ?? new Response('not found\n', { status: 404 });
        const body = Buffer.from(await answer.arrayBuffer());
        res.writeHead(answer.status, {
          ...Object.fromEntries(answer.headers),
          'content-length': body.length,
        });
        res.end(req.method === 'HEAD' ? undefined : body);
      })
      .catch(() => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end('error\n');
      });
  };
  const server = createLimitedServer(handle, { maxConnectionsPerAddress: 100 });
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 9464, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const shownHost = host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host;
  return {
    url: `http://${shownHost}:${port}`,
    port,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
