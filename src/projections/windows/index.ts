export { type Aggregate, aggregates, defineAggregate } from './aggregates.js';
export { type Decimal, decimalToJson, formatDecimal, parseDecimal } from './decimal.js';
export {
  defineWindowedAggregate,
  type PanesView,
  type ResultsView,
  type WindowedAggregate,
  type WindowedAggregateOptions,
} from './defineWindowedAggregate.js';
export { type Duration, toMillis } from './duration.js';
export { createWindowEngine, type EngineConfig, type WindowEngine, type WindowState } from './engine.js';
export {
  runWindowStep,
  type WindowInput,
  type WindowStepOptions,
  type WindowStepResult,
} from './runWindowStep.js';
export {
  type FiringSpec,
  type ProcessingTimeStep,
  type ProcessingTimeTrigger,
  type TriggerSpec,
  triggers,
  type WatermarkTrigger,
} from './triggers.js';
export type * from './types.js';
export { MAX_WATERMARK, MIN_WATERMARK, type WatermarkSpec, watermarks } from './watermarks.js';
export { resetWindowState } from './windowStore.js';
export { assignWindows, GLOBAL_WINDOW, type Window, type WindowSpec, windows } from './windows.js';
