import { inSpan, type Metrics } from '../observability/index.js';
import type { BatchResult } from './runBatch.js';

/**
 * Runs one batch of a projection in an OpenTelemetry span (`tributary.projection.batch`) and
 * records its duration, its commit's and the events it applied in the process's metrics.
 */
export function observeBatch(
  projection: string,
  metrics: Metrics | undefined,
  run: () => Promise<BatchResult>,
): Promise<BatchResult> {
  return inSpan('tributary.projection.batch', { 'tributary.projection': projection }, async (span) => {
    const startedAt = performance.now();
    const result = await run();
    const seconds = (performance.now() - startedAt) / 1000;
    if (result.kind === 'lost') {
      span.setAttribute('tributary.batch.lost', true);
      return result;
    }
    span.setAttributes({
      'tributary.batch.read': result.read,
      'tributary.batch.applied': result.applied,
      'tributary.batch.committed': result.committed,
      'tributary.position': result.position,
    });
    // An idle poll that committed nothing is no batch.
    if (result.committed || result.read > 0) {
      metrics?.projectionBatch(projection, {
        seconds,
        commitSeconds: result.commitSeconds,
        events: result.applied,
        committed: result.committed,
      });
    }
    return result;
  });
}
