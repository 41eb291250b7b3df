import type { Plugin } from 'graphql-yoga';
import type { Metrics } from '../observability/index.js';
import type { Authenticator } from './auth.js';
import { credentialsOf } from './httpGuards.js';

export type OperationalEndpoint = 'healthz' | 'readyz' | 'metrics';

const ENDPOINTS = new Map<string, OperationalEndpoint>([
  ['/healthz', 'healthz'],
  ['/readyz', 'readyz'],
  ['/metrics', 'metrics'],
]);

export interface OperationalOptions {
  publicEndpoints: readonly OperationalEndpoint[];
  authenticate: Authenticator;
  /** Resolves when the process is ready to serve, rejects (or throws) when it is not. */
  ready: () => Promise<void>;
  metrics: Metrics;
}

/**
 * /healthz (the process serves), /readyz (ready: what that means is the caller's) and
 * /metrics (Prometheus). Those not listed as public need a credential with the `metrics` (or
 * `admin`) scope. Undefined for any other path.
 */
export function operationalResponder(
  options: OperationalOptions,
): (
  request: Request,
  pathname: string,
  fetchAPI?: { Response: typeof Response },
) => Promise<Response | undefined> {
  const open = new Set(options.publicEndpoints);
  const mayRead = async (endpoint: OperationalEndpoint, request: Request) => {
    if (open.has(endpoint)) return true;
    const { principal } = await options.authenticate(credentialsOf(request.headers));
    return principal !== null && (principal.scopes.has('metrics') || principal.scopes.has('admin'));
  };
  return async (request, pathname, { Response } = globalThis) => {
    const endpoint = ENDPOINTS.get(pathname);
    if (!endpoint) return undefined;
    if (!(await mayRead(endpoint, request))) {
      return Response.json(
        {
          errors: [
            {
              message: `${pathname} needs a credential with the metrics scope.`,
              extensions: { code: 'UNAUTHENTICATED' },
            },
          ],
        },
        { status: 401, headers: { 'www-authenticate': 'Bearer' } },
      );
    }
    if (endpoint === 'healthz') return new Response('ok\n', { status: 200 });
    if (endpoint === 'readyz') {
      const ok = await Promise.resolve()
        .then(options.ready)
        .then(
          () => true,
          () => false,
        );
      return new Response(ok ? 'ready\n' : 'not ready\n', { status: ok ? 200 : 503 });
    }
    return new Response(await options.metrics.render(), {
      headers: { 'content-type': options.metrics.contentType },
    });
  };
}

/** The operational endpoints inside the GraphQL server (see `operationalResponder`). */
export function operationalEndpoints(options: OperationalOptions): Plugin {
  const respond = operationalResponder(options);
  return {
    async onRequest({ request, url, endResponse, fetchAPI }) {
      const response = await respond(request, url.pathname, fetchAPI);
      if (response) endResponse(response);
    },
  };
}

/** Refuses a declared body above the limit (requests served by `handle` are also held to it while read). */
export function declaredBodyLimit(maxBodyBytes: number): Plugin {
  return {
    onRequest({ request, endResponse, fetchAPI }) {
      if (Number(request.headers.get('content-length') ?? 0) <= maxBodyBytes) return;
      endResponse(
        fetchAPI.Response.json(
          {
            errors: [
              {
                message: `Request body exceeds ${maxBodyBytes} bytes.`,
                extensions: { code: 'PAYLOAD_TOO_LARGE' },
              },
            ],
          },
          { status: 413 },
        ),
      );
    },
  };
}

/** Records each HTTP request to the GraphQL path: its method, status and duration. */
export function measureRequests(metrics: Metrics, path: string): Plugin {
  return {
    onRequest({ serverContext }) {
      (serverContext as { startedAt?: number }).startedAt = performance.now();
    },
    onResponse({ response, serverContext, request }) {
      if (new URL(request.url).pathname !== path) return;
      const startedAt = (serverContext as { startedAt?: number }).startedAt;
      if (startedAt === undefined) return;
      metrics.httpRequest(
        { method: request.method, status: String(response.status) },
        (performance.now() - startedAt) / 1000,
      );
    },
  };
}
