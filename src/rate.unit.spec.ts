import { afterEach, describe, expect, it, vi } from 'vitest';
import { createRate } from './rate.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('createRate', () => {
  it('counts per second over the window, from its oldest sample, and forgets what falls out of it', () => {
    vi.useFakeTimers({ now: 0 });
    const rate = createRate(10_000);
    expect(rate.value()).toBe(0);
    rate.add(500);
    // Over at least a second: a burst does not read as an infinite rate.
    expect(rate.value()).toBe(500);
    vi.setSystemTime(4000);
    rate.add(1500);
    expect(rate.value()).toBe(500); // 2000 over 4 s
    vi.setSystemTime(12_000);
    // The first sample is out of the window; only 1500 over the 8 s since the second remain.
    expect(rate.value()).toBe(187.5);
    vi.setSystemTime(30_000);
    expect(rate.value()).toBe(0);
  });
});
