import type { ProcessingTimeStep, TriggerSpec } from './triggers.js';
import type { Window } from './windows.js';

/**
 * The state of one window's trigger: a finished bit per node of the trigger tree (numbered in
 * preorder, the root is 0) and one value per node (an element count, or the processing time a
 * delay waits for). Plain JSON, stored with the window.
 */
export interface TriggerState {
  /** Bit i set: node i has finished. */
  f: number;
  /** Per node: afterCount's count, afterProcessingTime's target time; null or missing when none. */
  v: (number | null)[];
}

/** What a trigger sees besides its own state. */
export interface TriggerEnv {
  window: Window;
  /** The input watermark (event time). */
  watermark: number;
  /** Processing time. */
  now: number;
}

/**
 * One trigger compiled to Beam's trigger state machine semantics: `onElement` after each element
 * joins the window, `shouldFire` to ask, `onFire` when the window fires (after which a finished
 * root closes the window), `onMerge` when session windows merge.
 */
export interface TriggerMachine {
  initial(): TriggerState;
  onElement(state: TriggerState, env: TriggerEnv): void;
  shouldFire(state: TriggerState, env: TriggerEnv): boolean;
  onFire(state: TriggerState, env: TriggerEnv): void;
  /** `state` is the merged window's, fresh; `parts` the states of the windows merging into it. */
  onMerge(state: TriggerState, parts: readonly TriggerState[], env: TriggerEnv): void;
  /** The root has finished: the window is closed. */
  isFinished(state: TriggerState): boolean;
  /** The earliest processing time after `now` at which a delay becomes due, if any. */
  nextTimer(state: TriggerState, now: number): number | null;
}

/** The state of a trigger that has seen nothing (stored as null). */
export function emptyTriggerState(): TriggerState {
  return { f: 0, v: [] };
}

/** True when the state holds nothing, so it need not be stored. */
export function isEmptyTriggerState(state: TriggerState): boolean {
  return state.f === 0 && state.v.every((value) => value == null);
}

type Node =
  | { kind: 'endOfWindow'; index: number; end: number }
  | { kind: 'earlyAndLate'; index: number; end: number; early: Node; late: Node | null }
  | { kind: 'count'; index: number; end: number; count: number }
  | { kind: 'time'; index: number; end: number; steps: ProcessingTimeStep[] }
  | { kind: 'never'; index: number; end: number }
  | { kind: 'repeatedly'; index: number; end: number; child: Node }
  | { kind: 'first' | 'all' | 'each'; index: number; end: number; children: Node[] }
  | { kind: 'orFinally'; index: number; end: number; actual: Node; until: Node };

type NodeBody = Node extends infer N ? (N extends Node ? Omit<N, 'end'> : never) : never;

/** Numbers the nodes in preorder, as Beam's ExecutableTriggerStateMachine does. */
function compile(spec: TriggerSpec, next: { index: number }): Node {
  const index = next.index++;
  // `end` is the first index after the subtree: known once the children are compiled.
  const done = (node: NodeBody): Node => ({ ...node, end: next.index }) as Node;
  switch (spec.kind) {
    case 'afterWatermark': {
      if (!spec.early && !spec.late) return done({ kind: 'endOfWindow', index });
      const early = spec.early ? compile(spec.early, next) : compile({ kind: 'never' }, next);
      const late = spec.late ? compile(spec.late, next) : null;
      return done({ kind: 'earlyAndLate', index, early, late });
    }
    case 'afterCount':
      return done({ kind: 'count', index, count: spec.count });
    case 'afterProcessingTime':
      return done({ kind: 'time', index, steps: spec.steps });
    case 'never':
      return done({ kind: 'never', index });
    case 'repeatedly':
      return done({ kind: 'repeatedly', index, child: compile(spec.trigger, next) });
    case 'afterFirst':
    case 'afterAll':
    case 'afterEach': {
      const kind = spec.kind === 'afterFirst' ? 'first' : spec.kind === 'afterAll' ? 'all' : 'each';
      return done({ kind, index, children: spec.triggers.map((t) => compile(t, next)) });
    }
    case 'orFinally': {
      const actual = compile(spec.trigger, next);
      return done({ kind: 'orFinally', index, actual, until: compile(spec.until, next) });
    }
  }
}

/**
 * Compiles a trigger. `merging`: windows may merge (sessions), so composite triggers keep every
 * sub-trigger's state up to date, as a merge may bring a finished one back.
 */
export function createTriggerMachine(spec: TriggerSpec, merging: boolean): TriggerMachine {
  const next = { index: 0 };
  const root = compile(spec, next);
  const timeNodes: number[] = [];
  const collect = (node: Node) => {
    if (node.kind === 'time') timeNodes.push(node.index);
    for (const child of children(node)) collect(child);
  };
  collect(root);

  // One call's state and environment; every function below reads them.
  let st: TriggerState = { f: 0, v: [] };
  let env: TriggerEnv = { window: { start: 0, end: 0 }, watermark: 0, now: 0 };
  let parts: readonly TriggerState[] = [];

  const isFinished = (node: Node) => (st.f & (1 << node.index)) !== 0;
  const setFinished = (node: Node, finished: boolean) => {
    st.f = finished ? st.f | (1 << node.index) : st.f & ~(1 << node.index);
  };
  const endOfWindowReached = () => env.watermark >= env.window.end;
  const firstUnfinished = (list: readonly Node[]) => list.find((node) => !isFinished(node));
  const finishedInAll = (node: Node) => parts.every((p) => (p.f & (1 << node.index)) !== 0);
  const finishedInAny = (node: Node) => parts.some((p) => (p.f & (1 << node.index)) !== 0);

  /** Forgets the node's pending condition (its count or delay), and its children's. */
  const clear = (node: Node) => {
    for (let i = node.index; i < node.end; i++) st.v[i] = null;
  };
  /** Clear, and unset the finished bits: the subtree starts over (Repeatedly). */
  const resetTree = (node: Node) => {
    clear(node);
    for (let i = node.index; i < node.end; i++) st.f &= ~(1 << i);
  };

  const onElement = (node: Node): void => {
    switch (node.kind) {
      case 'count':
        st.v[node.index] = (st.v[node.index] ?? 0) + 1;
        return;
      case 'time':
        // Processing time only moves forward: the first element of the pane sets the target.
        if (st.v[node.index] == null) st.v[node.index] = targetTime(node.steps, env.now);
        return;
      case 'endOfWindow':
      case 'never':
        return;
      case 'earlyAndLate':
        if (merging) {
          onElement(node.early);
          if (node.late) onElement(node.late);
        } else {
          const current = !isFinished(node.early) ? node.early : node.late;
          if (current) onElement(current);
        }
        return;
      case 'repeatedly':
        onElement(node.child);
        return;
      case 'first':
        for (const child of node.children) onElement(child);
        return;
      case 'all':
        for (const child of node.children) if (!isFinished(child)) onElement(child);
        return;
      case 'each':
        if (merging) {
          for (const child of node.children) onElement(child);
        } else {
          const current = firstUnfinished(node.children);
          if (current) onElement(current);
        }
        return;
      case 'orFinally':
        onElement(node.actual);
        onElement(node.until);
        return;
    }
  };

  const shouldFire = (node: Node): boolean => {
    switch (node.kind) {
      case 'count':
        return (st.v[node.index] ?? 0) >= node.count;
      case 'time': {
        const target = st.v[node.index];
        return target != null && env.now >= target;
      }
      case 'endOfWindow':
        return endOfWindowReached();
      case 'never':
        return false;
      case 'earlyAndLate':
        if (!isFinished(node.early)) return shouldFire(node.early) || endOfWindowReached();
        return node.late !== null && shouldFire(node.late);
      case 'repeatedly':
        return shouldFire(node.child);
      case 'first':
        return node.children.some((child) => isFinished(child) || shouldFire(child));
      case 'all':
        return node.children.every((child) => isFinished(child) || shouldFire(child));
      case 'each': {
        const current = firstUnfinished(node.children);
        return current !== undefined && shouldFire(current);
      }
      case 'orFinally':
        return shouldFire(node.actual) || shouldFire(node.until);
    }
  };

  const onFire = (node: Node): void => {
    switch (node.kind) {
      case 'count':
      case 'time':
      case 'endOfWindow':
        clear(node);
        setFinished(node, true);
        return;
      case 'never':
        return;
      case 'earlyAndLate': {
        if (!isFinished(node.early)) {
          if (!endOfWindowReached()) {
            // An early firing: the early trigger repeats.
            onFire(node.early);
            clear(node.early);
            setFinished(node.early, false);
          } else {
            // The end of the window: the early trigger is done for good; the late one starts afresh.
            if (shouldFire(node.early)) onFire(node.early);
            clear(node.early);
            setFinished(node.early, true);
            if (node.late === null) setFinished(node, true);
            else clear(node.late);
          }
        } else if (node.late !== null) {
          // A late firing: the late trigger repeats.
          onFire(node.late);
          clear(node.late);
          setFinished(node.late, false);
        } else {
          setFinished(node, true);
        }
        return;
      }
      case 'repeatedly':
        onFire(node.child);
        if (isFinished(node.child)) resetTree(node.child);
        return;
      case 'first':
        for (const child of node.children) {
          if (shouldFire(child)) onFire(child);
          else clear(child); // the pane it was tracking is gone
        }
        setFinished(node, true);
        return;
      case 'all':
        for (const child of node.children) onFire(child);
        setFinished(node, true);
        return;
      case 'each': {
        const current = firstUnfinished(node.children);
        if (current) onFire(current);
        if (merging) for (const child of node.children) clear(child);
        setFinished(node, firstUnfinished(node.children) === undefined);
        return;
      }
      case 'orFinally':
        if (shouldFire(node.until)) {
          onFire(node.until);
          clear(node.actual);
        } else {
          // `until` keeps what it has seen across firings.
          onFire(node.actual);
        }
        setFinished(node, isFinished(node.actual) || isFinished(node.until));
        return;
    }
  };

  const onMerge = (node: Node): void => {
    switch (node.kind) {
      case 'count':
        if (finishedInAny(node)) {
          setFinished(node, true);
          st.v[node.index] = null;
        } else {
          st.v[node.index] = parts.reduce((sum, p) => sum + (p.v[node.index] ?? 0), 0);
        }
        return;
      case 'time': {
        // The earliest delay of the merged windows.
        let earliest: number | null = null;
        for (const p of parts) {
          const at = p.v[node.index];
          if (at != null && (earliest === null || at < earliest)) earliest = at;
        }
        st.v[node.index] = earliest;
        return;
      }
      case 'endOfWindow':
        // Still active in any merged window, or the new window's end not reached: active again.
        setFinished(node, finishedInAll(node) && endOfWindowReached());
        return;
      case 'never':
        return;
      case 'earlyAndLate':
        if (!finishedInAll(node.early) || !endOfWindowReached()) {
          onMerge(node.early);
          setFinished(node.early, false);
          if (node.late) {
            setFinished(node.late, false);
            clear(node.late);
          }
        } else {
          setFinished(node.early, true);
          if (node.late) onMerge(node.late);
        }
        return;
      case 'repeatedly':
        onMerge(node.child);
        return;
      case 'first':
      case 'all':
      case 'orFinally': {
        const list = children(node);
        for (const child of list) onMerge(child);
        const done = list.map(isFinished);
        setFinished(node, node.kind === 'all' ? done.every(Boolean) : done.some(Boolean));
        return;
      }
      case 'each': {
        let priorFinished = true;
        for (const child of node.children) {
          if (priorFinished) {
            onMerge(child);
            priorFinished = isFinished(child);
          } else {
            clear(child);
          }
        }
        setFinished(node, firstUnfinished(node.children) === undefined);
        return;
      }
    }
  };

  const run = <T>(state: TriggerState, environment: TriggerEnv, fn: () => T): T => {
    st = state;
    env = environment;
    return fn();
  };

  return {
    initial: emptyTriggerState,
    onElement: (state, environment) => run(state, environment, () => onElement(root)),
    shouldFire: (state, environment) => run(state, environment, () => shouldFire(root)),
    onFire: (state, environment) => run(state, environment, () => onFire(root)),
    onMerge: (state, merged, environment) => {
      parts = merged;
      try {
        run(state, environment, () => onMerge(root));
      } finally {
        parts = [];
      }
    },
    isFinished: (state) => (state.f & 1) !== 0,
    nextTimer(state, now) {
      let next: number | null = null;
      for (const i of timeNodes) {
        const at = state.v[i];
        if (at != null && at > now && (next === null || at < next)) next = at;
      }
      return next;
    },
  };
}

function children(node: Node): Node[] {
  switch (node.kind) {
    case 'earlyAndLate':
      return node.late ? [node.early, node.late] : [node.early];
    case 'repeatedly':
      return [node.child];
    case 'first':
    case 'all':
    case 'each':
      return node.children;
    case 'orFinally':
      return [node.actual, node.until];
    default:
      return [];
  }
}

/** The firing time of a processing-time trigger whose pane's first element arrived at `arrival`. */
export function targetTime(steps: readonly ProcessingTimeStep[], arrival: number): number {
  let at = arrival;
  for (const step of steps) {
    if ('delayMs' in step) {
      at += step.delayMs;
    } else {
      const since = (((at - step.offsetMs) % step.periodMs) + step.periodMs) % step.periodMs;
      if (since !== 0) at += step.periodMs - since;
    }
  }
  return at;
}
