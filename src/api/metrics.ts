import type { StatusProvider } from './status.js';

const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export interface ApiMetrics {
  /** Records one finished HTTP request. */
  request(labels: { operation: string; status: string }, seconds: number): void;
  subscriptionStarted(view: string): () => void;
  /** Prometheus text exposition (version 0.0.4). */
  render(): Promise<string>;
}

/** In-process metrics, rendered by hand in the Prometheus text format. */
export function createApiMetrics(status: StatusProvider, extra?: () => Record<string, number>): ApiMetrics {
  const requests = new Map<string, number>();
  const histograms = new Map<string, { buckets: number[]; sum: number; count: number }>();
  const subscriptions = new Map<string, number>();

  return {
    request(labels, seconds) {
      const key = `operation="${escapeLabel(labels.operation)}",status="${escapeLabel(labels.status)}"`;
      requests.set(key, (requests.get(key) ?? 0) + 1);
      const opKey = `operation="${escapeLabel(labels.operation)}"`;
      let histogram = histograms.get(opKey);
      if (!histogram) {
        histogram = { buckets: BUCKETS.map(() => 0), sum: 0, count: 0 };
        histograms.set(opKey, histogram);
      }
      BUCKETS.forEach((bound, i) => {
        if (seconds <= bound) histogram.buckets[i]!++;
      });
      histogram.sum += seconds;
      histogram.count++;
    },
    subscriptionStarted(view) {
      subscriptions.set(view, (subscriptions.get(view) ?? 0) + 1);
      let ended = false;
      return () => {
        if (ended) return;
        ended = true;
        subscriptions.set(view, (subscriptions.get(view) ?? 1) - 1);
      };
    },
    async render() {
      const lines: string[] = [];
      lines.push('# HELP tributary_api_requests_total GraphQL HTTP requests by operation type and status.');
      lines.push('# TYPE tributary_api_requests_total counter');
      for (const [labels, value] of requests) lines.push(`tributary_api_requests_total{${labels}} ${value}`);
      lines.push('# HELP tributary_api_request_duration_seconds GraphQL HTTP request latency.');
      lines.push('# TYPE tributary_api_request_duration_seconds histogram');
      for (const [labels, h] of histograms) {
        BUCKETS.forEach((bound, i) => {
          lines.push(
            `tributary_api_request_duration_seconds_bucket{${labels},le="${bound}"} ${h.buckets[i]}`,
          );
        });
        lines.push(`tributary_api_request_duration_seconds_bucket{${labels},le="+Inf"} ${h.count}`);
        lines.push(`tributary_api_request_duration_seconds_sum{${labels}} ${h.sum}`);
        lines.push(`tributary_api_request_duration_seconds_count{${labels}} ${h.count}`);
      }
      lines.push('# HELP tributary_api_subscriptions Open view subscriptions.');
      lines.push('# TYPE tributary_api_subscriptions gauge');
      for (const [view, value] of subscriptions)
        lines.push(`tributary_api_subscriptions{view="${escapeLabel(view)}"} ${value}`);
      const [projections, sources] = await Promise.all([
        status.projections().catch(() => []),
        status.sources().catch(() => []),
      ]);
      lines.push(
        '# HELP tributary_projection_lag_seconds Age of the oldest log event a projection has not applied.',
      );
      lines.push('# TYPE tributary_projection_lag_seconds gauge');
      for (const p of projections) {
        lines.push(`tributary_projection_lag_seconds{projection="${escapeLabel(p.name)}"} ${p.lagSeconds}`);
      }
      lines.push('# HELP tributary_projection_lag_events Log events a projection has not applied yet.');
      lines.push('# TYPE tributary_projection_lag_events gauge');
      for (const p of projections) {
        lines.push(`tributary_projection_lag_events{projection="${escapeLabel(p.name)}"} ${p.lagEvents}`);
      }
      lines.push(
        '# HELP tributary_cdc_lag_seconds How far a change data capture source is behind its database.',
      );
      lines.push('# TYPE tributary_cdc_lag_seconds gauge');
      for (const s of sources) {
        if (s.lagSeconds !== null)
          lines.push(`tributary_cdc_lag_seconds{source="${escapeLabel(s.source)}"} ${s.lagSeconds}`);
      }
      lines.push(
        '# HELP tributary_cdc_lag_bytes WAL bytes a change data capture source has not yet put in the log.',
      );
      lines.push('# TYPE tributary_cdc_lag_bytes gauge');
      for (const s of sources) {
        if (s.lagBytes !== null)
          lines.push(`tributary_cdc_lag_bytes{source="${escapeLabel(s.source)}"} ${s.lagBytes}`);
      }
      for (const [name, value] of Object.entries(extra?.() ?? {})) {
        lines.push(`# TYPE ${name} gauge`, `${name} ${value}`);
      }
      return `${lines.join('\n')}\n`;
    },
  };
}

function escapeLabel(value: string): string {
  return value.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('\n', '\\n');
}
