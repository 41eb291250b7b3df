import type { Aggregate } from './aggregates.js';
import type { TriggerEnv, TriggerMachine } from './triggerMachine.js';
import type { AccumulationMode, ClosingBehavior, EngineOutput, PaneTiming, ResultChange } from './types.js';
import type { WindowSet, WindowState } from './windowSet.js';

/** How windows fire panes: the part of the engine that turns trigger decisions into output. */
export interface Firing {
  /** The environment the window's trigger sees now. */
  env(state: WindowState): TriggerEnv;
  /** The window's trigger has finished: the window is closed and drops what arrives for it. */
  isClosed(state: WindowState): boolean;
  /** Asks the trigger, and fires when it says so; either way the window's timer is brought up to date. */
  evaluate(state: WindowState): void;
  /** The window expires: what is pending fires as its final pane, and it leaves the state. */
  expire(state: WindowState): void;
}

export interface FiringContext {
  aggregate: Aggregate;
  accumulation: AccumulationMode;
  closing: ClosingBehavior;
  machine: TriggerMachine;
  windows: WindowSet;
  output: EngineOutput;
  /** The current watermark. */
  watermark(): number;
  /** Processing time of the step. */
  now: number;
}

export function createFiring(context: FiringContext): Firing {
  const { aggregate, accumulation, machine, windows, output, now } = context;
  /** Windows whose final pane (with its final results row) fired in this step. */
  const firedFinal = new Set<WindowState>();

  const env = (state: WindowState): TriggerEnv => ({
    window: state.window,
    watermark: context.watermark(),
    now,
  });
  const isClosed = (state: WindowState) => machine.isFinished(state.trigger);

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

  /**
   * EARLY before the watermark passes the end of the window; the first pane after it ON_TIME;
   * every pane after a non-EARLY one LATE, as are all panes of a window born after its end.
   */
  const timingOf = (state: WindowState): PaneTiming => {
    if (state.lastTiming !== null && state.lastTiming !== 'EARLY') return 'LATE';
    if (context.watermark() < state.window.end) return 'EARLY';
    return state.bornLate ? 'LATE' : 'ON_TIME';
  };

  /**
   * Emits the pane of the elements pending since the last firing, if there is one to emit: a pane
   * with elements always; an empty one when the trigger fired on time (the ON_TIME pane always
   * fires), or as the final pane with closing behavior 'fire-always'. Either way the pane starts
   * over empty. Returns whether a pane was emitted.
   */
  const emitPane = (state: WindowState, isFinal: boolean, byTrigger: boolean): boolean => {
    const timing = timingOf(state);
    const emit =
      state.pendingCount > 0 ||
      (byTrigger && timing === 'ON_TIME') ||
      (isFinal && context.closing === 'fire-always');
    if (emit) {
      const value = aggregate.result(accumulation === 'discarding' ? state.pending : state.total);
      output.panes.push({
        key: state.key,
        window: state.window,
        index: state.nextPaneIndex,
        timing,
        isFinal,
        value,
        firedAt: now,
        watermark: context.watermark(),
        ...(accumulation === 'retracting' && state.lastEmitted !== undefined
          ? { retracted: state.lastEmitted }
          : {}),
      });
      state.nextPaneIndex += 1;
      state.lastEmitted = value;
      state.lastTiming = timing;
      output.results.push(resultOf(state, isFinal));
      if (isFinal) firedFinal.add(state);
    }
    state.pending = aggregate.init();
    state.pendingCount = 0;
    windows.touch(state);
    return emit;
  };

  const evaluate = (state: WindowState) => {
    if (!isClosed(state) && machine.shouldFire(state.trigger, env(state))) {
      machine.onFire(state.trigger, env(state));
      const closed = isClosed(state);
      const emitted = emitPane(state, closed || context.watermark() >= windows.expiry(state.window), true);
      // Closed without a pane: the results row still says that nothing will change it any more.
      if (closed && !emitted) output.results.push(resultOf(state, true));
    }
    const timerAt = machine.nextTimer(state.trigger, now);
    if (timerAt !== state.timerAt) {
      state.timerAt = timerAt;
      windows.touch(state);
    }
  };

  return {
    env,
    isClosed,
    evaluate,
    expire(state) {
      if (!isClosed(state)) {
        // The final pane holds what is pending; with nothing pending there is none (unless
        // 'fire-always'): the results row alone records that the window closed.
        emitPane(state, true, false);
        if (!firedFinal.has(state)) output.results.push(resultOf(state, true));
      }
      windows.remove(state);
    },
  };
}
