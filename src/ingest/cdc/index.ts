export { type CdcStatusOptions, cdcStatus } from './cdcStatus.js';
export { type DropResult, dropSource } from './dropSource.js';
export {
  CdcErrorCodes,
  CdcSourceError,
  isPermanentCaptureError,
  isSlotLostError,
  SlotLostError,
  SlotMismatchError,
} from './errors.js';
export {
  cancelSnapshots,
  findSource,
  type IncrementalProgress,
  type IncrementalSnapshotState,
  type IncrementalSnapshotStatus,
  readSnapshotStatuses,
  requestSnapshots,
} from './incrementalSnapshots.js';
export { resolveSources, SOURCE_KINDS, sourceKind } from './resolveSources.js';
export { type Capture, type CaptureOptions, type LiveSourceStatus, startCapture } from './startCapture.js';
export type { StreamTuning } from './streamChanges.js';
export type * from './types.js';
