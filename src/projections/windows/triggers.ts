import { ValidationError } from '../../errors.js';
import { type Duration, toMillis } from './duration.js';

/**
 * A trigger: when a window emits a pane. Plain data, built with `triggers.*` and composed as in
 * Apache Beam; each window runs its own copy of the trigger's state machine (see triggerMachine.ts).
 *
 * A trigger *finishes* when it will never fire again. When the whole trigger of a window finishes,
 * its last pane is final and the window is closed: later elements for it are dropped.
 */
export type TriggerSpec =
  | {
      /**
       * Fires when the watermark passes the end of the window (the ON_TIME pane), then finishes.
       * With early firings: also fires whenever `early` fires before that (restarting it each time).
       * With late firings: does not finish at the end of the window, and fires whenever `late` fires
       * after it (restarting it each time).
       */
      kind: 'afterWatermark';
      early?: TriggerSpec;
      late?: TriggerSpec;
    }
  | {
      /** Fires once at least `count` elements arrived in the pane, then finishes. */
      kind: 'afterCount';
      count: number;
    }
  | {
      /**
       * Fires once processing time reaches the time computed from the arrival of the first element
       * in the pane, by `steps` in order (add a delay, or round up to the next aligned boundary),
       * then finishes.
       */
      kind: 'afterProcessingTime';
      steps: ProcessingTimeStep[];
    }
  | {
      /** Fires whenever `trigger` fires; when `trigger` finishes it starts over. Never finishes. */
      kind: 'repeatedly';
      trigger: TriggerSpec;
    }
  | {
      /** afterFirst: fires and finishes once any fires. afterAll: once every one has fired. */
      kind: 'afterFirst' | 'afterAll';
      triggers: TriggerSpec[];
    }
  | {
      /** Runs each trigger in turn: fires whenever the current one fires; finishes after the last. */
      kind: 'afterEach';
      triggers: TriggerSpec[];
    }
  | {
      /** Fires whenever `trigger` fires, and finishes when `trigger` finishes or `until` fires (firing one last time). */
      kind: 'orFinally';
      trigger: TriggerSpec;
      until: TriggerSpec;
    }
  | {
      /** Never fires; the window still emits what is pending when it expires. */
      kind: 'never';
    };

/** How a processing-time trigger derives its firing time from the arrival of the pane's first element. */
export type ProcessingTimeStep = { delayMs: number } | { periodMs: number; offsetMs: number };

/**
 * @deprecated Every trigger is a TriggerSpec now; early and late firings take any trigger.
 */
export type FiringSpec = TriggerSpec;

export interface WatermarkTrigger extends Extract<TriggerSpec, { kind: 'afterWatermark' }> {
  /** Also fire whenever `trigger` fires before the watermark passes the end of the window. */
  withEarlyFirings(trigger: TriggerSpec): WatermarkTrigger;
  /** Keep the window open after the ON_TIME pane, and fire whenever `trigger` fires after it. */
  withLateFirings(trigger: TriggerSpec): WatermarkTrigger;
}

export interface ProcessingTimeTrigger extends Extract<TriggerSpec, { kind: 'afterProcessingTime' }> {
  /** Adds `delay` to the firing time. */
  plusDelayOf(delay: Duration): ProcessingTimeTrigger;
  /**
   * Rounds the firing time up to the next boundary of `period` counted from `offset` (an instant:
   * milliseconds since the epoch, a Date or an ISO string; or a duration such as `'30s'`), so that
   * every window fires at the same moments, like micro-batches. A time on a boundary stays.
   */
  aligned(period: Duration, offset?: Duration | Date | string): ProcessingTimeTrigger;
}

function watermarkTrigger(early: TriggerSpec | undefined, late: TriggerSpec | undefined): WatermarkTrigger {
  return {
    kind: 'afterWatermark',
    ...(early ? { early } : {}),
    ...(late ? { late } : {}),
    withEarlyFirings: (trigger) => watermarkTrigger(checkTrigger(trigger, 'early firings'), late),
    withLateFirings: (trigger) => watermarkTrigger(early, checkTrigger(trigger, 'late firings')),
  };
}

function processingTimeTrigger(steps: ProcessingTimeStep[]): ProcessingTimeTrigger {
  return {
    kind: 'afterProcessingTime',
    steps,
    plusDelayOf: (delay) =>
      processingTimeTrigger([...steps, { delayMs: toMillis(delay, 'afterProcessingTime delay') }]),
    aligned: (period, offset = 0) => {
      const periodMs = toMillis(period, 'aligned period', { allowZero: false });
      return processingTimeTrigger([...steps, { periodMs, offsetMs: mod(toInstant(offset), periodMs) }]);
    },
  };
}

export const triggers = {
  /**
   * The default trigger, `repeatedly(afterWatermark())`: the ON_TIME pane when the watermark passes
   * the end of the window, then a LATE pane for every late element within the allowed lateness.
   */
  default(): TriggerSpec {
    return { kind: 'repeatedly', trigger: { kind: 'afterWatermark' } };
  },
  /** The ON_TIME pane; add `.withEarlyFirings(t)` and `.withLateFirings(t)`. Alone, it finishes after the ON_TIME pane. */
  afterWatermark(): WatermarkTrigger {
    return watermarkTrigger(undefined, undefined);
  },
  /** Fires once `count` elements arrived in the pane (Beam's `AfterPane.elementCountAtLeast`). */
  afterCount(count: number): TriggerSpec {
    if (!Number.isSafeInteger(count) || count < 1) {
      throw new ValidationError(`afterCount needs a positive integer, got ${count}.`);
    }
    return { kind: 'afterCount', count };
  },
  /** `afterCount(1)`: fires for an element. Per-record triggering is `repeatedly(everyElement())`. */
  everyElement(): TriggerSpec {
    return { kind: 'afterCount', count: 1 };
  },
  /**
   * Fires `delay` of processing time after the first element of the pane arrived (Beam's
   * `AfterProcessingTime.pastFirstElementInPane().plusDelayOf(delay)`); `.aligned(period, offset)`
   * rounds that time up to fixed boundaries instead.
   */
  afterProcessingTime(delay: Duration = 0): ProcessingTimeTrigger {
    const delayMs = toMillis(delay, 'afterProcessingTime');
    return processingTimeTrigger(delayMs === 0 ? [] : [{ delayMs }]);
  },
  /** Fires whenever `trigger` fires, forever (Beam's `Repeatedly.forever`). */
  repeatedly(trigger: TriggerSpec): TriggerSpec {
    return { kind: 'repeatedly', trigger: checkTrigger(trigger, 'repeatedly') };
  },
  /** Fires once, as soon as any of `list` fires. */
  afterFirst(...list: TriggerSpec[]): TriggerSpec {
    return { kind: 'afterFirst', triggers: checkList(list, 'afterFirst') };
  },
  /** Fires once, when every one of `list` has fired. */
  afterAll(...list: TriggerSpec[]): TriggerSpec {
    return { kind: 'afterAll', triggers: checkList(list, 'afterAll') };
  },
  /** Runs `list` in sequence: fires whenever the current one fires, moving on when it finishes. */
  afterEach(...list: TriggerSpec[]): TriggerSpec {
    return { kind: 'afterEach', triggers: checkList(list, 'afterEach') };
  },
  /** Fires whenever `trigger` fires, until `until` fires (a last time) or `trigger` finishes. */
  orFinally(trigger: TriggerSpec, until: TriggerSpec): TriggerSpec {
    return {
      kind: 'orFinally',
      trigger: checkTrigger(trigger, 'orFinally'),
      until: checkTrigger(until, 'orFinally until'),
    };
  },
  /** Never fires. */
  never(): TriggerSpec {
    return { kind: 'never' };
  },
  /** Whichever of two triggers fires first: `afterFirst(a, b)`. */
  either(a: TriggerSpec, b: TriggerSpec): TriggerSpec {
    return triggers.afterFirst(a, b);
  },
};

/** Nodes a trigger may have: each node's finished flag is one bit of the stored state. */
export const MAX_TRIGGER_NODES = 30;

/**
 * The plain-data form of a trigger (builders carry methods that must not be stored), checked.
 * Also accepts the earlier `{ early?, late? }` firing specs, as the watermark trigger they meant.
 */
export function normalizeTrigger(trigger: TriggerSpec | LegacyTrigger | undefined): TriggerSpec {
  const spec = toSpec(trigger ?? triggers.default(), 'trigger');
  const nodes = countNodes(spec);
  if (nodes > MAX_TRIGGER_NODES) {
    throw new ValidationError(`The trigger has ${nodes} parts; at most ${MAX_TRIGGER_NODES} are supported.`);
  }
  return spec;
}

/** The shape of a trigger before the algebra: optional early and late firing conditions. */
interface LegacyTrigger {
  early?: LegacyFiring;
  late?: LegacyFiring;
}
interface LegacyFiring {
  everyElements?: number;
  afterProcessingTimeMs?: number;
}

function toSpec(value: unknown, where: string): TriggerSpec {
  const spec = value as TriggerSpec;
  const legacy = value as LegacyTrigger & LegacyFiring;
  if (spec === null || typeof spec !== 'object') {
    throw new ValidationError(`The ${where} is not a trigger.`, { hint: TRIGGER_HINT });
  }
  switch (spec.kind) {
    case 'afterWatermark':
      return {
        kind: 'afterWatermark',
        ...(spec.early ? { early: toSpec(spec.early, 'early firing') } : {}),
        ...(spec.late ? { late: toSpec(spec.late, 'late firing') } : {}),
      };
    case 'afterCount':
      return triggers.afterCount(spec.count);
    case 'afterProcessingTime':
      return { kind: 'afterProcessingTime', steps: spec.steps.map(checkStep) };
    case 'repeatedly':
      return { kind: 'repeatedly', trigger: toSpec(spec.trigger, where) };
    case 'afterFirst':
    case 'afterAll':
    case 'afterEach':
      return { kind: spec.kind, triggers: checkList(spec.triggers, spec.kind).map((t) => toSpec(t, where)) };
    case 'orFinally':
      return { kind: 'orFinally', trigger: toSpec(spec.trigger, where), until: toSpec(spec.until, where) };
    case 'never':
      return { kind: 'never' };
    case undefined:
      if ('everyElements' in legacy || 'afterProcessingTimeMs' in legacy) return legacyFiring(legacy, where);
      if ('early' in legacy || 'late' in legacy || Object.keys(legacy).length === 0) {
        return {
          kind: 'afterWatermark',
          ...(legacy.early ? { early: legacyFiring(legacy.early, 'early firing') } : {}),
          ...(legacy.late ? { late: legacyFiring(legacy.late, 'late firing') } : {}),
        };
      }
  }
  throw new ValidationError(`The ${where} is not a trigger.`, { hint: TRIGGER_HINT });
}

function legacyFiring(firing: LegacyFiring, where: string): TriggerSpec {
  const count = firing.everyElements === undefined ? undefined : triggers.afterCount(firing.everyElements);
  const time =
    firing.afterProcessingTimeMs === undefined
      ? undefined
      : triggers.afterProcessingTime(firing.afterProcessingTimeMs);
  if (count && time) return { kind: 'afterFirst', triggers: [count, toSpec(time, where)] };
  if (count) return count;
  if (time) return toSpec(time, where);
  throw new ValidationError(`The ${where} needs a condition.`, { hint: TRIGGER_HINT });
}

const TRIGGER_HINT =
  'Build triggers with triggers.* (afterWatermark(), afterCount(n), afterProcessingTime(delay), repeatedly(t), afterFirst(...), ...).';

function checkTrigger(trigger: TriggerSpec, where: string): TriggerSpec {
  return toSpec(trigger, where);
}

function checkList(list: readonly TriggerSpec[], where: string): TriggerSpec[] {
  if (!Array.isArray(list) || list.length === 0) {
    throw new ValidationError(`${where} needs at least one trigger.`, { hint: TRIGGER_HINT });
  }
  return list.map((trigger) => checkTrigger(trigger, where));
}

function checkStep(step: ProcessingTimeStep): ProcessingTimeStep {
  if ('delayMs' in step) return { delayMs: toMillis(step.delayMs, 'afterProcessingTime delay') };
  const periodMs = toMillis(step.periodMs, 'aligned period', { allowZero: false });
  return { periodMs, offsetMs: mod(toMillis(step.offsetMs, 'aligned offset'), periodMs) };
}

function countNodes(spec: TriggerSpec): number {
  switch (spec.kind) {
    case 'afterWatermark':
      // With early or late firings, the early slot is always a node (Never when not given).
      if (!spec.early && !spec.late) return 1;
      return 1 + (spec.early ? countNodes(spec.early) : 1) + (spec.late ? countNodes(spec.late) : 0);
    case 'repeatedly':
      return 1 + countNodes(spec.trigger);
    case 'afterFirst':
    case 'afterAll':
    case 'afterEach':
      return 1 + spec.triggers.reduce((sum, t) => sum + countNodes(t), 0);
    case 'orFinally':
      return 1 + countNodes(spec.trigger) + countNodes(spec.until);
    default:
      return 1;
  }
}

/** Milliseconds of an instant given as milliseconds, a Date, an ISO string or a duration string. */
function toInstant(value: Duration | Date | string): number {
  if (value instanceof Date) return value.getTime();
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value))
      throw new ValidationError(`aligned offset ${value} is not whole milliseconds.`);
    return value;
  }
  if (/^\d+(\.\d+)?(ms|s|m|h|d)$/.test(value)) return toMillis(value as Duration, 'aligned offset');
  const ms = Date.parse(value);
  if (!Number.isSafeInteger(ms)) {
    throw new ValidationError(
      `aligned offset ${JSON.stringify(value)} is neither an instant nor a duration.`,
      {
        field: 'offset',
      },
    );
  }
  return ms;
}

function mod(a: number, b: number): number {
  return ((a % b) + b) % b;
}
