import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../errors.js';
import { targetTime } from './triggerMachine.js';
import { normalizeTrigger, triggers } from './triggers.js';

describe('processing-time targets', () => {
  it('a delay adds to the arrival of the first element; an alignment rounds up to the next boundary', () => {
    const delay = normalizeTrigger(triggers.afterProcessingTime('1m'));
    expect(delay).toEqual({ kind: 'afterProcessingTime', steps: [{ delayMs: 60_000 }] });
    const aligned = triggers.afterProcessingTime().aligned('2m', '1970-01-01T00:01:00Z');
    expect(aligned.steps).toEqual([{ periodMs: 120_000, offsetMs: 60_000 }]);
    expect(targetTime(aligned.steps, 0)).toBe(60_000);
    expect(targetTime(aligned.steps, 60_000)).toBe(60_000); // on a boundary: stays
    expect(targetTime(aligned.steps, 60_001)).toBe(180_000);
    expect(targetTime(aligned.steps, -1)).toBe(60_000); // before the offset too
    // Steps apply in order: delay, then align; or align, then delay.
    const delayThenAlign = triggers.afterProcessingTime('30s').aligned('1m');
    expect(targetTime(delayThenAlign.steps, 40_000)).toBe(120_000);
    const alignThenDelay = triggers.afterProcessingTime().aligned('1m').plusDelayOf('30s');
    expect(targetTime(alignThenDelay.steps, 40_000)).toBe(90_000);
  });
});

describe('trigger definitions', () => {
  it('are plain data once normalized: the builders’ methods are not stored', () => {
    const trigger = triggers
      .afterWatermark()
      .withEarlyFirings(triggers.afterFirst(triggers.afterCount(2), triggers.afterProcessingTime('5s')))
      .withLateFirings(triggers.everyElement());
    expect(JSON.parse(JSON.stringify(normalizeTrigger(trigger)))).toEqual(normalizeTrigger(trigger));
    expect(normalizeTrigger(trigger)).toEqual({
      kind: 'afterWatermark',
      early: {
        kind: 'afterFirst',
        triggers: [
          { kind: 'afterCount', count: 2 },
          { kind: 'afterProcessingTime', steps: [{ delayMs: 5000 }] },
        ],
      },
      late: { kind: 'afterCount', count: 1 },
    });
  });

  it('default to repeatedly(afterWatermark()), and read the firing specs of earlier versions', () => {
    expect(normalizeTrigger(undefined)).toEqual({ kind: 'repeatedly', trigger: { kind: 'afterWatermark' } });
    expect(
      normalizeTrigger({
        early: { everyElements: 3, afterProcessingTimeMs: 100 },
        late: { everyElements: 1 },
      } as never),
    ).toEqual({
      kind: 'afterWatermark',
      early: {
        kind: 'afterFirst',
        triggers: [
          { kind: 'afterCount', count: 3 },
          { kind: 'afterProcessingTime', steps: [{ delayMs: 100 }] },
        ],
      },
      late: { kind: 'afterCount', count: 1 },
    });
  });

  it('refuse what is not a trigger with a ValidationError', () => {
    expect(() => triggers.afterCount(0)).toThrow(ValidationError);
    expect(() => triggers.afterFirst()).toThrow(ValidationError);
    expect(() => triggers.repeatedly({ kind: 'sometimes' } as never)).toThrow(/not a trigger/);
    expect(() => triggers.afterProcessingTime().aligned(0)).toThrow(ValidationError);
    expect(() => triggers.afterProcessingTime().aligned('1m', 'noon')).toThrow(
      /neither an instant nor a duration/,
    );
    const deep = Array.from({ length: 31 }, () => triggers.afterCount(1));
    expect(() => normalizeTrigger(triggers.afterAll(...deep))).toThrow(/at most 30/);
  });
});
