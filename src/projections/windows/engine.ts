import type { JsonValue } from '../../ingest/index.js';
import type { Aggregate } from './aggregates.js';
import { createFiring } from './firing.js';
import { compareText } from './heap.js';
import { mergeSession } from './sessions.js';
import { createTriggerMachine } from './triggerMachine.js';
import type { TriggerSpec } from './triggers.js';
import type {
  AccumulationMode,
  ClosingBehavior,
  DroppedElement,
  EngineOutput,
  WindowElement,
} from './types.js';
import { MAX_WATERMARK, strategyWatermark, type WatermarkSpec, type WatermarkState } from './watermarks.js';
import { createWindowSet, type WindowState } from './windowSet.js';
import { assignWindows, type Window, type WindowSpec } from './windows.js';

export type { WindowState } from './windowSet.js';

/** What the engine needs to know about an aggregate; all times are explicit inputs. */
export interface EngineConfig {
  window: WindowSpec;
  allowedLatenessMs: number;
  trigger: TriggerSpec;
  accumulation: AccumulationMode;
  /** @default 'fire-if-non-empty' */
  closing?: ClosingBehavior;
  aggregate: Aggregate;
  /** 'manual': only explicit `advanceWatermark` calls move it (the test kit's default). */
  watermark: WatermarkSpec | 'manual';
}

export interface EngineSnapshot {
  watermark: WatermarkState;
  windows: readonly WindowState[];
}

/** What changed during a step, for the store to write back. */
export interface EngineChanges {
  watermark: WatermarkState;
  upserted: WindowState[];
  deleted: { key: string; window: Window }[];
}

export interface WindowEngine {
  addElement(element: WindowElement): void;
  /** Moves the watermark forward to `to` (never back) and fires what it makes due. */
  advanceWatermark(to: number): void;
  /**
   * Fires processing-time timers due at `now`, then lets idle sources move the watermark;
   * `caughtUp`: nothing more is in the log, so a commit-time watermark may follow the clock.
   */
  onProcessingTime(caughtUp: boolean): void;
  readonly output: EngineOutput;
  changes(): EngineChanges;
}

/**
 * The windowing state machine over a loaded part of the state: every window of the keys
 * that receive elements, and every window the step's watermark or clock can make due.
 * Deterministic: the same inputs in the same order give the same panes in the same order,
 * however the inputs are split into steps.
 *
 * Its parts: the window set (what is loaded, changed, and due in event time), the trigger state
 * machine of each window (triggerMachine.ts), firing (panes and results, firing.ts), session
 * merging (sessions.ts), and here, elements and the watermark.
 */
export function createWindowEngine(
  config: EngineConfig,
  snapshot: EngineSnapshot,
  now: number,
): WindowEngine {
  const { aggregate, accumulation } = config;
  const sessions = config.window.kind === 'sessions';
  const machine = createTriggerMachine(config.trigger, sessions);
  const windows = createWindowSet(config.allowedLatenessMs);
  const output: EngineOutput = { panes: [], results: [], dropped: [] };
  const wmState: WatermarkState = {
    watermark: snapshot.watermark.watermark,
    sources: structuredClone(snapshot.watermark.sources),
  };
  const watermark = () => wmState.watermark;
  const firing = createFiring({
    aggregate,
    accumulation,
    closing: config.closing ?? 'fire-if-non-empty',
    machine,
    windows,
    output,
    watermark,
    now,
  });
  const newState = (key: string, window: Window): WindowState => ({
    key,
    window,
    total: aggregate.init(),
    pending: aggregate.init(),
    pendingCount: 0,
    elementCount: 0,
    nextPaneIndex: 0,
    pastEnd: window.end <= wmState.watermark,
    bornLate: window.end <= wmState.watermark,
    lastEmitted: undefined,
    lastTiming: null,
    trigger: machine.initial(),
    timerAt: null,
  });
  const session = { aggregate, accumulation, machine, windows, firing, output, watermark, now, newState };

  for (const state of snapshot.windows) windows.track(structuredClone(state));

  /** The window an element joins, created (or merged, for sessions) as needed. */
  const windowFor = (key: string, window: Window): WindowState => {
    if (sessions) return mergeSession(session, key, window);
    const found = windows.get(key, window);
    if (found) return found;
    const created = newState(key, window);
    windows.track(created);
    return created;
  };

  const drop = (element: WindowElement, window: Window, reason: DroppedElement['reason']) => {
    output.dropped.push({
      key: element.key,
      eventTime: element.time,
      window,
      watermark: wmState.watermark,
      position: element.position,
      value: (element.value ?? null) as JsonValue,
      reason,
    });
  };

  /** Event-time moments the watermark reached: the end of windows, then their expiry. */
  const fireDue = () => {
    for (let due = windows.nextDue(wmState.watermark); due; due = windows.nextDue(wmState.watermark)) {
      const { state, moment } = due;
      if (moment === 'end') {
        state.pastEnd = true;
        windows.touch(state);
        firing.evaluate(state);
      } else {
        firing.expire(state);
      }
    }
  };

  const advanceWatermark = (to: number) => {
    if (!(to > wmState.watermark)) return;
    wmState.watermark = Math.min(to, MAX_WATERMARK);
    fireDue();
  };

  return {
    output,
    addElement(element) {
      for (const window of assignWindows(config.window, element.time)) {
        if (wmState.watermark >= windows.expiry(window)) {
          drop(element, window, 'expired');
          continue;
        }
        const state = windowFor(element.key, window);
        if (firing.isClosed(state)) {
          drop(element, state.window, 'closed');
          continue;
        }
        state.total = aggregate.add(state.total, element.value);
        state.pending = aggregate.add(state.pending, element.value);
        state.pendingCount += 1;
        state.elementCount += 1;
        windows.touch(state);
        machine.onElement(state.trigger, firing.env(state));
        firing.evaluate(state);
      }
      if (config.watermark !== 'manual') {
        const source = wmState.sources[element.source];
        wmState.sources[element.source] = {
          maxEventTime: Math.max(source?.maxEventTime ?? element.time, element.time),
          lastSeenAt: now,
        };
        advanceWatermark(strategyWatermark(config.watermark, wmState, now));
      }
    },
    advanceWatermark,
    onProcessingTime(caughtUp) {
      const due = [...windows.all()].filter((state) => state.timerAt !== null && state.timerAt <= now);
      due.sort(
        (a, b) =>
          a.timerAt! - b.timerAt! ||
          compareText(a.key, b.key) ||
          a.window.start - b.window.start ||
          a.window.end - b.window.end,
      );
      for (const state of due) firing.evaluate(state);
      if (config.watermark !== 'manual') {
        advanceWatermark(strategyWatermark(config.watermark, wmState, now, caughtUp));
      }
    },
    changes() {
      return { watermark: wmState, ...windows.changes() };
    },
  };
}
