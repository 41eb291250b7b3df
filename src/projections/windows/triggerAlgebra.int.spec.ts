// The trigger algebra through testStream: which firings are final, how repetition resets, what
// closes a window, and what a window that expires with nothing pending emits.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.js';
import { type TestPane, testStream } from '../../testing/index.js';
import {
  aggregates,
  defineWindowedAggregate,
  triggers,
  type WindowedAggregateOptions,
  windows,
} from './index.js';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db.drop();
});

/** Counts per key in tumbling windows of 100 ms, discarding unless told otherwise. */
const counting = (options: Partial<WindowedAggregateOptions>) =>
  defineWindowedAggregate({
    name: 'algebra',
    key: () => 'k',
    window: windows.tumbling({ size: 100 }),
    aggregate: aggregates.count(),
    accumulation: 'discarding',
    ...options,
  });

const stream = (definition: ReturnType<typeof counting>) =>
  testStream(definition, { connectionString: db.url });
const at = (...times: number[]) => times.map((time) => ({ time }));
/** [value, timing, index, isFinal, firedAt] of each pane. */
const brief = (panes: TestPane[]) => panes.map((p) => [p.value, p.timing, p.index, p.isFinal, p.firedAt]);

describe('composite triggers', () => {
  it('afterEach runs its triggers in turn, then finishes: the window is closed and drops the rest', async () => {
    const result = await stream(
      counting({
        trigger: triggers.afterEach(triggers.afterCount(2), triggers.afterCount(3)),
        allowedLateness: 1000,
      }),
    )
      .addElements(...at(1, 2)) // afterCount(2) fires
      .addElements(...at(3, 4)) // afterCount(3) has seen 2
      .addElements(...at(5)) // ... and fires: the last of the sequence, so final
      .addElements(...at(6))
      .advanceWatermarkToInfinity()
      .runDetailed();
    expect(brief(result.panes)).toEqual([
      [2, 'EARLY', 0, false, 0],
      [3, 'EARLY', 1, true, 0],
    ]);
    expect(result.dropped.map((d) => [d.eventTime, d.reason])).toEqual([[6, 'closed']]);
  });

  it('afterAll fires once every sub-trigger has fired, once', async () => {
    const result = await stream(
      counting({
        trigger: triggers.afterAll(triggers.afterCount(2), triggers.afterProcessingTime(50)),
        allowedLateness: 1000,
      }),
    )
      .addElements(...at(1, 2, 3)) // the count is satisfied, the delay (due at 50) is not
      .advanceProcessingTime(49)
      .addElements(...at(4))
      .advanceProcessingTime(10) // the delay comes due at 50: both have fired
      .addElements(...at(5))
      .runDetailed();
    expect(brief(result.panes)).toEqual([[4, 'EARLY', 0, true, 50]]);
    expect(result.dropped.map((d) => d.reason)).toEqual(['closed']);
  });

  it('repeatedly(afterFirst(...)): whichever fires first, and both start over after any firing', async () => {
    const panes = await stream(
      counting({
        trigger: triggers.repeatedly(
          triggers.afterFirst(triggers.afterCount(3), triggers.afterProcessingTime(20)),
        ),
      }),
    )
      .addElements(...at(1, 2, 3)) // the count fires at 0
      .addElements(...at(4)) // a new pane: its delay is due at 20
      .advanceProcessingTime(15)
      .addElements(...at(5))
      .advanceProcessingTime(10) // the delay fires at 20, and the count starts over too
      .addElements(...at(6, 7, 8)) // so it fires on the third of these, not on the first
      .addElements(...at(9))
      .advanceWatermarkToInfinity() // the last element is pending: the final pane
      .run();
    expect(brief(panes)).toEqual([
      [3, 'EARLY', 0, false, 0],
      [2, 'EARLY', 1, false, 20],
      [3, 'EARLY', 2, false, 25],
      // The window fired EARLY only: its first pane past the end is ON_TIME.
      [1, 'ON_TIME', 3, true, 25],
    ]);
  });

  it('orFinally: repeated firings until the until-trigger fires, whose last pane may hold less', async () => {
    // Beam's own example: fires every 2 elements until 5 have arrived; the last pane holds 1.
    const result = await stream(
      counting({
        trigger: triggers.orFinally(triggers.repeatedly(triggers.afterCount(2)), triggers.afterCount(5)),
        allowedLateness: 1000,
      }),
    )
      .addElements(...at(1, 2, 3, 4, 5, 6))
      .runDetailed();
    expect(brief(result.panes)).toEqual([
      [2, 'EARLY', 0, false, 0],
      [2, 'EARLY', 1, false, 0],
      [1, 'EARLY', 2, true, 0],
    ]);
    expect(result.dropped.map((d) => [d.eventTime, d.reason])).toEqual([[6, 'closed']]);
  });

  it('never fires: the window emits what it holds when it expires', async () => {
    const panes = await stream(counting({ trigger: triggers.never(), allowedLateness: 50 }))
      .addElements(...at(1, 2))
      .advanceWatermarkTo(120)
      .addElements(...at(3))
      .advanceWatermarkTo(150)
      .run();
    expect(brief(panes)).toEqual([[3, 'ON_TIME', 0, true, 0]]);
  });
});

describe('the watermark trigger', () => {
  it('afterWatermark() alone finishes with the ON_TIME pane: it is final, and a late element is dropped', async () => {
    const result = await stream(counting({ trigger: triggers.afterWatermark(), allowedLateness: 1000 }))
      .addElements(...at(1))
      .advanceWatermarkTo(100)
      .addElements(...at(2))
      .runDetailed();
    expect(brief(result.panes)).toEqual([[1, 'ON_TIME', 0, true, 0]]);
    expect(result.dropped.map((d) => [d.eventTime, d.reason])).toEqual([[2, 'closed']]);
  });

  it('repeatedly(afterWatermark()) is the default: a LATE pane per late element, the window stays open', async () => {
    const result = await stream(counting({ trigger: triggers.default(), allowedLateness: 1000 }))
      .addElements(...at(1))
      .advanceWatermarkTo(100)
      .addElements(...at(2))
      .addElements(...at(3))
      .runDetailed();
    expect(brief(result.panes)).toEqual([
      [1, 'ON_TIME', 0, false, 0],
      [1, 'LATE', 1, false, 0],
      [1, 'LATE', 2, false, 0],
    ]);
    expect(result.dropped).toEqual([]);
  });

  it('late firings by count: the late trigger repeats after each late pane', async () => {
    const panes = await stream(
      counting({
        trigger: triggers.afterWatermark().withLateFirings(triggers.afterCount(2)),
        allowedLateness: 1000,
      }),
    )
      .addElements(...at(1))
      .advanceWatermarkTo(100)
      .addElements(...at(2, 3, 4, 5, 6))
      .advanceWatermarkToInfinity()
      .run();
    expect(brief(panes)).toEqual([
      [1, 'ON_TIME', 0, false, 0],
      [2, 'LATE', 1, false, 0],
      [2, 'LATE', 2, false, 0],
      [1, 'LATE', 3, true, 0],
    ]);
  });

  it('a window born after the watermark passed its end fires LATE panes only', async () => {
    const panes = await stream(
      counting({
        trigger: triggers.repeatedly(triggers.afterCount(1)),
        accumulation: 'accumulating',
        allowedLateness: 1000,
      }),
    )
      .advanceWatermarkTo(250)
      .addElements(...at(120, 130))
      .run();
    expect(brief(panes)).toEqual([
      [1, 'LATE', 0, false, 0],
      [2, 'LATE', 1, false, 0],
    ]);
  });
});

describe('windows that close with nothing pending', () => {
  const perRecord = { trigger: triggers.repeatedly(triggers.everyElement()), allowedLateness: 50 };

  it('per-record triggering: no pane when the window expires, and the first pane past the end is ON_TIME', async () => {
    const panes = await stream(counting({ ...perRecord, accumulation: 'accumulating' }))
      .addElements(...at(1, 2))
      .advanceWatermarkTo(100) // the end of the window: nothing pending, the trigger does not fire
      .addElements(...at(3)) // the first pane after the end of the window
      .addElements(...at(4))
      .advanceWatermarkToInfinity()
      .run();
    expect(brief(panes)).toEqual([
      [1, 'EARLY', 0, false, 0],
      [2, 'EARLY', 1, false, 0],
      [3, 'ON_TIME', 2, false, 0],
      [4, 'LATE', 3, false, 0],
    ]);
  });

  it("closingBehavior 'fire-always': the expiry fires an empty final pane, a marker that the window closed", async () => {
    const panes = await stream(counting({ ...perRecord, closingBehavior: 'fire-always' }))
      .addElements(...at(1, 2))
      .advanceProcessingTime(5)
      .advanceWatermarkTo(150)
      .run();
    expect(panes.map((p) => [p.value, p.timing, p.index, p.isFinal, p.firedAt, p.watermark])).toEqual([
      [1, 'EARLY', 0, false, 0, null],
      [1, 'EARLY', 1, false, 0, null],
      [0, 'ON_TIME', 2, true, 5, 150],
    ]);
  });
});

describe('sessions', () => {
  it('merging windows merge their trigger state: counts add up, the earliest delay wins', async () => {
    const definition = counting({
      window: windows.sessions({ gap: 10 }),
      trigger: triggers
        .afterWatermark()
        .withEarlyFirings(triggers.afterFirst(triggers.afterCount(3), triggers.afterProcessingTime(100))),
    });
    const panes = await stream(definition)
      .addElements(...at(0, 15)) // two sessions of one element each, their delays due at 100
      .advanceProcessingTime(30)
      .addElements(...at(8)) // bridges them: the merged count is 3
      .addElements(...at(40)) // a new session, its delay due at 130
      .advanceProcessingTime(40)
      .addElements(...at(45)) // joins it: the merged delay stays due at 130
      .advanceProcessingTime(100)
      .advanceWatermarkToInfinity()
      .run();
    expect(panes.map((p) => [p.window.start, p.window.end, p.value, p.timing, p.index, p.firedAt])).toEqual([
      [0, 25, 3, 'EARLY', 0, 30],
      [40, 55, 2, 'EARLY', 0, 130],
      [0, 25, 0, 'ON_TIME', 1, 170],
      [40, 55, 0, 'ON_TIME', 1, 170],
    ]);
  });
});

describe('trigger definitions', () => {
  it('the short forms of earlier versions still build the same triggers', async () => {
    const script = (trigger: WindowedAggregateOptions['trigger']) =>
      stream(counting({ trigger, allowedLateness: 1000 }))
        .addElements(...at(1, 2, 3))
        .advanceWatermarkTo(100)
        .addElements(...at(4))
        .run();
    const legacy = await script({ early: { everyElements: 2 }, late: { everyElements: 1 } } as never);
    const algebra = await script(
      triggers
        .afterWatermark()
        .withEarlyFirings(triggers.afterCount(2))
        .withLateFirings(triggers.everyElement()),
    );
    expect(brief(legacy)).toEqual([
      [2, 'EARLY', 0, false, 0],
      [1, 'ON_TIME', 1, false, 0],
      [1, 'LATE', 2, false, 0],
    ]);
    expect(algebra).toEqual(legacy);
  });
});
