// Sinks: search indexes kept in step with views, from the changelog.

export {
  createBackend,
  createElasticBackend,
  createMeilisearchBackend,
  createPostgresBackend,
  createTypesenseBackend,
  DEFAULT_SEARCH_SCHEMA,
  meiliId,
} from './backends/index.js';
export { openViewSnapshot, pastSnapshot, type ViewSnapshot } from './backfill.js';
export { buildDocument, changeOps, documentId, rowOp, splitByBytes } from './documents.js';
export { resolveSinks } from './resolveSinks.js';
export { BackendRetryError, parseRetryAfter, retryDelayMs } from './retry.js';
export type { SinkBuildProgress, SinkState, SinkWorkerStatus } from './runSink.js';
export { type SearchArgs, type SearchHit, type SearchPage, searchPostgres } from './searchPostgres.js';
export {
  listSinkDeadLetters,
  loadSinks,
  oldestSinkPosition,
  requestSink,
  type SinkDeadLetter,
  type SinkRow,
} from './sinkState.js';
export { type SinkWorkers, type StartSinksOptions, startSinks } from './startSinks.js';
export { getSinkStatuses, readSinkMetrics, type SinkFigures, type SinkStatus } from './status.js';
export type * from './types.js';
export { waitForSink } from './waitForSink.js';
