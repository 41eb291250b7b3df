// The changelog (tributary.view_changes): every net change of a view, per key and batch, in
// the order of the visibility rule. Written by the runner and rebuilds, in their
// transactions; read, tailed and pruned for subscriptions (and sinks). This folder is its
// one owner: everything else goes through these functions.

export {
  type ChangeListener,
  type ChangeTailer,
  type ChangeTailerOptions,
  createChangeTailer,
} from './changeTailer.js';
export { NOTIFY_AFTER_COMMIT_SETTING, VIEW_CHANGES_CHANNEL } from './channel.js';
export {
  type ChangeCursor,
  type ChangeCursorParts,
  changeCursor,
  isChangeCursor,
  parseChangeCursor,
} from './cursor.js';
export {
  type ChangeOp,
  type ReadChangesOptions,
  type ReadChangesResult,
  readChanges,
  type ViewChange,
} from './readChanges.js';
export {
  assertCursorRetained,
  assertResumableCursor,
  CURSOR_EXPIRED,
  CursorExpiredError,
  pruneChanges,
  startPruning,
} from './retention.js';
export { changeTime, lastVisibleChange, lastVisibleSeq, type ViewLag, viewLag } from './viewProgress.js';
export {
  appendChanges,
  appendResets,
  CHANGES_PER_ROW,
  changeEntry,
  changeLine,
  packedChangeLines,
} from './writeChanges.js';
