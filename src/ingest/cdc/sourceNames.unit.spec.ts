import { describe, expect, it } from 'vitest';
import { isValidIdentifier } from '../../db/index.js';
import { defaultName } from './sourceNames.js';

describe('default slot and publication names', () => {
  it('differ between log databases and between sources, and stay the same for the same pair', () => {
    const a = defaultName('shop', '7311/tributary');
    expect(a).toMatch(/^tributary_shop_[0-9a-f]{10}$/);
    expect(defaultName('shop', '7311/tributary')).toBe(a);
    expect(defaultName('shop', '7311/tributary_staging')).not.toBe(a);
    expect(defaultName('shop', '9999/tributary')).not.toBe(a);
    expect(defaultName('shop2', '7311/tributary')).not.toBe(a);
  });

  it('fit PostgreSQL’s 63-character names, and long source names sharing a prefix still differ', () => {
    const long = 'a'.repeat(63);
    const other = `${'a'.repeat(62)}b`;
    const name = defaultName(long, '1/log');
    expect(name).toHaveLength(63);
    expect(isValidIdentifier(name)).toBe(true);
    expect(defaultName(other, '1/log')).not.toBe(name);
  });
});
