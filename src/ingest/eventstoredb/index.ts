export {
  type EventStoreDbRunOptions,
  type LiveEventStoreDbStatus,
  positionText,
  runEventStoreDbSource,
} from './captureEventStoreDb.js';
export { createClientFeed } from './clientFeed.js';
export { EsdbCheckpointError, EventStoreDbErrorCodes, EventStoreDbSourceError } from './errors.js';
export { eventStoreDbStatus, forgetEventStoreDbSource } from './eventStoreDbStatus.js';
export {
  compareEsdbPositions,
  type EsdbFeed,
  type EsdbRecordedEvent,
  type EsdbSubscription,
  type ServerFilter,
} from './feed.js';
export { type MappedEvent, mapEvent, rejectedStream, serverFilter } from './mapEvent.js';
export { resolveEventStoreDbSources } from './resolveEventStoreDbSources.js';
export type * from './types.js';
