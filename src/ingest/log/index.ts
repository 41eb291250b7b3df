export { appendToStream } from './appendToStream.js';
export { type AppendToStreamsResult, appendToStreams, type StreamEvent } from './appendToStreams.js';
export { copyToStream, openStreamCopy, type StreamCopy } from './copyToStream.js';
export { ENVELOPE_COLUMNS, type EventRow, toEnvelope } from './envelope.js';
export { createNotifier, EVENTS_CHANNEL, type Notifier } from './notifier.js';
export {
  ensurePartitionIndex,
  type LogPartition,
  MAX_PARTITIONS,
  PARTITION_BUCKETS,
  PARTITION_INDEX,
  partitionBranches,
  partitionBucket,
  partitionCondition,
  partitionIndexState,
  partitionOf,
  type ReadPartitionOptions,
  readPartition,
  validatePartition,
} from './partitions.js';
export {
  comparePositions,
  formatPosition,
  isPosition,
  maxPosition,
  type Position,
  type PositionParts,
  parsePosition,
  START,
} from './position.js';
export { createPostgresEventStore, type PostgresEventStoreOptions } from './postgresEventStore.js';
export { readAll, readHead } from './readAll.js';
export { readStream } from './readStream.js';
export { subscribe } from './subscribe.js';
export type * from './types.js';
export {
  type LimitOptions,
  type PreparedEvent,
  prepareEvents,
  validateExpectedVersion,
  validateStreamId,
} from './validation.js';
export {
  readVisible,
  type TailOptions,
  tailVisible,
  type VisibleRead,
  type VisibleTable,
} from './visible.js';
export { createWakeUp, type WakeUp } from './wakeSubscribers.js';
