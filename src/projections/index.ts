// Projections: definitions, the runner, view tables, status, rebuild and replay.
export { type Clock, createVirtualClock, systemClock, type VirtualClock } from './clock.js';
export {
  type DeadLetter,
  discardDeadLetters,
  listDeadLetters,
  type RetryOutcome,
  retryDeadLetters,
} from './deadLetters.js';
export {
  type AnyView,
  type BatchTransaction,
  defineProjection,
  type FailurePolicy,
  type HandlerContext,
  type Projection,
  type ProjectionDefinition,
  projectionOfView,
  type ReplaySafety,
  type RetryPolicy,
  type Row,
  type RowFor,
  type ViewContext,
  validateProjections,
} from './defineProjection.js';
export {
  ProjectionDefinitionChangedError,
  ProjectionErrorCodes,
  ProjectionFailedError,
  ProjectionHandlerError,
  ReplayNotSafeError,
} from './errors.js';
export {
  type Progress,
  type RebuildOptions,
  type RebuildResult,
  rebuildProjection,
  shadowSchema,
} from './rebuild.js';
export { ensureViewTables, type RegistrationStatus } from './registry.js';
export { positionAtTime, type ReplayOptions, type ReplayResult, replayProjection } from './replay.js';
export {
  type RunnerOptions,
  type StartWorkersOptions,
  startWorkers,
  type WorkerState,
  type WorkerStatus,
  type Workers,
} from './startWorkers.js';
export { getProjectionStatuses, type ProjectionStatus } from './status.js';
export {
  COLUMN_TYPES,
  type ColumnDefinition,
  type ColumnType,
  type ColumnValues,
  DEFAULT_VIEW_SCHEMA,
  defineView,
  type IndexDefinition,
  type RowOf,
  SQL_TYPES,
  type ViewDefinition,
} from './view.js';
export { VIEW_CHANGES_CHANNEL } from './viewChanges.js';
export { viewsFingerprint, viewTableStatements } from './viewTables.js';
export {
  type AccumulationMode,
  type Aggregate,
  aggregates,
  type Duration,
  defineAggregate,
  defineWindowedAggregate,
  type FiringSpec,
  GLOBAL_WINDOW,
  type Pane,
  type PaneTiming,
  type TriggerSpec,
  triggers,
  type WatermarkSpec,
  type Window,
  type WindowedAggregate,
  type WindowedAggregateOptions,
  type WindowSpec,
  watermarks,
  windows,
} from './windows/index.js';
