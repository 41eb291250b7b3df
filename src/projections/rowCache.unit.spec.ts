import { describe, expect, it } from 'vitest';
import { cachedRow, cacheRow, clearCache, type RowCache, viewRows } from './rowCache.js';

describe('the row cache', () => {
  it('stays within its budget by evicting the least recently used rows', () => {
    const cache: RowCache = new Map();
    const rows = viewRows(cache, 'v');
    rows.complete = true;
    const budget = 8_000; // about 44 rows
    for (let i = 0; i < 40; i++) cacheRow(rows, `k${i}`, { k: `k${i}`, n: i }, budget);
    // Touch k1: it becomes the most recently used and survives the evictions that follow.
    expect(cachedRow(rows, 'k1')).toEqual({ k: 'k1', n: 1 });
    const full = rows.size;
    for (let i = 40; i < 60; i++) cacheRow(rows, `k${i}`, { k: `k${i}`, n: i }, budget);
    expect(rows.bytes).toBeLessThanOrEqual(budget);
    expect(rows.size).toBeLessThan(full + 20);
    expect(rows.has('k0')).toBe(false);
    expect(rows.has('k2')).toBe(false);
    expect(rows.has('k1')).toBe(true);
    expect(rows.has('k59')).toBe(true);
    // An evicted row means a miss is no longer proof of absence.
    expect(rows.complete).toBe(false);
  });

  it('counts a replaced row once, and forgets everything when cleared', () => {
    const cache: RowCache = new Map();
    const rows = viewRows(cache, 'v');
    cacheRow(rows, 'a', { a: 'x'.repeat(100) }, 1e9);
    const once = rows.bytes!;
    cacheRow(rows, 'a', { a: 'x'.repeat(100) }, 1e9);
    expect(rows.bytes).toBe(once);
    cacheRow(rows, 'a', null, 1e9);
    expect(rows.bytes).toBeLessThan(once);
    clearCache(cache);
    expect(rows.size).toBe(0);
    expect(rows.bytes).toBe(0);
  });
});
