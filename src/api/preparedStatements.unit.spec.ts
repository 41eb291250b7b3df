import { describe, expect, it } from 'vitest';
import { preparedStatements } from './compiledReads.js';

describe('prepared statement names', () => {
  it('name a statement from its second run, the same name for the same text wherever it is named', () => {
    const name = preparedStatements(10);
    expect(name('select 1')).toBeUndefined();
    const first = name('select 1');
    expect(first).toMatch(/^tributary_read_[0-9a-f]{32}$/);
    expect(name('select 1')).toBe(first);
    // Another API in the same process, sharing the pool, must agree: a connection holds one
    // statement per name.
    const other = preparedStatements(10);
    other('select 1');
    expect(other('select 1')).toBe(first);
    name('select 2');
    expect(name('select 2')).not.toBe(first);
  });

  it('name no more than the limit, and none with a limit of 0', () => {
    const name = preparedStatements(2);
    for (const text of ['a', 'b', 'c']) {
      name(text);
      name(text);
    }
    expect(name('a')).toBeDefined();
    expect(name('b')).toBeDefined();
    expect(name('c')).toBeUndefined();
    const none = preparedStatements(0);
    none('a');
    expect(none('a')).toBeUndefined();
  });
});
