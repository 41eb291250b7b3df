import { ValidationError } from '../../errors.js';

/**
 * Exact decimal arithmetic for sums: a value is a bigint mantissa and a scale
 * (number of digits after the point). Integers of any size and decimal fractions
 * written in JSON or as numeric strings add up without rounding.
 */
export interface Decimal {
  mantissa: bigint;
  scale: number;
}

const DECIMAL = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;

/** Parses a finite number (by its shortest decimal form) or a numeric string. */
export function parseDecimal(value: unknown, field = 'value'): Decimal {
  if (typeof value === 'bigint') return { mantissa: value, scale: 0 };
  const text = typeof value === 'number' && Number.isFinite(value) ? String(value) : value;
  const match = typeof text === 'string' ? DECIMAL.exec(text.trim()) : null;
  if (!match || (match[2] === '' && (match[3] ?? '') === '')) {
    throw new ValidationError(
      `${field} must be a finite number or a numeric string, got ${JSON.stringify(value)}.`,
      {
        field,
      },
    );
  }
  const [, sign, whole, fraction = '', exponent = '0'] = match;
  let mantissa = BigInt(`${whole}${fraction}` || '0');
  let scale = fraction.length - Number(exponent);
  if (scale < 0) {
    mantissa *= 10n ** BigInt(-scale);
    scale = 0;
  }
  return normalize({ mantissa: sign === '-' ? -mantissa : mantissa, scale });
}

export function addDecimals(a: Decimal, b: Decimal): Decimal {
  const scale = Math.max(a.scale, b.scale);
  return normalize({ mantissa: rescale(a, scale) + rescale(b, scale), scale });
}

export function compareDecimals(a: Decimal, b: Decimal): number {
  const scale = Math.max(a.scale, b.scale);
  const x = rescale(a, scale);
  const y = rescale(b, scale);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Canonical text: no exponent, no trailing zeros after the point. */
export function formatDecimal(value: Decimal): string {
  const negative = value.mantissa < 0n;
  const digits = (negative ? -value.mantissa : value.mantissa).toString().padStart(value.scale + 1, '0');
  const whole = digits.slice(0, digits.length - value.scale);
  const fraction = digits.slice(digits.length - value.scale);
  return `${negative ? '-' : ''}${whole}${fraction ? `.${fraction}` : ''}`;
}

/** A JSON number when it says exactly the same value, otherwise the exact decimal string. */
export function decimalToJson(value: Decimal): number | string {
  const text = formatDecimal(value);
  const number = Number(text);
  return String(number) === text ? number : text;
}

function rescale(value: Decimal, scale: number): bigint {
  return value.mantissa * 10n ** BigInt(scale - value.scale);
}

function normalize(value: Decimal): Decimal {
  let { mantissa, scale } = value;
  while (scale > 0 && mantissa % 10n === 0n) {
    mantissa /= 10n;
    scale -= 1;
  }
  return { mantissa, scale };
}
