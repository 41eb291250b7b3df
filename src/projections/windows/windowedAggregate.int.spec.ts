import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.js';
import { createPool, withTransaction } from '../../db/index.js';
import {
  type TestElement,
  type TestPane,
  type TestStream,
  type TestStreamOptions,
  type TestStreamResult,
  type TestTime,
  testStream,
} from '../../testing/index.js';
import {
  aggregates,
  type Duration,
  defineAggregate,
  defineWindowedAggregate,
  MAX_WATERMARK,
  type Pane,
  runWindowStep,
  triggers,
  type WindowElement,
  type WindowedAggregateOptions,
  watermarks,
  windows,
} from './index.js';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db.drop();
});

/** An aggregate keyed by data.k over data.v. */
const agg = (options: Partial<WindowedAggregateOptions>) =>
  defineWindowedAggregate({
    name: 'test_agg',
    key: (e) => String(e.data.k ?? 'a'),
    value: (e) => e.data.v ?? null,
    window: windows.tumbling({ size: 10 }),
    aggregate: aggregates.sum(),
    ...options,
  });

const at = (
  time: number,
  v: number | string = 1,
  k = 'a',
  extra: Record<string, string> = {},
): TestElement => ({
  time,
  data: { k, v, ...extra },
});

/** A pane without when it fired (tests of what fires; the firing times have tests of their own). */
type PaneShape = Omit<TestPane, 'firedAt' | 'watermark'>;

const pane = (
  key: string,
  start: number,
  end: number,
  index: number,
  timing: TestPane['timing'],
  value: TestPane['value'],
  isFinal: boolean,
  retracted?: TestPane['retracted'],
): PaneShape => ({
  key,
  window: { start, end },
  value,
  timing,
  index,
  isFinal,
  ...(retracted === undefined ? {} : { retracted }),
});

const shape = ({ firedAt: _firedAt, watermark: _watermark, ...rest }: TestPane): PaneShape => rest;

/** A test stream whose panes leave out when they fired. */
const stream = (definition: ReturnType<typeof agg>, strategy = false, options: TestStreamOptions = {}) =>
  shapes(
    testStream(definition, {
      connectionString: db.url,
      watermark: strategy ? 'strategy' : 'manual',
      ...options,
    }),
  );

interface ShapedStream {
  addElements(...elements: TestElement[]): ShapedStream;
  advanceWatermarkTo(time: TestTime): ShapedStream;
  advanceWatermarkToInfinity(): ShapedStream;
  advanceProcessingTime(duration: Duration): ShapedStream;
  advanceProcessingTimeTo(time: TestTime): ShapedStream;
  run(): Promise<PaneShape[]>;
  runDetailed(): Promise<Omit<TestStreamResult, 'panes'> & { panes: PaneShape[] }>;
}

function shapes(inner: TestStream): ShapedStream {
  const wrapped: ShapedStream = {
    addElements(...elements) {
      inner.addElements(...elements);
      return wrapped;
    },
    advanceWatermarkTo(time) {
      inner.advanceWatermarkTo(time);
      return wrapped;
    },
    advanceWatermarkToInfinity() {
      inner.advanceWatermarkToInfinity();
      return wrapped;
    },
    advanceProcessingTime(duration) {
      inner.advanceProcessingTime(duration);
      return wrapped;
    },
    advanceProcessingTimeTo(time) {
      inner.advanceProcessingTimeTo(time);
      return wrapped;
    },
    run: async () => (await inner.run()).map(shape),
    runDetailed: async () => {
      const result = await inner.runDetailed();
      return { ...result, panes: result.panes.map(shape) };
    },
  };
  return wrapped;
}

describe('window kinds', () => {
  it('tumbling: one ON_TIME pane per window, final without lateness; a late element is dropped and recorded', async () => {
    const result = await stream(agg({}))
      .addElements(at(1, 1), at(5, 2), at(12, 3))
      .advanceWatermarkTo(10)
      .addElements(at(3, 10))
      .advanceWatermarkToInfinity()
      .runDetailed();
    expect(result.panes).toEqual([
      pane('a', 0, 10, 0, 'ON_TIME', 3, true),
      pane('a', 10, 20, 0, 'ON_TIME', 3, true),
    ]);
    expect(result.dropped).toEqual([
      { key: 'a', eventTime: 3, window: { start: 0, end: 10 }, watermark: 10, reason: 'expired' },
    ]);
  });

  it('tumbling with an offset shifts the boundaries', async () => {
    const panes = await stream(
      agg({ window: windows.tumbling({ size: 10, offset: 3 }), aggregate: aggregates.count() }),
    )
      .addElements(at(2), at(3), at(12), at(13))
      .advanceWatermarkToInfinity()
      .run();
    expect(panes).toEqual([
      pane('a', -7, 3, 0, 'ON_TIME', 1, true),
      pane('a', 3, 13, 0, 'ON_TIME', 2, true),
      pane('a', 13, 23, 0, 'ON_TIME', 1, true),
    ]);
  });

  it('sliding: an element lands in size/period windows, panes in order of window end', async () => {
    const panes = await stream(
      agg({ window: windows.sliding({ size: 10, period: 5 }), aggregate: aggregates.count() }),
    )
      .addElements(at(7), at(12))
      .advanceWatermarkTo(15)
      .advanceWatermarkToInfinity()
      .run();
    expect(panes).toEqual([
      pane('a', 0, 10, 0, 'ON_TIME', 1, true),
      pane('a', 5, 15, 0, 'ON_TIME', 2, true),
      pane('a', 10, 20, 0, 'ON_TIME', 1, true),
    ]);
  });

  it('sessions: overlapping proto-windows merge, windows touching at an endpoint do not', async () => {
    const panes = await stream(agg({ window: windows.sessions({ gap: 10 }), aggregate: aggregates.count() }))
      .addElements(at(0, 1, 'a'), at(10, 1, 'a'), at(0, 1, 'b'), at(9, 1, 'b'), at(30, 1, 'b'))
      .advanceWatermarkToInfinity()
      .run();
    expect(panes).toEqual([
      pane('a', 0, 10, 0, 'ON_TIME', 1, true),
      pane('b', 0, 19, 0, 'ON_TIME', 2, true),
      pane('a', 10, 20, 0, 'ON_TIME', 1, true),
      pane('b', 30, 40, 0, 'ON_TIME', 1, true),
    ]);
  });

  it('sessions: a late element bridges two fired sessions into one LATE pane, continuing their pane indices', async () => {
    const definition = agg({ window: windows.sessions({ gap: 10 }), allowedLateness: 20 });
    const panes = await stream(definition)
      .addElements(at(0, 1), at(15, 2))
      .advanceWatermarkTo(26)
      .addElements(at(8, 4))
      .advanceWatermarkTo(45)
      .addElements(at(9, 100))
      .run();
    expect(panes).toEqual([
      pane('a', 0, 10, 0, 'ON_TIME', 1, false),
      pane('a', 15, 25, 0, 'ON_TIME', 2, false),
      pane('a', 0, 25, 1, 'LATE', 7, false),
    ]);
  });

  it('sessions in retracting mode take back the panes of the merged-away windows', async () => {
    const definition = agg({
      window: windows.sessions({ gap: 10 }),
      allowedLateness: 20,
      accumulation: 'retracting',
    });
    const panes = await stream(definition)
      .addElements(at(0, 1), at(15, 2))
      .advanceWatermarkTo(26)
      .addElements(at(8, 4))
      .run();
    expect(panes).toEqual([
      pane('a', 0, 10, 0, 'ON_TIME', 1, false),
      pane('a', 15, 25, 0, 'ON_TIME', 2, false),
      pane('a', 0, 10, 1, 'LATE', null, true, 1),
      pane('a', 15, 25, 1, 'LATE', null, true, 2),
      pane('a', 0, 25, 2, 'LATE', 7, false),
    ]);
    // Downstream sums over value minus retracted stay right.
    const net = panes.reduce((sum, p) => sum + Number(p.value ?? 0) - Number(p.retracted ?? 0), 0);
    expect(net).toBe(7);
  });

  it('global: early firings every 3 elements, ON_TIME only at the end of time', async () => {
    const panes = await stream(
      agg({
        window: windows.global(),
        aggregate: aggregates.count(),
        trigger: triggers.afterWatermark().withEarlyFirings(triggers.afterCount(3)),
      }),
    )
      .addElements(at(1), at(2), at(3), at(4), at(5))
      .advanceWatermarkTo(1_000_000)
      .advanceWatermarkToInfinity()
      .run();
    const g = { start: Date.parse('0001-01-01T00:00:00Z'), end: Date.parse('9999-12-31T23:59:59.999Z') };
    expect(panes).toEqual([
      pane('a', g.start, g.end, 0, 'EARLY', 3, false),
      pane('a', g.start, g.end, 1, 'ON_TIME', 5, true),
    ]);
  });
});

describe('triggers and accumulation', () => {
  const early2 = triggers.afterWatermark().withEarlyFirings(triggers.afterCount(2));

  it('discarding: an early pane empties the window, and the ON_TIME pane still fires, empty', async () => {
    const panes = await stream(
      agg({ trigger: early2, accumulation: 'discarding', aggregate: aggregates.count() }),
    )
      .addElements(at(1), at(2))
      .advanceWatermarkTo(10)
      .run();
    expect(panes).toEqual([pane('a', 0, 10, 0, 'EARLY', 2, false), pane('a', 0, 10, 1, 'ON_TIME', 0, true)]);
  });

  it('discarding vs accumulating: what the ON_TIME pane after an early pane holds', async () => {
    const script = (accumulation: 'discarding' | 'accumulating') =>
      stream(agg({ trigger: early2, accumulation, aggregate: aggregates.count() }))
        .addElements(at(1), at(2), at(3))
        .advanceWatermarkTo(10)
        .run();
    expect(await script('discarding')).toEqual([
      pane('a', 0, 10, 0, 'EARLY', 2, false),
      pane('a', 0, 10, 1, 'ON_TIME', 1, true),
    ]);
    expect(await script('accumulating')).toEqual([
      pane('a', 0, 10, 0, 'EARLY', 2, false),
      pane('a', 0, 10, 1, 'ON_TIME', 3, true),
    ]);
  });

  it('retracting: each pane carries the value of the pane it replaces', async () => {
    const panes = await stream(
      agg({
        trigger: triggers.afterWatermark().withEarlyFirings(triggers.everyElement()),
        accumulation: 'retracting',
        aggregate: aggregates.count(),
      }),
    )
      .addElements(at(1), at(2))
      .advanceWatermarkTo(10)
      .run();
    expect(panes).toEqual([
      pane('a', 0, 10, 0, 'EARLY', 1, false),
      pane('a', 0, 10, 1, 'EARLY', 2, false, 1),
      pane('a', 0, 10, 2, 'ON_TIME', 2, true, 2),
    ]);
  });

  it('early firing a processing-time delay after the first element of a pane', async () => {
    const panes = await stream(
      agg({ trigger: triggers.afterWatermark().withEarlyFirings(triggers.afterProcessingTime(5)) }),
    )
      .addElements(at(1, 1))
      .advanceProcessingTime(3)
      .addElements(at(2, 2))
      .advanceProcessingTime(2) // 5 after the first element
      .addElements(at(3, 4))
      .advanceWatermarkTo(10)
      .advanceProcessingTime(10) // the pending timer was cancelled by the ON_TIME firing
      .run();
    expect(panes).toEqual([pane('a', 0, 10, 0, 'EARLY', 3, false), pane('a', 0, 10, 1, 'ON_TIME', 7, true)]);
  });

  it('default trigger: a LATE pane per late element within the allowed lateness, then drop', async () => {
    const result = await stream(agg({ allowedLateness: 10, aggregate: aggregates.count() }))
      .addElements(at(1))
      .advanceWatermarkTo(12)
      .addElements(at(5), at(6))
      .advanceWatermarkTo(20)
      .addElements(at(7))
      .runDetailed();
    expect(result.panes).toEqual([
      pane('a', 0, 10, 0, 'ON_TIME', 1, false),
      pane('a', 0, 10, 1, 'LATE', 2, false),
      pane('a', 0, 10, 2, 'LATE', 3, false),
    ]);
    expect(result.dropped).toHaveLength(1);
  });

  it('late firings after a processing-time delay; what is left fires as the final pane at expiry', async () => {
    const result = await stream(
      agg({
        trigger: triggers.afterWatermark().withLateFirings(triggers.afterProcessingTime(5)),
        allowedLateness: 20,
        accumulation: 'discarding',
      }),
    )
      .addElements(at(1, 1))
      .advanceWatermarkTo(10)
      .addElements(at(2, 5), at(3, 6))
      .advanceProcessingTime(5)
      .addElements(at(4, 7))
      .advanceWatermarkTo(30)
      .addElements(at(5, 1000))
      .runDetailed();
    expect(result.panes).toEqual([
      pane('a', 0, 10, 0, 'ON_TIME', 1, false),
      pane('a', 0, 10, 1, 'LATE', 11, false),
      pane('a', 0, 10, 2, 'LATE', 7, true),
    ]);
    expect(result.dropped.map((d) => d.eventTime)).toEqual([5]);
  });

  it('composite early + on time + late, several keys, panes ordered by window end then key', async () => {
    const panes = await stream(
      agg({
        trigger: triggers
          .afterWatermark()
          .withEarlyFirings(triggers.afterCount(2))
          .withLateFirings(triggers.everyElement()),
        allowedLateness: 100,
        aggregate: aggregates.count(),
      }),
    )
      .addElements(at(1, 1, 'b'), at(2, 1, 'a'), at(3, 1, 'b'), at(14, 1, 'a'))
      .advanceWatermarkTo(20)
      .addElements(at(5, 1, 'a'))
      .run();
    expect(panes).toEqual([
      pane('b', 0, 10, 0, 'EARLY', 2, false),
      pane('a', 0, 10, 0, 'ON_TIME', 1, false),
      pane('b', 0, 10, 1, 'ON_TIME', 2, false),
      pane('a', 10, 20, 0, 'ON_TIME', 1, false),
      pane('a', 0, 10, 1, 'LATE', 2, false),
    ]);
  });
});

describe('more combinations', () => {
  it('sliding, discarding, early every 2 and late every element, with an expired window dropping an element', async () => {
    const result = await stream(
      agg({
        window: windows.sliding({ size: 10, period: 5 }),
        trigger: triggers
          .afterWatermark()
          .withEarlyFirings(triggers.afterCount(2))
          .withLateFirings(triggers.everyElement()),
        allowedLateness: 5,
        accumulation: 'discarding',
        aggregate: aggregates.count(),
      }),
    )
      .addElements(at(6), at(7))
      .advanceWatermarkTo(10)
      .addElements(at(8))
      .advanceWatermarkTo(15)
      .addElements(at(9))
      .advanceWatermarkToInfinity()
      .runDetailed();
    expect(result.panes).toEqual([
      pane('a', 0, 10, 0, 'EARLY', 2, false),
      pane('a', 5, 15, 0, 'EARLY', 2, false),
      pane('a', 0, 10, 1, 'ON_TIME', 0, false),
      pane('a', 0, 10, 2, 'LATE', 1, false),
      pane('a', 5, 15, 1, 'ON_TIME', 1, false),
      pane('a', 5, 15, 2, 'LATE', 1, false),
    ]);
    expect(result.dropped).toEqual([
      { key: 'a', eventTime: 9, window: { start: 0, end: 10 }, watermark: 15, reason: 'expired' },
    ]);
  });

  it('sessions with a processing-time early firing: a merged session keeps the earliest pending timer', async () => {
    const panes = await stream(
      agg({
        window: windows.sessions({ gap: 10 }),
        trigger: triggers.afterWatermark().withEarlyFirings(triggers.afterProcessingTime(5)),
      }),
    )
      .addElements(at(0, 1))
      .advanceProcessingTime(2)
      .addElements(at(20, 2), at(5, 4))
      .advanceProcessingTime(3)
      .advanceProcessingTime(2)
      .advanceWatermarkToInfinity()
      .run();
    expect(panes).toEqual([
      pane('a', 0, 15, 0, 'EARLY', 5, false),
      pane('a', 20, 30, 0, 'EARLY', 2, false),
      pane('a', 0, 15, 1, 'ON_TIME', 5, true),
      pane('a', 20, 30, 1, 'ON_TIME', 2, true),
    ]);
  });
});

describe('watermark strategies', () => {
  it('bounded out-of-orderness: the watermark trails the largest event time and closes windows', async () => {
    const result = await stream(
      agg({ watermark: watermarks.boundedOutOfOrderness({ maxLag: 5 }), aggregate: aggregates.count() }),
      true,
    )
      .addElements(at(1), at(9), at(16), at(4), at(25))
      .runDetailed();
    expect(result.panes).toEqual([
      pane('a', 0, 10, 0, 'ON_TIME', 2, true),
      pane('a', 10, 20, 0, 'ON_TIME', 1, true),
    ]);
    expect(result.dropped.map((d) => d.eventTime)).toEqual([4]);
    expect(result.watermark).toBe(20);
  });

  it('an idle source stops holding the watermark back', async () => {
    const definition = agg({
      watermark: watermarks.boundedOutOfOrderness({
        maxLag: 0,
        idleTimeout: 100,
        source: (e) => String(e.data.s),
      }),
      aggregate: aggregates.count(),
    });
    const panes = await stream(definition, true)
      .addElements(at(5, 1, 'b', { s: 'B' }), at(50, 1, 'a', { s: 'A' }))
      .advanceProcessingTime(60)
      .addElements(at(51, 1, 'a', { s: 'A' }))
      .advanceProcessingTime(39) // B quiet for 99: still holds the watermark at 5
      .advanceProcessingTime(1) // B quiet for 100: idle; A (quiet for 40) alone sets it to 51
      .run();
    expect(panes).toEqual([pane('b', 0, 10, 0, 'ON_TIME', 1, true)]);
  });

  it('commit-time watermark follows the clock once the source is quiet', async () => {
    const definition = agg({
      watermark: watermarks.commitTime({ idleTimeout: 100 }),
      aggregate: aggregates.count(),
    });
    const panes = await stream(definition, true, { startProcessingTime: 1000 })
      .addElements(at(1001), at(1004))
      .advanceProcessingTimeTo(1050)
      .advanceProcessingTimeTo(1200)
      .run();
    expect(panes).toEqual([pane('a', 1000, 1010, 0, 'ON_TIME', 2, true)]);
  });
});

describe('aggregates', () => {
  it('sums integers beyond 2^53 and decimal fractions exactly', async () => {
    const panes = await stream(agg({}))
      .addElements(
        at(1, '9007199254740993'),
        at(2, 2),
        at(11, 0.1),
        at(12, 0.2),
        at(21, '-1.50'),
        at(22, 1.5),
      )
      .advanceWatermarkToInfinity()
      .run();
    expect(panes.map((p) => p.value)).toEqual(['9007199254740995', 0.3, 0]);
  });

  it('min, max and avg, with null for an empty pane', async () => {
    const run = (aggregate: WindowedAggregateOptions['aggregate']) =>
      stream(
        agg({
          aggregate,
          trigger: triggers.afterWatermark().withEarlyFirings(triggers.afterCount(3)),
          accumulation: 'discarding',
        }),
      )
        .addElements(at(1, 3), at(2, '-7'), at(3, 10.5))
        .advanceWatermarkTo(10)
        .run();
    expect((await run(aggregates.min())).map((p) => p.value)).toEqual(['-7', null]);
    expect((await run(aggregates.max())).map((p) => p.value)).toEqual([10.5, null]);
    expect((await run(aggregates.avg())).map((p) => p.value)).toEqual([6.5 / 3, null]);
  });

  it('a user-defined aggregate merges its accumulators when sessions merge', async () => {
    const distinct = defineAggregate<string[], string[]>({
      name: 'distinct',
      init: () => [],
      add: (acc, value) => (acc.includes(String(value)) ? acc : [...acc, String(value)].sort()),
      merge: (a, b) => [...new Set([...a, ...b])].sort(),
      result: (acc) => acc,
    });
    const panes = await stream(agg({ window: windows.sessions({ gap: 5 }), aggregate: distinct }))
      .addElements(at(0, 'x'), at(8, 'y'), at(4, 'x'), at(20, 'z'))
      .advanceWatermarkToInfinity()
      .run();
    expect(panes).toEqual([
      pane('a', 0, 13, 0, 'ON_TIME', ['x', 'y'], true),
      pane('a', 20, 25, 0, 'ON_TIME', ['z'], true),
    ]);
  });
});

describe('state in PostgreSQL', () => {
  it('gives the same panes whatever the batch sizes, loads only what a step needs, and expires every window', async () => {
    const pool = createPool(db.url, { max: 2 });
    const definition = agg({
      name: 'batches',
      window: windows.sessions({ gap: 7 }),
      allowedLateness: 15,
      trigger: triggers
        .afterWatermark()
        .withEarlyFirings(triggers.afterCount(3))
        .withLateFirings(triggers.everyElement()),
      accumulation: 'retracting',
      watermark: watermarks.boundedOutOfOrderness({ maxLag: 10 }),
    });
    let seed = 7;
    const next = () => {
      seed = (seed * 1664525 + 1013904223) >>> 0;
      return seed / 2 ** 32;
    };
    const elements: WindowElement[] = [];
    for (let i = 0, clock = 0; i < 300; i++) {
      clock += Math.floor(next() * 4);
      const time = clock - Math.floor(next() * 25);
      elements.push({ key: `k${Math.floor(next() * 5)}`, time, value: i, source: '', position: null });
    }
    const run = async (stateKey: string, size: number) => {
      const panes: Pane[] = [];
      for (let i = 0; i < elements.length; i += size) {
        const inputs = elements.slice(i, i + size).map((element) => ({ kind: 'element' as const, element }));
        const out = await withTransaction(pool, (tx) =>
          runWindowStep(tx, definition, inputs, { now: 0, fireTimers: true, stateKey }),
        );
        panes.push(...out.panes);
      }
      const end = await withTransaction(pool, (tx) =>
        runWindowStep(tx, definition, [{ kind: 'watermark', to: MAX_WATERMARK }], { now: 0, stateKey }),
      );
      panes.push(...end.panes);
      return panes;
    };
    try {
      const whole = await run('whole', elements.length);
      expect(whole.length).toBeGreaterThan(40);
      expect(await run('by_one', 1)).toEqual(whole);
      expect(await run('by_seven', 7)).toEqual(whole);
      const { rows } = await pool.query(
        `select aggregate, count(*)::int as n from tributary.window_state
          where aggregate in ('whole', 'by_one', 'by_seven') group by aggregate`,
      );
      expect(rows).toEqual([]);
    } finally {
      await pool.end();
    }
  });
});

describe('the README example', () => {
  it('gives the panes the README shows', async () => {
    const revenue = defineWindowedAggregate({
      name: 'revenue_per_minute',
      filter: { types: ['OrderPaid'] },
      key: (e) => String(e.data.shop),
      value: (e) => e.data.amount,
      window: windows.tumbling({ size: '1m' }),
      watermark: watermarks.boundedOutOfOrderness({ maxLag: '5s', idleTimeout: '1m' }),
      allowedLateness: '10m',
      trigger: triggers
        .afterWatermark()
        .withEarlyFirings(triggers.afterProcessingTime('10s'))
        .withLateFirings(triggers.everyElement()),
      accumulation: 'accumulating',
      aggregate: aggregates.sum(),
    });
    const panes = await shapes(testStream(revenue, { connectionString: db.url }))
      .addElements(
        { time: 1_000, data: { shop: 'a', amount: 5 } },
        { time: 2_000, data: { shop: 'a', amount: 7 } },
      )
      .advanceProcessingTime('10s')
      .advanceWatermarkTo(60_000)
      .addElements({ time: 3_000, data: { shop: 'a', amount: 1 } })
      .advanceWatermarkToInfinity()
      .run();
    expect(panes).toEqual([
      pane('a', 0, 60_000, 0, 'EARLY', 12, false),
      pane('a', 0, 60_000, 1, 'ON_TIME', 12, false),
      pane('a', 0, 60_000, 2, 'LATE', 13, false),
    ]);
  });
});
