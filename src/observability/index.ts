export {
  createMetrics,
  type LagProvider,
  type Metrics,
  type MetricsOptions,
  type OperationOutcome,
  type PoolUsage,
} from './metrics.js';
export {
  registerSinkMetrics,
  type SinkLag,
  type SinkMetrics,
  type SinkMetricsOptions,
} from './sinkMetrics.js';
export { failSpan, inSpan, recordSpan, tracer } from './tracing.js';
