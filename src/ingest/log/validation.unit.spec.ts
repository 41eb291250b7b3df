import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../errors.js';
import { comparePositions, formatPosition, parsePosition, START } from './position.js';
import { prepareEvents } from './validation.js';

const one = (data: unknown) => prepareEvents([{ type: 'T', data: data as never }]);

describe('prepareEvents', () => {
  it.each([
    ['a NUL character', { s: 'a\u0000b' }, 'events[0].data.s'],
    ['a NUL character deep inside', { a: [{ b: { c: ['x', 'y\u0000'] } }] }, 'events[0].data.a[0].b.c[1]'],
    ['a lone high surrogate', { s: 'x\ud800' }, 'events[0].data.s'],
    ['a lone low surrogate', { s: '\udc00x' }, 'events[0].data.s'],
    ['a NUL in a key', { 'k\u0000': 1 }, 'events[0].data'],
    ['a Date', { at: new Date(0) }, 'events[0].data.at'],
    ['a Map', { m: new Map() }, 'events[0].data.m'],
    ['undefined', { u: undefined }, 'events[0].data.u'],
    ['a function', { f: () => 1 }, 'events[0].data.f'],
    ['a bigint', { n: 1n }, 'events[0].data.n'],
    ['Infinity', { n: Number.POSITIVE_INFINITY }, 'events[0].data.n'],
  ])('refuses %s and names the field', (_name, data, field) => {
    const error = (() => {
      try {
        one(data);
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).field).toBe(field);
  });

  it('refuses a cycle and absurd nesting instead of overflowing', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => one(cyclic)).toThrow(/nests deeper/);
  });

  it.each([
    ['text that merely looks like an escape', { s: '\\u0000 and \\ud800' }],
    ['an escaped backslash before u0000', { s: '\\\\u0000' }],
    ['a surrogate pair', { s: 'emoji 😀' }],
    ['null, arrays, nested objects', { a: null, b: [1, 'x', { c: true }], d: { e: -0.5 } }],
    ['an object without prototype', Object.assign(Object.create(null), { a: 1 })],
  ])('accepts %s unchanged', (_name, data) => {
    const [event] = one(data);
    expect(JSON.parse(event!.data)).toEqual(JSON.parse(JSON.stringify(data)));
  });
});

describe('positions', () => {
  it('round-trip and sort as text in (transaction, global position) order', () => {
    const a = formatPosition(9n, 100n);
    const b = formatPosition(10n, 1n);
    const c = formatPosition(10n, 2n);
    expect([c, b, START, a].sort(comparePositions)).toEqual([START, a, b, c]);
    expect(parsePosition(b)).toEqual({ transactionId: 10n, globalPosition: 1n });
    expect(parsePosition(formatPosition(2n ** 63n, 2n ** 62n))).toEqual({
      transactionId: 2n ** 63n,
      globalPosition: 2n ** 62n,
    });
  });
});
