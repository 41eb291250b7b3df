import type { Queryable } from '../../db/index.js';
import type { WindowedAggregate } from './defineWindowedAggregate.js';
import { createWindowEngine, type EngineConfig } from './engine.js';
import type { EngineOutput, WindowElement } from './types.js';
import {
  MAX_WATERMARK,
  nextIdleDeadline,
  nextSourceIdleAt,
  strategyWatermark,
  type WatermarkState,
} from './watermarks.js';
import { loadSnapshot, nextTimer, saveStep } from './windowStore.js';

/** One input of a step, applied in order. */
export type WindowInput = { kind: 'element'; element: WindowElement } | { kind: 'watermark'; to: number };

export interface WindowStepOptions {
  /** Processing time of the step, in milliseconds: timers are set from it and fire when due at it. */
  now: number;
  /** Fire processing-time timers due at `now` after the inputs (and let idle sources move the watermark). */
  fireTimers?: boolean;
  /** Key of the state rows. @default aggregate.name */
  stateKey?: string;
  /** Only explicit watermark inputs move the watermark (the test kit). @default false */
  manualWatermark?: boolean;
  /**
   * The inputs reach the end of the log: a commit-time watermark may then follow the clock while
   * the source is quiet (never during a catch-up, which would drop the history as late). @default true
   */
  caughtUp?: boolean;
}

export interface WindowStepResult extends EngineOutput {
  watermark: number;
  /** Processing time at which a timer or an idle timeout next needs a step, if any. */
  nextWakeAt: number | null;
  /**
   * Processing time of the next event a continuously moving clock would meet: a trigger's delay
   * becoming due, or a watermark source becoming idle (not the periodic look at the clock of a
   * watermark that follows it).
   */
  nextEventAt: number | null;
}

/**
 * Runs one step of a windowed aggregate inside the caller's transaction: loads the state it
 * can touch, applies the inputs, fires what becomes due, and writes the state, the panes and
 * the dropped elements back through `db`. Committing that transaction together with the
 * checkpoint is what makes every firing happen exactly once.
 */
export async function runWindowStep(
  db: Queryable,
  aggregate: WindowedAggregate,
  inputs: readonly WindowInput[],
  options: WindowStepOptions,
): Promise<WindowStepResult> {
  const { now } = options;
  const caughtUp = options.caughtUp ?? true;
  const stateKey = options.stateKey ?? aggregate.name;
  const config: EngineConfig = options.manualWatermark
    ? { ...aggregate.config, watermark: 'manual' }
    : aggregate.config;
  const keys = [...new Set(inputs.flatMap((input) => (input.kind === 'element' ? [input.element.key] : [])))];
  const snapshot = await loadSnapshot(
    db,
    stateKey,
    keys,
    (current) => watermarkBound(config, current, inputs, now, options.fireTimers ?? false, caughtUp),
    options.fireTimers ? now : Number.MIN_SAFE_INTEGER,
  );
  const engine = createWindowEngine(config, snapshot, now);
  for (const input of inputs) {
    if (input.kind === 'element') engine.addElement(input.element);
    else engine.advanceWatermark(input.to);
  }
  if (options.fireTimers) engine.onProcessingTime(caughtUp);
  const changes = engine.changes();
  await saveStep(db, stateKey, config.allowedLatenessMs, changes, engine.output);
  const timer = await nextTimer(db, stateKey);
  const idle =
    config.watermark === 'manual' ? null : nextIdleDeadline(config.watermark, changes.watermark, now);
  const sourceIdle =
    config.watermark === 'manual' ? null : nextSourceIdleAt(config.watermark, changes.watermark, now);
  return {
    ...engine.output,
    watermark: changes.watermark.watermark,
    nextWakeAt: earliest(timer, idle),
    nextEventAt: earliest(timer, sourceIdle),
  };
}

/** The highest watermark the step can reach: it bounds which windows must be loaded. */
function watermarkBound(
  config: EngineConfig,
  current: WatermarkState,
  inputs: readonly WindowInput[],
  now: number,
  fireTimers: boolean,
  caughtUp: boolean,
): number {
  let bound = current.watermark;
  const spec = config.watermark;
  const state: WatermarkState = { watermark: current.watermark, sources: { ...current.sources } };
  for (const input of inputs) {
    if (input.kind === 'watermark') {
      bound = Math.max(bound, input.to);
    } else if (spec !== 'manual') {
      const { source, time } = input.element;
      state.sources[source] = {
        maxEventTime: Math.max(state.sources[source]?.maxEventTime ?? time, time),
        lastSeenAt: now,
      };
      bound = Math.max(bound, strategyWatermark(spec, state, now));
    }
  }
  if (fireTimers && spec !== 'manual') bound = Math.max(bound, strategyWatermark(spec, state, now, caughtUp));
  return Math.min(bound, MAX_WATERMARK);
}

function earliest(a: number | null, b: number | null): number | null {
  return a === null ? b : b === null ? a : Math.min(a, b);
}
