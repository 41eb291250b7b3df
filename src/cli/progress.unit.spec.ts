import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createProgressBar, formatEta } from './progress.js';

describe('formatEta', () => {
  it.each([
    [0, 0, '0s'],
    [-3, 10, '0s'],
    [10, 0, '--'],
    [10, Number.NaN, '--'],
    [10, Number.POSITIVE_INFINITY, '--'],
    [244, 200, '2s'],
    [120, 1, '2m00s'],
    [185, 1, '3m05s'],
    [7800, 1, '2h10m'],
    [1e9, 1, '>99h'],
  ])('%d events left at %d/s: %s', (remaining, rate, text) => {
    expect(formatEta(remaining, rate)).toBe(text);
  });
});

describe('the progress bar', () => {
  function capture() {
    const stream = Object.assign(new PassThrough(), { isTTY: false });
    let output = '';
    stream.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    return { stream, output: () => output };
  }

  it('shows a readable ETA from the first frame and ends on every event done', () => {
    const { stream, output } = capture();
    let now = 0;
    const bar = createProgressBar('rebuild shop v1', { stream, now: () => now });
    bar.update({ done: 0, total: 444, position: '0' });
    now = 1000;
    bar.update({ done: 200, total: 444, position: '0' });
    now = 2000;
    // The estimate of what is left lags behind: the last progress falls one short.
    bar.update({ done: 443, total: 444, position: '0' });
    bar.finish(444);
    const lines = output()
      .split('\n')
      .map((line) => line.trim())
      .filter(Boolean);
    expect(lines[0]).toMatch(/^rebuild shop v1 \[.*\] 0\/444 events \| 0 ev\/s \| ETA --$/);
    expect(lines.at(-1)).toMatch(/^rebuild shop v1 \[.*\] 444\/444 events \| \d+ ev\/s \| ETA 0s$/);
    expect(output()).not.toMatch(/NF|LL|NaN|Infinity|443\/444 events[^\n]*$/);
    bar.stop();
  });

  it('stops without a final frame when the work failed', () => {
    const { stream, output } = capture();
    const bar = createProgressBar('replay shop', { stream, now: () => 0 });
    bar.update({ done: 5, total: 10, position: '0' });
    bar.stop();
    expect(output().trim().split('\n').at(-1)).toMatch(/5\/10 events/);
  });
});
