// The worked examples of Streaming Systems (Akidau, Chernyak, Lax; O'Reilly 2018), chapters 2
// and 4: one team's scores, summed in two-minute windows, under each trigger the book shows, with
// the input of the book's own Beam tests (its scores, event times, processing times and
// watermarks). Every pane is checked: window, value, timing, index, final or not, the processing
// time it fired at and the watermark then. Where the book's Beam runner printed the same panes,
// the figure says so; where this engine differs (its timers fire when due; merged sessions carry
// on their pane indices), the test says why.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.js';
import { panesByWindow, type TestPane, type TestStream, testStream } from '../../testing/index.js';
import {
  aggregates,
  defineWindowedAggregate,
  MAX_WATERMARK,
  type TriggerSpec,
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

/** 12:mm:ss on the day of the examples, in milliseconds. */
const t = (clock: string) => Date.parse(`2026-03-01T${clock.length === 5 ? `${clock}:00` : clock}Z`);
const INFINITY = MAX_WATERMARK;

const teamScores = (options: Partial<WindowedAggregateOptions> & { trigger?: TriggerSpec }) =>
  defineWindowedAggregate({
    name: 'team_scores',
    key: (e) => String(e.data.team),
    value: (e) => e.data.score,
    window: windows.tumbling({ size: '2m' }),
    aggregate: aggregates.sum(),
    ...options,
  });

type Watermark = 'batch' | 'perfect' | 'heuristic';

/**
 * The book's input (BeamModelTest.createStream): nine scores arriving between 12:05 and 12:09
 * processing time. 'batch': the watermark stays at 12:00 until the end; 'perfect': it follows the
 * data exactly; 'heuristic': it runs ahead of two late scores. `extraSix` adds a late 6.
 */
function bookStream(definition: ReturnType<typeof teamScores>, watermark: Watermark, extraSix = false) {
  const score = (value: number, eventTime: string) => ({
    time: t(eventTime),
    data: { team: 'TeamX', score: value },
  });
  let s: TestStream = testStream(definition, { connectionString: db.url, startProcessingTime: t('12:00') })
    .advanceWatermarkTo(t('12:00'))
    .advanceProcessingTimeTo(t('12:04:59'))
    .addElements(score(5, '12:00:26'))
    .advanceProcessingTimeTo(t('12:05:39'))
    .addElements(score(7, '12:02:24'))
    .advanceProcessingTimeTo(t('12:06:00'));
  if (watermark === 'heuristic') s = s.advanceWatermarkTo(t('12:02'));
  s = s
    .advanceProcessingTimeTo(t('12:06:13'))
    .addElements(score(3, '12:03:39'))
    .advanceProcessingTimeTo(t('12:06:39'))
    .addElements(score(4, '12:04:19'));
  if (extraSix) s = s.addElements(score(6, '12:00:53'));
  s = s
    .advanceProcessingTimeTo(t('12:07:06'))
    .addElements(score(8, '12:03:06'))
    .advanceProcessingTimeTo(t('12:07:19'))
    .addElements(score(3, '12:06:39'))
    .advanceProcessingTimeTo(t('12:07:30'));
  if (watermark === 'heuristic') {
    s = s
      .advanceWatermarkTo(t('12:04'))
      .advanceProcessingTimeTo(t('12:07:40'))
      .advanceWatermarkTo(t('12:06'));
  }
  s = s
    .advanceProcessingTimeTo(t('12:08:19'))
    .addElements(score(9, '12:01:25'))
    .advanceProcessingTimeTo(t('12:08:39'));
  if (watermark === 'perfect') s = s.advanceWatermarkTo(t('12:02'));
  s = s
    .addElements(score(8, '12:07:26'))
    .advanceProcessingTimeTo(t('12:09:00'))
    .addElements(score(1, '12:07:46'));
  if (watermark === 'perfect') {
    s = s
      .advanceWatermarkTo(t('12:04'))
      .advanceProcessingTimeTo(t('12:09:10'))
      .advanceWatermarkTo(t('12:06'))
      .advanceProcessingTimeTo(t('12:09:20'))
      .advanceWatermarkTo(t('12:08'));
  }
  s = s.advanceProcessingTimeTo(t('12:09:30'));
  if (watermark === 'heuristic') s = s.advanceWatermarkTo(t('12:08'));
  return s.advanceWatermarkToInfinity();
}

/** One expected pane: window [start, end) by clock time, value, timing, index, fired at, watermark. */
function pane(
  window: [string, string],
  value: number,
  timing: TestPane['timing'],
  index: number,
  firedAt: string,
  watermark: string | number,
  isFinal = false,
): TestPane {
  return {
    key: 'TeamX',
    window: { start: t(window[0]), end: t(window[1]) },
    value,
    timing,
    index,
    isFinal,
    firedAt: t(firedAt),
    watermark: typeof watermark === 'number' ? watermark : t(watermark),
  };
}

const W1: [string, string] = ['12:00', '12:02'];
const W2: [string, string] = ['12:02', '12:04'];
const W3: [string, string] = ['12:04', '12:06'];
const W4: [string, string] = ['12:06', '12:08'];
const days1000 = '1000d';
const early1mLateEach = triggers
  .afterWatermark()
  .withEarlyFirings(triggers.afterProcessingTime('1m'))
  .withLateFirings(triggers.afterCount(1));

describe('Streaming Systems, chapter 2', () => {
  it('example 2-1 / figure 2-3, classic batch: one sum over the global window', async () => {
    const definition = teamScores({ window: windows.global() });
    const panes = await testStream(definition, { connectionString: db.url, startProcessingTime: t('12:00') })
      .addElements(
        ...[5, 7, 3, 4, 8, 3, 9, 8, 1].map((score, i) => ({
          time: t('12:00') + i,
          data: { team: 'TeamX', score },
        })),
      )
      .advanceWatermarkToInfinity()
      .run();
    expect(panes.map((p) => [p.value, p.timing, p.index, p.isFinal])).toEqual([[48, 'ON_TIME', 0, true]]);
  });

  it('example 2-2 / figure 2-5, windowed batch: one ON_TIME pane per window, each final', async () => {
    const panes = await testStream(teamScores({}), {
      connectionString: db.url,
      startProcessingTime: t('12:00'),
    })
      .addElements(
        ...(
          [
            [5, '12:00:26'],
            [7, '12:02:26'],
            [3, '12:03:39'],
            [4, '12:04:19'],
            [8, '12:03:06'],
            [3, '12:06:39'],
            [9, '12:01:26'],
            [8, '12:07:26'],
            [1, '12:07:46'],
          ] as [number, string][]
        ).map(([score, time]) => ({ time: t(time), data: { team: 'TeamX', score } })),
      )
      .advanceWatermarkToInfinity()
      .run();
    expect(panes).toEqual([
      pane(W1, 14, 'ON_TIME', 0, '12:00', INFINITY, true),
      pane(W2, 18, 'ON_TIME', 0, '12:00', INFINITY, true),
      pane(W3, 4, 'ON_TIME', 0, '12:00', INFINITY, true),
      pane(W4, 12, 'ON_TIME', 0, '12:00', INFINITY, true),
    ]);
  });

  it('example 2-3 / figure 2-6, per-record triggering: an EARLY pane per score, and no extra pane when the windows close', async () => {
    const definition = teamScores({
      trigger: triggers.repeatedly(triggers.afterCount(1)),
      allowedLateness: days1000,
    });
    const panes = await bookStream(definition, 'batch').run();
    // As the book's Beam run prints: nine EARLY panes, none final.
    expect(panesByWindow(panes)).toEqual([
      {
        key: 'TeamX',
        window: { start: t('12:00'), end: t('12:02') },
        panes: [pane(W1, 5, 'EARLY', 0, '12:04:59', '12:00'), pane(W1, 14, 'EARLY', 1, '12:08:19', '12:00')],
      },
      {
        key: 'TeamX',
        window: { start: t('12:02'), end: t('12:04') },
        panes: [
          pane(W2, 7, 'EARLY', 0, '12:05:39', '12:00'),
          pane(W2, 10, 'EARLY', 1, '12:06:13', '12:00'),
          pane(W2, 18, 'EARLY', 2, '12:07:06', '12:00'),
        ],
      },
      {
        key: 'TeamX',
        window: { start: t('12:04'), end: t('12:06') },
        panes: [pane(W3, 4, 'EARLY', 0, '12:06:39', '12:00')],
      },
      {
        key: 'TeamX',
        window: { start: t('12:06'), end: t('12:08') },
        panes: [
          pane(W4, 3, 'EARLY', 0, '12:07:19', '12:00'),
          pane(W4, 11, 'EARLY', 1, '12:08:39', '12:00'),
          pane(W4, 12, 'EARLY', 2, '12:09:00', '12:00'),
        ],
      },
    ]);
  });

  it('example 2-4 / figure 2-7, aligned delays (micro-batches): every window fires at the same two-minute boundaries', async () => {
    const definition = teamScores({
      trigger: triggers.repeatedly(triggers.afterProcessingTime().aligned('2m', t('12:05'))),
      allowedLateness: days1000,
    });
    const panes = await testStream(definition, { connectionString: db.url, startProcessingTime: t('12:00') })
      .advanceWatermarkTo(t('12:00'))
      .advanceProcessingTimeTo(t('12:04:59'))
      .addElements({ time: t('12:00:26'), data: { team: 'TeamX', score: 5 } })
      .advanceProcessingTimeTo(t('12:05:39'))
      .addElements({ time: t('12:02:26'), data: { team: 'TeamX', score: 7 } })
      .advanceProcessingTimeTo(t('12:06:13'))
      .addElements({ time: t('12:03:39'), data: { team: 'TeamX', score: 3 } })
      .advanceProcessingTimeTo(t('12:06:39'))
      .addElements({ time: t('12:04:19'), data: { team: 'TeamX', score: 4 } })
      .advanceProcessingTimeTo(t('12:07:06'))
      .addElements({ time: t('12:03:06'), data: { team: 'TeamX', score: 8 } })
      .advanceProcessingTimeTo(t('12:07:19'))
      .addElements({ time: t('12:06:39'), data: { team: 'TeamX', score: 3 } })
      .advanceProcessingTimeTo(t('12:08:19'))
      .addElements({ time: t('12:01:26'), data: { team: 'TeamX', score: 9 } })
      .advanceProcessingTimeTo(t('12:08:39'))
      .addElements({ time: t('12:07:26'), data: { team: 'TeamX', score: 8 } })
      .advanceProcessingTimeTo(t('12:09:00'))
      .addElements({ time: t('12:07:46'), data: { team: 'TeamX', score: 1 } })
      .advanceProcessingTimeTo(t('12:10:00'))
      .advanceWatermarkToInfinity()
      .run();
    // Boundaries at 12:05, 12:07, 12:09. The last score arrives on a boundary: its pane fires at
    // once. Everything fired before the end, so closing the windows adds nothing. (The book's
    // Beam run fires its timers late, and so shows a final ON_TIME pane per window instead.)
    expect(panes).toEqual([
      pane(W1, 5, 'EARLY', 0, '12:05:00', '12:00'),
      pane(W2, 10, 'EARLY', 0, '12:07:00', '12:00'),
      pane(W3, 4, 'EARLY', 0, '12:07:00', '12:00'),
      pane(W1, 14, 'EARLY', 1, '12:09:00', '12:00'),
      pane(W2, 18, 'EARLY', 1, '12:09:00', '12:00'),
      pane(W4, 11, 'EARLY', 0, '12:09:00', '12:00'),
      pane(W4, 12, 'EARLY', 1, '12:09:00', '12:00'),
    ]);
  });

  it('example 2-5 / figure 2-8, unaligned delays: each window fires two minutes after the first score of its pane', async () => {
    const definition = teamScores({
      trigger: triggers.repeatedly(triggers.afterProcessingTime('2m')),
      allowedLateness: days1000,
    });
    const panes = await bookStream(definition, 'batch').run();
    // The 9 arriving at 12:08:19 waits for 12:10:19, which the clock never reaches: it fires when
    // the window closes, as the final pane, ON_TIME since the window only fired EARLY before.
    expect(panes).toEqual([
      pane(W1, 5, 'EARLY', 0, '12:06:59', '12:00'),
      pane(W2, 18, 'EARLY', 0, '12:07:39', '12:00'),
      pane(W3, 4, 'EARLY', 0, '12:08:39', '12:00'),
      pane(W4, 12, 'EARLY', 0, '12:09:19', '12:00'),
      pane(W1, 14, 'ON_TIME', 1, '12:09:30', INFINITY, true),
    ]);
  });

  it('example 2-6 / figure 2-10, watermark trigger: a perfect watermark, and a heuristic one that drops a late score', async () => {
    const perfect = await bookStream(teamScores({}), 'perfect').run();
    expect(perfect).toEqual([
      pane(W1, 14, 'ON_TIME', 0, '12:08:39', '12:02', true),
      pane(W2, 18, 'ON_TIME', 0, '12:09:00', '12:04', true),
      pane(W3, 4, 'ON_TIME', 0, '12:09:10', '12:06', true),
      pane(W4, 12, 'ON_TIME', 0, '12:09:20', '12:08', true),
    ]);
    const heuristic = await bookStream(teamScores({}), 'heuristic').runDetailed();
    expect(heuristic.panes).toEqual([
      pane(W1, 5, 'ON_TIME', 0, '12:06:00', '12:02', true),
      pane(W2, 18, 'ON_TIME', 0, '12:07:30', '12:04', true),
      pane(W3, 4, 'ON_TIME', 0, '12:07:40', '12:06', true),
      pane(W4, 12, 'ON_TIME', 0, '12:09:30', '12:08', true),
    ]);
    expect(heuristic.dropped).toEqual([
      {
        key: 'TeamX',
        eventTime: t('12:01:25'),
        window: { start: t('12:00'), end: t('12:02') },
        watermark: t('12:06'),
        reason: 'expired',
      },
    ]);
  });

  it('example 2-7 / figure 2-11 left, early/on-time/late firings with a perfect watermark', async () => {
    const panes = await bookStream(
      teamScores({ trigger: early1mLateEach, allowedLateness: days1000 }),
      'perfect',
    ).run();
    expect(panes).toEqual([
      pane(W1, 5, 'EARLY', 0, '12:05:59', '12:00'),
      pane(W2, 10, 'EARLY', 0, '12:06:39', '12:00'),
      pane(W3, 4, 'EARLY', 0, '12:07:39', '12:00'),
      pane(W2, 18, 'EARLY', 1, '12:08:06', '12:00'),
      pane(W4, 3, 'EARLY', 0, '12:08:19', '12:00'),
      pane(W1, 14, 'ON_TIME', 1, '12:08:39', '12:02'),
      // The ON_TIME pane fires even with nothing new since the EARLY one.
      pane(W2, 18, 'ON_TIME', 2, '12:09:00', '12:04'),
      pane(W3, 4, 'ON_TIME', 1, '12:09:10', '12:06'),
      pane(W4, 12, 'ON_TIME', 1, '12:09:20', '12:08'),
    ]);
  });

  it('example 2-7 / figure 2-11 right, early/on-time/late firings with a heuristic watermark: the late 9 fires a LATE pane', async () => {
    const panes = await bookStream(
      teamScores({ trigger: early1mLateEach, allowedLateness: days1000 }),
      'heuristic',
    ).run();
    expect(panes).toEqual([
      pane(W1, 5, 'EARLY', 0, '12:05:59', '12:00'),
      pane(W1, 5, 'ON_TIME', 1, '12:06:00', '12:02'),
      pane(W2, 10, 'EARLY', 0, '12:06:39', '12:02'),
      pane(W2, 18, 'ON_TIME', 1, '12:07:30', '12:04'),
      pane(W3, 4, 'EARLY', 0, '12:07:39', '12:04'),
      pane(W3, 4, 'ON_TIME', 1, '12:07:40', '12:06'),
      pane(W4, 3, 'EARLY', 0, '12:08:19', '12:06'),
      pane(W1, 14, 'LATE', 2, '12:08:19', '12:06'),
      pane(W4, 12, 'ON_TIME', 1, '12:09:30', '12:08'),
    ]);
  });

  it('example 2-8 / figure 2-12, allowed lateness of two minutes: the late 6 fires, the later 9 is dropped', async () => {
    const result = await bookStream(
      teamScores({ trigger: early1mLateEach, allowedLateness: '2m' }),
      'heuristic',
      true,
    ).runDetailed();
    expect(result.panes).toEqual([
      pane(W1, 5, 'EARLY', 0, '12:05:59', '12:00'),
      pane(W1, 5, 'ON_TIME', 1, '12:06:00', '12:02'),
      pane(W2, 10, 'EARLY', 0, '12:06:39', '12:02'),
      pane(W1, 11, 'LATE', 2, '12:06:39', '12:02'),
      // The watermark reaches 12:04: W2 fires ON_TIME, then W1 expires with nothing pending: no pane.
      pane(W2, 18, 'ON_TIME', 1, '12:07:30', '12:04'),
      pane(W3, 4, 'EARLY', 0, '12:07:39', '12:04'),
      pane(W3, 4, 'ON_TIME', 1, '12:07:40', '12:06'),
      pane(W4, 3, 'EARLY', 0, '12:08:19', '12:06'),
      pane(W4, 12, 'ON_TIME', 1, '12:09:30', '12:08'),
    ]);
    expect(result.dropped.map((d) => [d.eventTime, d.watermark, d.reason])).toEqual([
      [t('12:01:25'), t('12:06'), 'expired'],
    ]);
  });

  it('example 2-9 / figure 2-13, discarding mode: each pane holds only what arrived since the previous one', async () => {
    const panes = await bookStream(
      teamScores({ trigger: early1mLateEach, allowedLateness: days1000, accumulation: 'discarding' }),
      'heuristic',
    ).run();
    expect(panes.map((p) => [p.window.start, p.value, p.timing, p.index, p.firedAt])).toEqual([
      [t('12:00'), 5, 'EARLY', 0, t('12:05:59')],
      [t('12:00'), 0, 'ON_TIME', 1, t('12:06:00')],
      [t('12:02'), 10, 'EARLY', 0, t('12:06:39')],
      [t('12:02'), 8, 'ON_TIME', 1, t('12:07:30')],
      [t('12:04'), 4, 'EARLY', 0, t('12:07:39')],
      [t('12:04'), 0, 'ON_TIME', 1, t('12:07:40')],
      [t('12:06'), 3, 'EARLY', 0, t('12:08:19')],
      [t('12:00'), 9, 'LATE', 2, t('12:08:19')],
      [t('12:06'), 9, 'ON_TIME', 1, t('12:09:30')],
    ]);
  });
});

describe('Streaming Systems, chapter 4', () => {
  it('example 4-3 / figure 4-7, sessions with early/on-time/late firings: merged sessions carry on their pane indices', async () => {
    const definition = teamScores({
      window: windows.sessions({ gap: '1m' }),
      trigger: early1mLateEach,
      allowedLateness: days1000,
    });
    const panes = await bookStream(definition, 'heuristic').run();
    // The book's Beam run shows the same values and timings; Beam restarts the index of a merged
    // session at 0, where here it continues after the panes of the sessions it merged.
    expect(panes).toEqual([
      pane(['12:00:26', '12:01:26'], 5, 'EARLY', 0, '12:05:59', '12:00'),
      pane(['12:00:26', '12:01:26'], 5, 'ON_TIME', 1, '12:06:00', '12:02'),
      pane(['12:02:24', '12:03:24'], 7, 'EARLY', 0, '12:06:39', '12:02'),
      // 3 (12:03:39) and 4 (12:04:19) formed a session; 8 (12:03:06) bridged it with 7's.
      pane(['12:02:24', '12:05:19'], 22, 'EARLY', 1, '12:07:13', '12:02'),
      pane(['12:02:24', '12:05:19'], 22, 'ON_TIME', 2, '12:07:40', '12:06'),
      pane(['12:06:39', '12:07:39'], 3, 'EARLY', 0, '12:08:19', '12:06'),
      // The late 9 (12:01:25) joins both sessions into one, past the watermark: LATE.
      pane(['12:00:26', '12:05:19'], 36, 'LATE', 3, '12:08:19', '12:06'),
      pane(['12:06:39', '12:08:46'], 12, 'ON_TIME', 1, '12:09:30', INFINITY, true),
    ]);
  });
});
