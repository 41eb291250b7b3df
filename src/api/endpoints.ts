import type { Plugin } from 'graphql-yoga';
import type { Authenticator } from './auth.js';
import { credentialsOf } from './httpGuards.js';
import type { ApiMetrics } from './metrics.js';

export type OperationalEndpoint = 'healthz' | 'readyz' | 'metrics';

const ENDPOINTS = new Map<string, OperationalEndpoint>([
  ['/healthz', 'healthz'],
  ['/readyz', 'readyz'],
  ['/metrics', 'metrics'],
]);

/**
 * /healthz (the process serves), /readyz (the database answers and the changelog reader
 * started) and /metrics (Prometheus). Those not listed as public need a credential with the
 * `metrics` (or `admin`) scope.
 */
export function operationalEndpoints(options: {
  publicEndpoints: readonly OperationalEndpoint[];
  authenticate: Authenticator;
  ready: () => Promise<void>;
  metrics: ApiMetrics;
}): Plugin {
  const open = new Set(options.publicEndpoints);
  const mayRead = async (endpoint: OperationalEndpoint, request: Request) => {
    if (open.has(endpoint)) return true;
    const { principal } = await options.authenticate(credentialsOf(request.headers));
    return principal !== null && (principal.scopes.has('metrics') || principal.scopes.has('admin'));
  };
  return {
    async onRequest({ request, url, endResponse, fetchAPI }) {
      const endpoint = ENDPOINTS.get(url.pathname);
      if (!endpoint) return;
      if (!(await mayRead(endpoint, request))) {
        endResponse(
          fetchAPI.Response.json(
            {
              errors: [
                {
                  message: `${url.pathname} needs a credential with the metrics scope.`,
                  extensions: { code: 'UNAUTHENTICATED' },
                },
              ],
            },
            { status: 401, headers: { 'www-authenticate': 'Bearer' } },
          ),
        );
      } else if (endpoint === 'healthz') {
        endResponse(new fetchAPI.Response('ok\n', { status: 200 }));
      } else if (endpoint === 'readyz') {
        const ok = await options.ready().then(
          () => true,
          () => false,
        );
        endResponse(new fetchAPI.Response(ok ? 'ready\n' : 'not ready\n', { status: ok ? 200 : 503 }));
      } else {
        endResponse(
          new fetchAPI.Response(await options.metrics.render(), {
            headers: { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' },
          }),
        );
      }
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

/** Records each GraphQL request's outcome and duration in the API metrics. */
export function measureRequests(metrics: ApiMetrics, path: string): Plugin {
  return {
    onRequest({ serverContext }) {
      (serverContext as { startedAt?: number }).startedAt = performance.now();
    },
    onResponse({ response, serverContext, request }) {
      if (new URL(request.url).pathname !== path) return;
      const startedAt = (serverContext as { startedAt?: number }).startedAt;
      if (startedAt === undefined) return;
      const streaming = response.headers.get('content-type')?.includes('text/event-stream') ?? false;
      metrics.request(
        {
          operation: streaming ? 'subscription' : request.method === 'GET' ? 'get' : 'post',
          status: String(response.status),
        },
        (performance.now() - startedAt) / 1000,
      );
    },
  };
}
