/**
 * Processing time as the runner sees it. Timers (`Projection.onTimer`) are scheduled
 * against this clock, so tests can drive them with a virtual clock instead of waiting.
 */
export interface Clock {
  now(): Date;
  /** Resolves once `now() >= until`, or earlier when `signal` aborts. */
  sleepUntil(until: Date, signal: AbortSignal): Promise<void>;
}

/** The wall clock. */
export const systemClock: Clock = {
  now: () => new Date(),
  sleepUntil(until, signal) {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const timer = setTimeout(done, Math.max(0, until.getTime() - Date.now()));
      function done() {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      }
      signal.addEventListener('abort', done, { once: true });
    });
  },
};

export interface VirtualClock extends Clock {
  /** Moves the clock forward and wakes every sleeper whose time has come. */
  advance(ms: number): void;
  set(to: Date): void;
}

/** A clock that only moves when told to; for tests of timers. */
export function createVirtualClock(start: Date = new Date(0)): VirtualClock {
  let current = start.getTime();
  const sleepers = new Set<{ until: number; wake: () => void }>();
  const wakeDue = () => {
    for (const sleeper of [...sleepers]) if (sleeper.until <= current) sleeper.wake();
  };
  return {
    now: () => new Date(current),
    sleepUntil(until, signal) {
      return new Promise((resolve) => {
        if (signal.aborted || until.getTime() <= current) return resolve();
        const sleeper = {
          until: until.getTime(),
          wake: () => {
            sleepers.delete(sleeper);
            signal.removeEventListener('abort', sleeper.wake);
            resolve();
          },
        };
        sleepers.add(sleeper);
        signal.addEventListener('abort', sleeper.wake, { once: true });
      });
    },
    advance(ms) {
      current += ms;
      wakeDue();
    },
    set(to) {
      current = to.getTime();
      wakeDue();
    },
  };
}
