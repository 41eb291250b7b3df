import { ValidationError } from '../../errors.js';
import { type Duration, toMillis } from './duration.js';

/**
 * When a pane fires between firings of the same phase (early: before the watermark passes the
 * end of the window; late: after it). Both conditions may be set: whichever comes first fires,
 * and both restart after any firing of the window.
 */
export interface FiringSpec {
  /** Fire once this many elements arrived since the last firing. */
  everyElements?: number;
  /** Fire this long (processing time) after the first element since the last firing. */
  afterProcessingTimeMs?: number;
}

/**
 * A trigger: optional early firings, the ON_TIME firing when the watermark passes the end of
 * the window (always), and late firings for elements within the allowed lateness. Without late
 * firings, late elements are held and fire once, in the final pane, when the window expires.
 */
export interface TriggerSpec {
  early?: FiringSpec;
  late?: FiringSpec;
}

export interface WatermarkTrigger extends TriggerSpec {
  withEarlyFirings(firing: FiringSpec): WatermarkTrigger;
  withLateFirings(firing: FiringSpec): WatermarkTrigger;
}

function watermarkTrigger(spec: TriggerSpec): WatermarkTrigger {
  return {
    ...spec,
    withEarlyFirings: (early) => watermarkTrigger({ ...spec, early: checkFiring(early, 'early') }),
    withLateFirings: (late) => watermarkTrigger({ ...spec, late: checkFiring(late, 'late') }),
  };
}

export const triggers = {
  /** The default: ON_TIME when the watermark passes the end of the window, then a LATE pane per late element. */
  default(): TriggerSpec {
    return { late: { everyElements: 1 } };
  },
  /** ON_TIME only; add `.withEarlyFirings(...)` and `.withLateFirings(...)`. */
  afterWatermark(): WatermarkTrigger {
    return watermarkTrigger({});
  },
  /** Fire every `count` elements (since the last firing). */
  afterCount(count: number): FiringSpec {
    if (!Number.isSafeInteger(count) || count < 1) {
      throw new ValidationError(`afterCount needs a positive integer, got ${count}.`);
    }
    return { everyElements: count };
  },
  /** Fire for every element. */
  everyElement(): FiringSpec {
    return { everyElements: 1 };
  },
  /** Fire `delay` of processing time after the first element since the last firing. */
  afterProcessingTime(delay: Duration): FiringSpec {
    return { afterProcessingTimeMs: toMillis(delay, 'afterProcessingTime', { allowZero: false }) };
  },
  /** Whichever of two firing conditions comes first. */
  either(a: FiringSpec, b: FiringSpec): FiringSpec {
    return { ...a, ...b };
  },
};

function checkFiring(firing: FiringSpec, phase: string): FiringSpec {
  if (firing.everyElements === undefined && firing.afterProcessingTimeMs === undefined) {
    throw new ValidationError(`The ${phase} firing needs a condition.`, {
      hint: 'Use triggers.afterCount(n), triggers.everyElement() or triggers.afterProcessingTime(delay).',
    });
  }
  return { everyElements: firing.everyElements, afterProcessingTimeMs: firing.afterProcessingTimeMs };
}

/** The plain-data part of a trigger (builders carry functions that must not be stored). */
export function normalizeTrigger(trigger: TriggerSpec | undefined): TriggerSpec {
  const spec = trigger ?? triggers.default();
  const out: TriggerSpec = {};
  if (spec.early) out.early = checkFiring(spec.early, 'early');
  if (spec.late) out.late = checkFiring(spec.late, 'late');
  return out;
}
