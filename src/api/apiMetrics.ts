import type { Pool } from '../db/index.js';
import type { Metrics } from '../observability/index.js';
import type { ChangeTailer } from '../projections/index.js';
import type { StatusProvider } from './status.js';

/**
 * What the API records beside what its Yoga plugins count (`observeOperations`,
 * `measureRequests`): the lag of projections and sources, its pool, the changelog's
 * listeners, and the requests answered or refused before Yoga sees them.
 */
export interface ApiMetrics {
  /** Told of each query answered by a compiled read (status 200 or 304). */
  served(served: { method: string; status: number; seconds: number; operation: string | undefined }): void;
  /** Told of each request refused before GraphQL saw it. */
  refused(status: number, seconds: number, method: string): void;
  /** Stops watching the lag, the pool and the listeners. */
  stop(): void;
}

export function observeApi(
  metrics: Metrics,
  watched: { status: StatusProvider; pool: Pool; tailer: Pick<ChangeTailer, 'listeners'> },
): ApiMetrics {
  const unobserve = [
    metrics.watchLag(watched.status),
    metrics.trackPool('api', watched.pool),
    metrics.observe(
      'tributary_api_changelog_listeners',
      'Subscriptions listening to the changelog reader.',
      () => watched.tailer.listeners,
    ),
  ];
  return {
    served({ method, status, seconds, operation }) {
      metrics.httpRequest({ method: method.toUpperCase(), status: String(status) }, seconds);
      metrics.graphqlOperation({ operation, type: 'query', outcome: 'ok' }, seconds);
    },
    refused(status, seconds, method) {
      metrics.httpRequest({ method, status: String(status) }, seconds);
    },
    stop() {
      for (const stop of unobserve) stop();
    },
  };
}
