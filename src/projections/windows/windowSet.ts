import type { JsonValue } from '../../ingest/index.js';
import { compareText, createHeap } from './heap.js';
import type { TriggerState } from './triggerMachine.js';
import type { PaneTiming } from './types.js';
import { MAX_WATERMARK } from './watermarks.js';
import { type Window, windowId } from './windows.js';

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
  /** The watermark has passed the end of the window (its end-of-window moment is behind it). */
  pastEnd: boolean;
  /** The window came to exist after the watermark had passed its end: its panes are LATE. */
  bornLate: boolean;
  /** Value of the last pane, for retractions; undefined before the first firing. */
  lastEmitted: JsonValue | undefined;
  lastTiming: PaneTiming | null;
  /** The window's trigger state machine (a finished root means the window is closed). */
  trigger: TriggerState;
  /** Processing time at which a delay of the trigger next becomes due, if any: the window's timer. */
  timerAt: number | null;
}

/** What a step does when the watermark reaches a window's end, or its expiry (end + allowed lateness). */
export type EventTimeMoment = 'end' | 'expiry';

interface Action {
  time: number;
  kind: 0 | 1; // 0: end of window, 1: expiry
  key: string;
  start: number;
  end: number;
}

/**
 * The windows a step holds in memory (what it loaded and what it created), what it changed for
 * the store to write back, and their event-time moments in the order the watermark reaches them.
 */
export interface WindowSet {
  /** When the window stops accepting elements: end + allowed lateness. */
  expiry(window: Window): number;
  get(key: string, window: Window): WindowState | undefined;
  /** The windows of one key. */
  ofKey(key: string): Iterable<WindowState>;
  all(): Iterable<WindowState>;
  /** Holds a state and schedules its end-of-window (unless past) and expiry moments. */
  track(state: WindowState): void;
  /** Marks a state as changed. */
  touch(state: WindowState): void;
  /** Forgets a state: it is deleted from the store. */
  remove(state: WindowState): void;
  /** The next window moment at or before `watermark`, in order of time, moment, key and window. */
  nextDue(watermark: number): { state: WindowState; moment: EventTimeMoment } | undefined;
  changes(): { upserted: WindowState[]; deleted: { key: string; window: Window }[] };
}

export function createWindowSet(allowedLatenessMs: number): WindowSet {
  const byKey = new Map<string, Map<string, WindowState>>();
  const dirty = new Map<string, WindowState>();
  const deleted = new Map<string, { key: string; window: Window }>();
  const actions = createHeap<Action>(compareActions);
  const stateId = (key: string, window: Window) => `${key}\u0000${windowId(window)}`;
  const expiry = (window: Window) => Math.min(window.end + allowedLatenessMs, MAX_WATERMARK);
  const windowsOf = (key: string) => {
    let map = byKey.get(key);
    if (!map) {
      map = new Map();
      byKey.set(key, map);
    }
    return map;
  };
  const schedule = (state: WindowState, kind: 0 | 1, time: number) =>
    actions.push({ time, kind, key: state.key, start: state.window.start, end: state.window.end });

  return {
    expiry,
    get: (key, window) => byKey.get(key)?.get(windowId(window)),
    ofKey: (key) => byKey.get(key)?.values() ?? [],
    *all() {
      for (const windows of byKey.values()) yield* windows.values();
    },
    track(state) {
      windowsOf(state.key).set(windowId(state.window), state);
      if (!state.pastEnd) schedule(state, 0, state.window.end);
      schedule(state, 1, expiry(state.window));
    },
    touch(state) {
      const id = stateId(state.key, state.window);
      deleted.delete(id);
      dirty.set(id, state);
    },
    remove(state) {
      windowsOf(state.key).delete(windowId(state.window));
      const id = stateId(state.key, state.window);
      dirty.delete(id);
      deleted.set(id, { key: state.key, window: state.window });
    },
    nextDue(watermark) {
      for (;;) {
        const next = actions.peek();
        if (!next || next.time > watermark) return undefined;
        actions.pop();
        const state = byKey.get(next.key)?.get(windowId(next));
        if (!state) continue; // merged away or already expired
        if (next.kind === 0 && state.pastEnd) continue;
        return { state, moment: next.kind === 0 ? 'end' : 'expiry' };
      }
    },
    changes: () => ({ upserted: [...dirty.values()], deleted: [...deleted.values()] }),
  };
}

function compareActions(a: Action, b: Action): number {
  return (
    a.time - b.time || a.kind - b.kind || compareText(a.key, b.key) || a.start - b.start || a.end - b.end
  );
}
