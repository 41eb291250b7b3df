import { ValidationError } from '../../errors.js';

/** A length of time: milliseconds, or a string such as `'500ms'`, `'10s'`, `'5m'`, `'2h'`, `'1d'`. */
export type Duration = number | `${number}${'ms' | 's' | 'm' | 'h' | 'd'}`;

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const PATTERN = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;

/** Milliseconds in `duration`; throws a ValidationError naming `field` for anything else. */
export function toMillis(duration: Duration, field: string, { allowZero = true } = {}): number {
  let ms: number;
  if (typeof duration === 'number') {
    ms = duration;
  } else {
    const match = typeof duration === 'string' ? PATTERN.exec(duration) : null;
    ms = match ? Number(match[1]) * UNITS[match[2]!]! : Number.NaN;
  }
  if (!Number.isSafeInteger(ms) || ms < 0 || (!allowZero && ms === 0)) {
    throw new ValidationError(
      `${field} must be a ${allowZero ? 'non-negative' : 'positive'} whole number of milliseconds or a duration like '10s', got ${JSON.stringify(duration)}.`,
      { field },
    );
  }
  return ms;
}
