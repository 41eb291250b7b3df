import type { Aggregate } from './aggregates.js';
import type { Firing } from './firing.js';
import type { TriggerMachine } from './triggerMachine.js';
import type { AccumulationMode, EngineOutput, PaneTiming } from './types.js';
import type { WindowSet, WindowState } from './windowSet.js';
import { type Window, windowId, windowsOverlap } from './windows.js';

export interface SessionContext {
  aggregate: Aggregate;
  accumulation: AccumulationMode;
  machine: TriggerMachine;
  windows: WindowSet;
  firing: Firing;
  output: EngineOutput;
  watermark(): number;
  now: number;
  newState(key: string, window: Window): WindowState;
}

const TIMING_ORDER: Record<PaneTiming, number> = { EARLY: 0, ON_TIME: 1, LATE: 2 };

/**
 * Session windows: the element's proto-window joins every open window of its key it overlaps,
 * transitively, into one window (closed windows take no part, as in Beam). The merged window
 * carries on from the windows it replaces: their accumulators, pending elements, trigger state
 * (Beam's onMerge) and pane indices. Returns the window the element belongs to.
 */
export function mergeSession(context: SessionContext, key: string, proto: Window): WindowState {
  const { aggregate, windows, machine, firing, output } = context;
  const exact = windows.get(key, proto);
  if (exact) return exact;
  let merged = proto;
  const parts: WindowState[] = [];
  for (let changed = true; changed; ) {
    changed = false;
    for (const state of windows.ofKey(key)) {
      if (parts.includes(state) || firing.isClosed(state) || !windowsOverlap(state.window, merged)) continue;
      parts.push(state);
      merged = {
        start: Math.min(merged.start, state.window.start),
        end: Math.max(merged.end, state.window.end),
      };
      changed = true;
    }
  }
  if (parts.length === 1 && windowId(parts[0]!.window) === windowId(merged)) return parts[0]!;
  const target = context.newState(key, merged);
  if (parts.length === 0) {
    windows.track(target);
    return target;
  }
  parts.sort((a, b) => a.window.start - b.window.start);
  const wm = context.watermark();
  let nextPaneIndex = 0;
  let lastTiming: PaneTiming | null = null;
  for (const part of parts) {
    target.total = aggregate.merge(target.total, part.total);
    target.pending = aggregate.merge(target.pending, part.pending);
    target.pendingCount += part.pendingCount;
    target.elementCount += part.elementCount;
    if (context.accumulation === 'retracting' && part.lastEmitted !== undefined) {
      // The merged-away window's last pane no longer holds: take it back.
      output.panes.push({
        key,
        window: part.window,
        index: part.nextPaneIndex,
        timing: part.pastEnd ? 'LATE' : 'EARLY',
        isFinal: true,
        value: null,
        retracted: part.lastEmitted,
        firedAt: context.now,
        watermark: wm,
      });
      part.nextPaneIndex += 1;
    }
    // The merged window's panes continue the indices of the windows it replaces.
    nextPaneIndex = Math.max(nextPaneIndex, part.nextPaneIndex);
    if (
      part.lastTiming !== null &&
      (lastTiming === null || TIMING_ORDER[part.lastTiming] > TIMING_ORDER[lastTiming])
    ) {
      lastTiming = part.lastTiming;
    }
    windows.remove(part);
    output.results.push({ op: 'delete', key, window: part.window });
  }
  target.nextPaneIndex = nextPaneIndex;
  target.lastTiming = lastTiming;
  // The proto-window takes part in the merge too, with a trigger that has seen nothing.
  machine.onMerge(
    target.trigger,
    [...parts.map((part) => part.trigger), machine.initial()],
    firing.env(target),
  );
  target.timerAt = machine.nextTimer(target.trigger, context.now);
  windows.track(target);
  windows.touch(target);
  return target;
}
