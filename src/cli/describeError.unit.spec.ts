import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../errors.js';
import { describeCliError } from './describeError.js';

describe('what the CLI prints for an error', () => {
  it('a Tributary error: its message and hint', async () => {
    expect(await describeCliError(new ConfigError('Bad port.', { hint: 'Fix it.' }))).toBe(
      'tributary: Bad port.\n  → Fix it.',
    );
  });

  it('a PostgreSQL error: its SQLSTATE, message and detail, with a hint, never the raw object', async () => {
    const error = new pg.DatabaseError('deadlock detected', 100, 'error');
    Object.assign(error, {
      code: '40P01',
      detail: 'Process 1 waits for AccessExclusiveLock on relation 2; blocked by process 3.',
    });
    const text = await describeCliError(error);
    expect(text).toBe(
      'tributary: PostgreSQL error 40P01: deadlock detected (Process 1 waits for AccessExclusiveLock on relation 2; blocked by process 3.)\n  → A concurrent transaction conflicted with this one; run the command again.',
    );
    const other = new pg.DatabaseError('division by zero', 10, 'error');
    Object.assign(other, { code: '22012' });
    expect(await describeCliError(other)).toMatch(
      /^tributary: PostgreSQL error 22012: division by zero\n {2}→ /,
    );
  });

  it('a lost connection: what to check', async () => {
    const error = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    expect(await describeCliError(error)).toMatch(
      /^tributary: cannot reach PostgreSQL: connect ECONNREFUSED 127\.0\.0\.1:1\n {2}→ Check DATABASE_URL/,
    );
  });

  it('a port in use: what to change', async () => {
    const error = Object.assign(new Error('listen EADDRINUSE: address already in use 127.0.0.1:4000'), {
      code: 'EADDRINUSE',
    });
    expect(await describeCliError(error)).toMatch(
      /^tributary: listen EADDRINUSE: address already in use 127\.0\.0\.1:4000\n {2}→ Another process listens on that port/,
    );
  });

  it('anything else: a message and a hint, whatever was thrown', async () => {
    expect(await describeCliError(new Error('boom', { cause: new Error('underneath') }))).toMatch(
      /^tributary: boom \(underneath\)\n {2}→ This is unexpected/,
    );
    for (const thrown of [{ code: 'X', severity: 'ERROR' }, undefined, 'text', 42]) {
      const text = await describeCliError(thrown);
      expect(text).toMatch(/^tributary: \S[\s\S]*\n {2}→ /);
      expect(text).not.toMatch(/\[object Object\]|\{|undefined/);
    }
  });
});
