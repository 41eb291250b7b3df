import type { JsonValue } from '../../ingest/index.js';
import type { Aggregate } from './aggregates.js';
import type { FiringSpec, TriggerSpec } from './triggers.js';
import type {
  AccumulationMode,
  EngineOutput,
  Pane,
  PaneTiming,
  ResultChange,
  WindowElement,
} from './types.js';
import { MAX_WATERMARK, strategyWatermark, type WatermarkSpec, type WatermarkState } from './watermarks.js';
import { assignWindows, type Window, type WindowSpec, windowId, windowsOverlap } from './windows.js';

/** What the engine needs to know about an aggregate; all times are explicit inputs. */
export interface EngineConfig {
  window: WindowSpec;
  allowedLatenessMs: number;
  trigger: TriggerSpec;
  accumulation: AccumulationMode;
  aggregate: Aggregate;
  /** 'manual': only explicit `advanceWatermark` calls move it (the test kit's default). */
  watermark: WatermarkSpec | 'manual';
}

/** The persisted state of one window of one key. */
export interface WindowState {
  key: string;
  window: Window;
  /** Accumulator over every element of the window. */
  total: JsonValue;
  /** Accumulator over the elements since the last firing. */
  pending: JsonValue;
  pendingCount: number;
  elementCount: number;
  nextPaneIndex: number;
  /** The watermark has passed the end of the window (its ON_TIME pane fired, or it was born late). */
  pastEnd: boolean;
  /** Value of the last pane, for retractions; undefined before the first firing. */
  lastEmitted: JsonValue | undefined;
  lastTiming: PaneTiming | null;
  /** Processing time of the pending early/late firing, if one is scheduled. */
  timerAt: number | null;
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

interface Action {
  time: number;
  kind: 0 | 1; // 0: on time, 1: expiry
  key: string;
  start: number;
  end: number;
}

/**
 * The windowing state machine over a loaded part of the state: every window of the keys
 * that receive elements, and every window the step's watermark or clock can make due.
 * Deterministic: the same inputs in the same order give the same panes in the same order,
 * however the inputs are split into steps.
 */
export function createWindowEngine(
  config: EngineConfig,
  snapshot: EngineSnapshot,
  now: number,
): WindowEngine {
  const { aggregate, accumulation, trigger } = config;
  const lateness = config.allowedLatenessMs;
  const byKey = new Map<string, Map<string, WindowState>>();
  const dirty = new Map<string, WindowState>();
  const deleted = new Map<string, { key: string; window: Window }>();
  const actions = createHeap<Action>(compareActions);
  const output: EngineOutput = { panes: [], results: [], dropped: [] };
  const wmState: WatermarkState = {
    watermark: snapshot.watermark.watermark,
    sources: structuredClone(snapshot.watermark.sources),
  };

  const stateId = (key: string, window: Window) => `${key}\u0000${windowId(window)}`;
  const expiry = (window: Window) => Math.min(window.end + lateness, MAX_WATERMARK);
  const windowsOf = (key: string) => {
    let map = byKey.get(key);
    if (!map) {
      map = new Map();
      byKey.set(key, map);
    }
    return map;
  };
  const track = (state: WindowState) => {
    windowsOf(state.key).set(windowId(state.window), state);
    if (!state.pastEnd) {
      actions.push({
        time: state.window.end,
        kind: 0,
        key: state.key,
        start: state.window.start,
        end: state.window.end,
      });
    }
    actions.push({
      time: expiry(state.window),
      kind: 1,
      key: state.key,
      start: state.window.start,
      end: state.window.end,
    });
  };
  const touch = (state: WindowState) => {
    const id = stateId(state.key, state.window);
    deleted.delete(id);
    dirty.set(id, state);
  };
  const remove = (state: WindowState) => {
    windowsOf(state.key).delete(windowId(state.window));
    const id = stateId(state.key, state.window);
    dirty.delete(id);
    deleted.set(id, { key: state.key, window: state.window });
  };

  for (const state of snapshot.windows) track(structuredClone(state));

  const resultOf = (state: WindowState, isFinal: boolean): ResultChange => ({
    op: 'upsert',
    key: state.key,
    window: state.window,
    value: aggregate.result(state.total),
    elementCount: state.elementCount,
    paneIndex: state.nextPaneIndex === 0 ? null : state.nextPaneIndex - 1,
    timing: state.lastTiming,
    isFinal,
  });

  const firedFinal = new Set<WindowState>();
  const fire = (state: WindowState, timing: PaneTiming) => {
    const isFinal = wmState.watermark >= expiry(state.window);
    if (isFinal) firedFinal.add(state);
    const value = aggregate.result(accumulation === 'discarding' ? state.pending : state.total);
    const pane: Pane = {
      key: state.key,
      window: state.window,
      index: state.nextPaneIndex,
      timing,
      isFinal,
      value,
    };
    if (accumulation === 'retracting' && state.lastEmitted !== undefined) pane.retracted = state.lastEmitted;
    output.panes.push(pane);
    state.nextPaneIndex += 1;
    state.lastEmitted = value;
    state.lastTiming = timing;
    state.pending = aggregate.init();
    state.pendingCount = 0;
    state.timerAt = null;
    output.results.push(resultOf(state, isFinal));
    touch(state);
  };

  /** After an element joined the window: fire by count, or schedule a processing-time firing. */
  const afterElement = (state: WindowState) => {
    const firing: FiringSpec | undefined = state.pastEnd ? trigger.late : trigger.early;
    if (!firing) return;
    if (firing.everyElements !== undefined && state.pendingCount >= firing.everyElements) {
      fire(state, state.pastEnd ? 'LATE' : 'EARLY');
      return;
    }
    if (firing.afterProcessingTimeMs !== undefined && state.timerAt === null) {
      state.timerAt = now + firing.afterProcessingTimeMs;
    }
  };

  const newState = (key: string, window: Window): WindowState => ({
    key,
    window,
    total: aggregate.init(),
    pending: aggregate.init(),
    pendingCount: 0,
    elementCount: 0,
    nextPaneIndex: 0,
    pastEnd: window.end <= wmState.watermark,
    lastEmitted: undefined,
    lastTiming: null,
    timerAt: null,
  });

  /** Session windows: the proto-window joins every window it overlaps, transitively. */
  const mergeInto = (key: string, proto: Window): WindowState => {
    const existing = windowsOf(key);
    const exact = existing.get(windowId(proto));
    if (exact) return exact;
    let merged = proto;
    const parts: WindowState[] = [];
    for (let changed = true; changed; ) {
      changed = false;
      for (const state of existing.values()) {
        if (parts.includes(state) || !windowsOverlap(state.window, merged)) continue;
        parts.push(state);
        merged = {
          start: Math.min(merged.start, state.window.start),
          end: Math.max(merged.end, state.window.end),
        };
        changed = true;
      }
    }
    if (
      parts.length === 1 &&
      parts[0]!.window.start === merged.start &&
      parts[0]!.window.end === merged.end
    ) {
      return parts[0]!;
    }
    const target = newState(key, merged);
    parts.sort((a, b) => a.window.start - b.window.start);
    for (const part of parts) {
      target.total = aggregate.merge(target.total, part.total);
      target.pending = aggregate.merge(target.pending, part.pending);
      target.pendingCount += part.pendingCount;
      target.elementCount += part.elementCount;
      if (part.timerAt !== null) target.timerAt = Math.min(target.timerAt ?? part.timerAt, part.timerAt);
      if (accumulation === 'retracting' && part.lastEmitted !== undefined) {
        // The merged-away window's last pane no longer holds: take it back.
        output.panes.push({
          key,
          window: part.window,
          index: part.nextPaneIndex,
          timing: part.pastEnd ? 'LATE' : 'EARLY',
          isFinal: true,
          value: null,
          retracted: part.lastEmitted,
        });
      }
      remove(part);
      output.results.push({ op: 'delete', key, window: part.window });
    }
    track(target);
    return target;
  };

  const fireDue = () => {
    for (;;) {
      const next = actions.peek();
      if (!next || next.time > wmState.watermark) return;
      actions.pop();
      const state = byKey.get(next.key)?.get(windowId(next));
      if (!state) continue; // merged away or already expired
      if (next.kind === 0) {
        if (state.pastEnd) continue;
        state.pastEnd = true;
        // The ON_TIME pane fires even when empty (discarding after early firings).
        fire(state, 'ON_TIME');
        continue;
      }
      if (state.pendingCount > 0) {
        fire(state, 'LATE');
      } else if (!firedFinal.has(state)) {
        // Nothing left to fire: the results row just records that the window closed.
        output.results.push(resultOf(state, true));
      }
      remove(state);
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
      const wm = wmState.watermark;
      for (const window of assignWindows(config.window, element.time)) {
        if (wm >= expiry(window)) {
          output.dropped.push({
            key: element.key,
            eventTime: element.time,
            window,
            watermark: wm,
            position: element.position,
            value: (element.value ?? null) as JsonValue,
          });
          continue;
        }
        let state: WindowState;
        if (config.window.kind === 'sessions') {
          state = mergeInto(element.key, window);
        } else {
          const found = windowsOf(element.key).get(windowId(window));
          state = found ?? newState(element.key, window);
          if (!found) track(state);
        }
        state.total = aggregate.add(state.total, element.value);
        state.pending = aggregate.add(state.pending, element.value);
        state.pendingCount += 1;
        state.elementCount += 1;
        touch(state);
        afterElement(state);
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
      const due: WindowState[] = [];
      for (const windows of byKey.values()) {
        for (const state of windows.values())
          if (state.timerAt !== null && state.timerAt <= now) due.push(state);
      }
      due.sort(
        (a, b) =>
          a.timerAt! - b.timerAt! ||
          compareText(a.key, b.key) ||
          a.window.start - b.window.start ||
          a.window.end - b.window.end,
      );
      for (const state of due) {
        if (state.timerAt === null || state.pendingCount === 0) {
          state.timerAt = null;
          touch(state);
          continue;
        }
        fire(state, state.pastEnd ? 'LATE' : 'EARLY');
      }
      if (config.watermark !== 'manual') {
        advanceWatermark(strategyWatermark(config.watermark, wmState, now, caughtUp));
      }
    },
    changes() {
      return { watermark: wmState, upserted: [...dirty.values()], deleted: [...deleted.values()] };
    },
  };
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function compareActions(a: Action, b: Action): number {
  return (
    a.time - b.time || a.kind - b.kind || compareText(a.key, b.key) || a.start - b.start || a.end - b.end
  );
}

interface Heap<T> {
  push(item: T): void;
  pop(): T | undefined;
  peek(): T | undefined;
}

function createHeap<T>(compare: (a: T, b: T) => number): Heap<T> {
  const items: T[] = [];
  return {
    push(item) {
      items.push(item);
      let i = items.length - 1;
      while (i > 0) {
        const parent = (i - 1) >> 1;
        if (compare(items[i]!, items[parent]!) >= 0) break;
        [items[i], items[parent]] = [items[parent]!, items[i]!];
        i = parent;
      }
    },
    pop() {
      const top = items[0];
      const last = items.pop();
      if (items.length > 0 && last !== undefined) {
        items[0] = last;
        let i = 0;
        for (;;) {
          const left = 2 * i + 1;
          const right = left + 1;
          let smallest = i;
          if (left < items.length && compare(items[left]!, items[smallest]!) < 0) smallest = left;
          if (right < items.length && compare(items[right]!, items[smallest]!) < 0) smallest = right;
          if (smallest === i) break;
          [items[i], items[smallest]] = [items[smallest]!, items[i]!];
          i = smallest;
        }
      }
      return top;
    },
    peek: () => items[0],
  };
}
