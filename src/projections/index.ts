// Projections: definitions, the runner, view tables, status, rebuild and replay.

export {
  assertCursorRetained,
  assertResumableCursor,
  type ChangeListener,
  type ChangeOp,
  type ChangeTailer,
  type ChangeTailerOptions,
  CURSOR_EXPIRED,
  CursorExpiredError,
  createChangeTailer,
  pruneChanges,
  type ReadChangesResult,
  readChanges,
  VIEW_CHANGES_CHANNEL,
  type ViewChange,
} from './changelog/index.js';
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
  type RowInputFor,
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
export type { KeyedState } from './keyedState.js';
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
export {
  getProjectionStatuses,
  type ProjectionStatus,
  READ_YOUR_WRITES_TIMEOUT,
  waitForProjections,
} from './status.js';
export {
  CANONICAL_TIMESTAMP,
  type CanonicalValue,
  canonicalSelectList,
  canonicalSql,
  canonicalTimestamp,
  checkedText,
  compareBigint,
  compareNumeric,
  jsonbContains,
  jsonbEqual,
  toCanonical,
  ValueTypeError,
} from './values.js';
export {
  COLUMN_TYPES,
  type ColumnDefinition,
  type ColumnInputs,
  type ColumnType,
  type ColumnValues,
  DEFAULT_VIEW_SCHEMA,
  defineView,
  type IndexDefinition,
  type RowOf,
  SQL_TYPES,
  type ViewDefinition,
} from './view.js';
export { viewsFingerprint, viewTableStatements } from './viewTables.js';
export {
  type AccumulationMode,
  type Aggregate,
  aggregates,
  type ClosingBehavior,
  type Duration,
  defineAggregate,
  defineWindowedAggregate,
  type FiringSpec,
  GLOBAL_WINDOW,
  type Pane,
  type PaneTiming,
  type ProcessingTimeTrigger,
  type TriggerSpec,
  triggers,
  type WatermarkSpec,
  type WatermarkTrigger,
  type Window,
  type WindowedAggregate,
  type WindowedAggregateOptions,
  type WindowSpec,
  watermarks,
  windows,
} from './windows/index.js';
