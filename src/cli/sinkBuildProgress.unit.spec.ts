import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../logger.js';
import type { SinkBuildProgress } from '../projections/index.js';
import { createSinkBuildReporter } from './sinkBuildProgress.js';

function capture(isTTY: boolean) {
  const stream = Object.assign(new PassThrough(), { isTTY, columns: 120 });
  let output = '';
  stream.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  return { stream, output: () => output };
}

const frame = (phase: SinkBuildProgress['phase'], done: number): SinkBuildProgress => ({
  sink: 'productSearch',
  index: 'product_search_b1',
  reason: 'first load',
  phase,
  done,
  total: 30_000,
});

describe('the progress of a sink build under start and dev', () => {
  it('is a progress bar on a terminal, ending on every document done', () => {
    const { stream, output } = capture(true);
    const lines: string[] = [];
    const logger = createLogger({ level: 'info', format: 'json', write: (line) => lines.push(line) });
    let now = 0;
    const report = createSinkBuildReporter({ logger, stream, now: () => now });
    report(frame('backfill', 0));
    now = 1000;
    report(frame('backfill', 10_000));
    now = 3000;
    report(frame('backfill', 30_000));
    report(frame('catching up', 30_000));
    report(frame('done', 30_000));
    // The bar redraws in place (at its own pace): its first and last frames.
    const frames = output()
      .split('\u001b[1G')
      .slice(1)
      .map((drawn) => drawn.split('\u001b[0K')[0]);
    expect(frames[0]).toMatch(/^backfill productSearch \[.*\] 0\/30000 docs \| 0 docs\/s \| ETA --$/);
    expect(frames.at(-1)).toMatch(
      /^backfill productSearch \[.*\] 30000\/30000 docs \| \d+ docs\/s \| ETA 0s$/,
    );
    expect(lines).toEqual([]);
  });

  it('is structured log lines otherwise: the first frame, one every interval, the last one all done', () => {
    const { stream, output } = capture(false);
    const lines: Record<string, unknown>[] = [];
    const logger = createLogger({
      level: 'info',
      format: 'json',
      write: (line) => lines.push(JSON.parse(line) as Record<string, unknown>),
    });
    let now = 0;
    const report = createSinkBuildReporter({ logger, stream, now: () => now, intervalMs: 5000 });
    report(frame('backfill', 0));
    for (let done = 1000; done <= 30_000; done += 1000) {
      now += 500;
      report(frame('backfill', done));
    }
    report(frame('catching up', 30_000));
    report(frame('done', 30_000));
    expect(output()).toBe('');
    const figures = lines.map(({ msg, phase, done, total, percent, eta }) => ({
      msg,
      phase,
      done,
      total,
      percent,
      eta,
    }));
    expect(figures[0]).toEqual({
      msg: 'sink build progress',
      phase: 'backfill',
      done: 0,
      total: 30_000,
      percent: 0,
      eta: '--',
    });
    // 15 s of backfill at 2,000 docs/s: a line every 5 s, the ETA counting down.
    expect(figures.slice(1, -2).map((line) => [line.done, line.eta])).toEqual([
      [10_000, '10s'],
      [20_000, '5s'],
      [30_000, '0s'],
    ]);
    expect(figures.at(-1)).toEqual({
      msg: 'sink build progress',
      phase: 'done',
      done: 30_000,
      total: 30_000,
      percent: 100,
      eta: '0s',
    });
    expect(lines.at(-1)).toMatchObject({
      sink: 'productSearch',
      index: 'product_search_b1',
      reason: 'first load',
    });
  });
});
