import { ValidationError } from '../../errors.js';
import { type Duration, toMillis } from './duration.js';

/** A half-open interval of event time `[start, end)`, in milliseconds since the epoch. */
export interface Window {
  start: number;
  end: number;
}

/** How elements are assigned to windows. Build one with `windows.*`. */
export type WindowSpec =
  | { kind: 'tumbling'; sizeMs: number; offsetMs: number }
  | { kind: 'sliding'; sizeMs: number; periodMs: number; offsetMs: number }
  | { kind: 'sessions'; gapMs: number }
  | { kind: 'global' };

/** The global window: from year 1 to the end of year 9999, so that both JavaScript and PostgreSQL can hold it. */
export const GLOBAL_WINDOW: Readonly<Window> = Object.freeze({
  start: Date.parse('0001-01-01T00:00:00.000Z'),
  end: Date.parse('9999-12-31T23:59:59.999Z'),
});

export const windows = {
  /** Fixed, non-overlapping windows of `size`; `offset` shifts their boundaries (e.g. days starting at 06:00). */
  tumbling(options: { size: Duration; offset?: Duration }): WindowSpec {
    const sizeMs = toMillis(options.size, 'window.size', { allowZero: false });
    const offsetMs = toMillis(options.offset ?? 0, 'window.offset');
    if (offsetMs >= sizeMs) throw new ValidationError('window.offset must be smaller than window.size.');
    return { kind: 'tumbling', sizeMs, offsetMs };
  },
  /** Overlapping windows of `size` starting every `period`: each element belongs to size/period windows. */
  sliding(options: { size: Duration; period: Duration; offset?: Duration }): WindowSpec {
    const sizeMs = toMillis(options.size, 'window.size', { allowZero: false });
    const periodMs = toMillis(options.period, 'window.period', { allowZero: false });
    const offsetMs = toMillis(options.offset ?? 0, 'window.offset');
    if (periodMs > sizeMs) {
      throw new ValidationError('window.period must not exceed window.size.', {
        hint: 'A period longer than the size would leave gaps; use tumbling windows of that size instead.',
      });
    }
    if (offsetMs >= periodMs) throw new ValidationError('window.offset must be smaller than window.period.');
    return { kind: 'sliding', sizeMs, periodMs, offsetMs };
  },
  /**
   * Per-key sessions: each element opens a proto-window `[t, t + gap)`; windows that overlap
   * merge, windows that only touch at an endpoint stay apart.
   */
  sessions(options: { gap: Duration }): WindowSpec {
    return { kind: 'sessions', gapMs: toMillis(options.gap, 'window.gap', { allowZero: false }) };
  },
  /** One window for all time; it fires on time only when the watermark reaches the end of time. */
  global(): WindowSpec {
    return { kind: 'global' };
  },
};

/** The windows an element at `time` belongs to, earliest first (for sessions: its proto-window). */
export function assignWindows(spec: WindowSpec, time: number): Window[] {
  switch (spec.kind) {
    case 'tumbling': {
      const start = time - mod(time - spec.offsetMs, spec.sizeMs);
      return [{ start, end: start + spec.sizeMs }];
    }
    case 'sliding': {
      const last = time - mod(time - spec.offsetMs, spec.periodMs);
      const out: Window[] = [];
      for (let start = last; start > time - spec.sizeMs; start -= spec.periodMs) {
        out.push({ start, end: start + spec.sizeMs });
      }
      return out.reverse();
    }
    case 'sessions':
      return [{ start: time, end: time + spec.gapMs }];
    case 'global':
      return [GLOBAL_WINDOW];
  }
}

/** True when two windows share some instant; `[0, 10)` and `[10, 20)` do not. */
export function windowsOverlap(a: Window, b: Window): boolean {
  return a.start < b.end && b.start < a.end;
}

export function windowId(window: Window): string {
  return `${window.start}:${window.end}`;
}

function mod(a: number, b: number): number {
  return ((a % b) + b) % b;
}
