/** A count per second over a sliding window (ten seconds by default): events, documents. */
export interface Rate {
  add(count: number): void;
  /** Per second over the window, counted from its oldest sample (and over at least a second). */
  value(): number;
}

export function createRate(windowMs = 10_000): Rate {
  const samples: Array<[at: number, count: number]> = [];
  const expire = (now: number) => {
    while (samples.length > 0 && samples[0]![0] < now - windowMs) samples.shift();
  };
  return {
    add(count) {
      const now = Date.now();
      if (count > 0) samples.push([now, count]);
      expire(now);
    },
    value() {
      const now = Date.now();
      expire(now);
      if (samples.length === 0) return 0;
      const span = Math.max(1000, now - samples[0]![0]);
      return (samples.reduce((sum, [, count]) => sum + count, 0) * 1000) / span;
    },
  };
}
