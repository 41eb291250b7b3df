import { describe, expect, it } from 'vitest';
import {
  canonicalTimestamp,
  compareNumeric,
  jsonbContains,
  jsonbEqual,
  toCanonical,
  ValueTypeError,
} from './values.js';

const refused = (type: Parameters<typeof toCanonical>[0], value: unknown) => {
  try {
    toCanonical(type, value);
  } catch (error) {
    expect(error).toBeInstanceOf(ValueTypeError);
    return (error as ValueTypeError).reason;
  }
  throw new Error(`${type} accepted ${String(value)}`);
};

describe('canonical values', () => {
  it('prints numeric as PostgreSQL does: exponent applied, scale kept, no minus zero', () => {
    const cases: [unknown, string][] = [
      ['80.00', '80.00'],
      ['1e3', '1000'],
      ['1.50e1', '15.0'],
      ['-0.00', '0.00'],
      ['0.0001e-3', '0.0000001'],
      ['007.10', '7.10'],
      ['+3', '3'],
      ['.5', '0.5'],
      ['5.', '5'],
      ['12345678901234567890.123456789', '12345678901234567890.123456789'],
      [1e21, '1000000000000000000000'],
      [0.1, '0.1'],
      [12n, '12'],
      ['nan', 'NaN'],
      ['-inf', '-Infinity'],
    ];
    for (const [input, output] of cases) expect(toCanonical('numeric', input), String(input)).toBe(output);
    expect(refused('numeric', '1e999999')).toMatch(/range/);
    expect(refused('numeric', '12a')).toMatch(/decimal/);
    expect(refused('numeric', Number.NaN)).toMatch(/finite/);
  });

  it('orders numerics exactly, whatever their scale', () => {
    expect(compareNumeric('1.50', '1.5')).toBe(0);
    expect(compareNumeric('9007199254740993', '9007199254740992')).toBe(1);
    expect(compareNumeric('-10', '-2')).toBe(-1);
    expect(compareNumeric('0.0009', '0.001')).toBe(-1);
    expect(compareNumeric('Infinity', 'NaN')).toBe(-1);
    expect(compareNumeric('-Infinity', '-99999')).toBe(-1);
  });

  it('keeps bigint exact within 64 bits and refuses what PostgreSQL would', () => {
    expect(toCanonical('bigint', '9223372036854775807')).toBe('9223372036854775807');
    expect(toCanonical('bigint', '-0009')).toBe('-9');
    expect(toCanonical('bigint', 2n ** 62n)).toBe('4611686018427387904');
    expect(refused('bigint', '9223372036854775808')).toMatch(/64-bit/);
    expect(refused('bigint', 2 ** 60)).toMatch(/2\^53/);
    expect(refused('bigint', '1e3')).toMatch(/64-bit/);
    expect(refused('integer', 2 ** 31)).toMatch(/32-bit/);
    expect(refused('integer', '')).toMatch(/32-bit/);
  });

  it('prints timestamps in UTC with microseconds, rounding the fraction as PostgreSQL does', () => {
    expect(canonicalTimestamp('2026-11-30T21:14:05.01+00:00')).toBe('2026-11-30T21:14:05.010000Z');
    expect(canonicalTimestamp('2026-11-30 21:14:05.0000005Z')).toBe('2026-11-30T21:14:05.000000Z');
    expect(canonicalTimestamp('2026-11-30T21:14:05.0000015Z')).toBe('2026-11-30T21:14:05.000002Z');
    expect(canonicalTimestamp('2026-11-30T23:59:59.9999996Z')).toBe('2026-12-01T00:00:00.000000Z');
    expect(canonicalTimestamp('2026-01-01T00:00:00+05:30')).toBe('2025-12-31T18:30:00.000000Z');
    expect(canonicalTimestamp('0001-01-01')).toBe('0001-01-01T00:00:00.000000Z');
    expect(canonicalTimestamp(new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 6)))).toBe(
      '2026-01-02T03:04:05.006000Z',
    );
    expect(refused('timestamptz', '2024-02-30T00:00:00Z')).toMatch(/does not exist/);
    expect(refused('timestamptz', '2023-02-29')).toMatch(/does not exist/);
    expect(refused('timestamptz', '0')).toMatch(/ISO 8601/);
    expect(refused('timestamptz', '9999-12-31T23:59:59.9999999Z')).toMatch(/0001 to 9999/);
    expect(refused('timestamptz', new Date(Number.NaN))).toMatch(/valid date/);
  });

  it('refuses text PostgreSQL cannot store: NUL and lone surrogates, in text, arrays and jsonb', () => {
    expect(refused('text', 'a\u0000b')).toMatch(/NUL/);
    expect(refused('text', 'a\ud800b')).toMatch(/surrogate/);
    expect(refused('text[]', ['ok', '\udc00'])).toMatch(/surrogate/);
    expect(refused('jsonb', { a: 'x\u0000' })).toMatch(/NUL/);
    expect(refused('jsonb', { 'k\u0000': 1 })).toMatch(/NUL/);
    expect(refused('jsonb', { a: Number.POSITIVE_INFINITY })).toMatch(/NaN or Infinity/);
    expect(refused('double', Number.NaN)).toMatch(/finite/);
    expect(toCanonical('text', 'emoji 😀')).toBe('emoji 😀');
  });

  it('orders jsonb object keys as jsonb does: shorter first, then by UTF-8 bytes', () => {
    const value = toCanonical('jsonb', { bb: 1, a: { '😀': 1, '\uffff': 2, z: 3 }, b: [{ y: 1, x: 2 }] });
    expect(JSON.stringify(value)).toBe('{"a":{"z":3,"\uffff":2,"😀":1},"b":[{"x":2,"y":1}],"bb":1}');
  });

  it('compares jsonb as PostgreSQL does: equality ignores key order, containment follows @>', () => {
    expect(jsonbEqual({ a: 1, b: [1, 2] }, { b: [1, 2], a: 1 })).toBe(true);
    expect(jsonbEqual([1, 2], [2, 1])).toBe(false);
    expect(jsonbContains({ a: { b: [1, 2, 3] }, c: 1 }, { a: { b: [3, 1] } })).toBe(true);
    expect(jsonbContains([1, [2, 3]], [[3]])).toBe(true);
    expect(jsonbContains(['a', 'b'], 'a')).toBe(true);
    expect(jsonbContains({ a: ['x'] }, { a: 'x' })).toBe(false);
    expect(jsonbContains({ a: 1 }, [])).toBe(false);
    expect(jsonbContains([], [])).toBe(true);
  });
});
