import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../errors.js';
import { aggregates } from './aggregates.js';
import { addDecimals, decimalToJson, formatDecimal, parseDecimal } from './decimal.js';
import { createWindowEngine, type EngineConfig, type WindowState } from './engine.js';
import { triggers } from './triggers.js';
import type { Pane, WindowElement } from './types.js';
import { MIN_WATERMARK, strategyWatermark, type WatermarkState, watermarks } from './watermarks.js';
import { assignWindows, windows } from './windows.js';

describe('window assignment', () => {
  it('tumbling windows with an offset, including negative times', () => {
    const spec = windows.tumbling({ size: '10s', offset: '3s' });
    expect(assignWindows(spec, 2_000)).toEqual([{ start: -7_000, end: 3_000 }]);
    expect(assignWindows(spec, 3_000)).toEqual([{ start: 3_000, end: 13_000 }]);
    expect(assignWindows(windows.tumbling({ size: 10 }), -1)).toEqual([{ start: -10, end: 0 }]);
  });

  it('sliding windows: size/period windows per element, earliest first', () => {
    expect(assignWindows(windows.sliding({ size: 10, period: 2 }), 7)).toEqual([
      { start: -2, end: 8 },
      { start: 0, end: 10 },
      { start: 2, end: 12 },
      { start: 4, end: 14 },
      { start: 6, end: 16 },
    ]);
  });

  it('rejects nonsense shapes with a ValidationError', () => {
    expect(() => windows.tumbling({ size: 0 })).toThrow(ValidationError);
    expect(() => windows.sliding({ size: 5, period: 10 })).toThrow(ValidationError);
    expect(() => windows.tumbling({ size: '10 parsecs' as never })).toThrow(ValidationError);
    expect(() => triggers.afterCount(0)).toThrow(ValidationError);
  });
});

describe('exact decimals', () => {
  it('adds integers past 2^53 and decimal fractions without rounding', () => {
    const sum = (...values: unknown[]) =>
      decimalToJson(values.map((v) => parseDecimal(v)).reduce((a, b) => addDecimals(a, b)));
    expect(sum('9007199254740993', 2)).toBe('9007199254740995');
    expect(sum(0.1, 0.2)).toBe(0.3);
    expect(sum(1e21, 1)).toBe('1000000000000000000001');
    expect(sum('-0.50', '0.5')).toBe(0);
    expect(formatDecimal(parseDecimal('1.2e-3'))).toBe('0.0012');
    expect(() => parseDecimal('12abc')).toThrow(ValidationError);
    expect(() => parseDecimal(Number.NaN)).toThrow(ValidationError);
  });
});

/** Runs the engine over `chunks`, carrying the state from step to step as the store would. */
function runChunks(config: EngineConfig, chunks: WindowElement[][]): Pane[] {
  let watermark: WatermarkState = { watermark: MIN_WATERMARK, sources: {} };
  const state = new Map<string, WindowState>();
  const id = (s: { key: string; window: { start: number; end: number } }) =>
    `${s.key}|${s.window.start}|${s.window.end}`;
  const panes: Pane[] = [];
  for (const chunk of chunks) {
    const engine = createWindowEngine(config, { watermark, windows: [...state.values()] }, 0);
    for (const element of chunk) engine.addElement(element);
    const changes = engine.changes();
    for (const removed of changes.deleted) state.delete(id(removed));
    for (const upserted of changes.upserted) state.set(id(upserted), structuredClone(upserted));
    watermark = structuredClone(changes.watermark);
    panes.push(...engine.output.panes);
  }
  return panes;
}

function random(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('determinism', () => {
  const configs: Record<string, EngineConfig> = {
    sessions: {
      window: windows.sessions({ gap: 7 }),
      allowedLatenessMs: 15,
      trigger: triggers
        .afterWatermark()
        .withEarlyFirings(triggers.afterCount(3))
        .withLateFirings(triggers.everyElement()),
      accumulation: 'retracting',
      aggregate: aggregates.sum(),
      watermark: watermarks.boundedOutOfOrderness({ maxLag: 10 }),
    },
    sliding: {
      window: windows.sliding({ size: 20, period: 5 }),
      allowedLatenessMs: 5,
      trigger: triggers.default(),
      accumulation: 'discarding',
      aggregate: aggregates.count(),
      watermark: watermarks.boundedOutOfOrderness({ maxLag: 8 }),
    },
  };

  for (const [name, config] of Object.entries(configs)) {
    it(`${name}: the panes do not depend on how the elements are split into batches`, () => {
      const next = random(42);
      const elements: WindowElement[] = [];
      let clock = 0;
      for (let i = 0; i < 400; i++) {
        clock += Math.floor(next() * 4);
        elements.push({
          key: `k${Math.floor(next() * 4)}`,
          time: clock - Math.floor(next() * 25),
          value: Math.floor(next() * 100),
          source: '',
          position: null,
        });
      }
      const whole = runChunks(config, [elements]);
      expect(whole.length).toBeGreaterThan(50);
      for (const seed of [1, 2, 3]) {
        const split = random(seed);
        const chunks: WindowElement[][] = [];
        for (let i = 0; i < elements.length; ) {
          const size = 1 + Math.floor(split() * 30);
          chunks.push(elements.slice(i, i + size));
          i += size;
        }
        expect(runChunks(config, chunks)).toEqual(whole);
      }
    });
  }
});

describe('watermark strategies', () => {
  it('min over active sources; idle sources stop holding it back; the clock only when caught up', () => {
    const spec = watermarks.boundedOutOfOrderness({ maxLag: 5, idleTimeout: 100 });
    const state: WatermarkState = {
      watermark: MIN_WATERMARK,
      sources: { a: { maxEventTime: 50, lastSeenAt: 0 }, b: { maxEventTime: 20, lastSeenAt: 60 } },
    };
    expect(strategyWatermark(spec, state, 99)).toBe(15);
    expect(strategyWatermark(spec, state, 100)).toBe(15); // a idle: b alone
    expect(strategyWatermark(spec, state, 159)).toBe(15);
    expect(strategyWatermark(spec, state, 160)).toBe(50); // all idle: the largest event time, no lag
    const cdc = watermarks.commitTime({ idleTimeout: 100 });
    const empty: WatermarkState = { watermark: MIN_WATERMARK, sources: {} };
    // Nothing read yet and more in the log: following the clock would drop the history as late.
    expect(strategyWatermark(cdc, empty, 10_000, false)).toBe(MIN_WATERMARK);
    expect(strategyWatermark(cdc, empty, 10_000, true)).toBe(9_900);
    const seen: WatermarkState = {
      watermark: MIN_WATERMARK,
      sources: { '': { maxEventTime: 500, lastSeenAt: 0 } },
    };
    expect(strategyWatermark(cdc, seen, 50, true)).toBe(500);
    expect(strategyWatermark(cdc, seen, 10_000, true)).toBe(9_900);
  });
});
