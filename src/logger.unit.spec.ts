import { afterEach, describe, expect, it, vi } from 'vitest';
import { ConfigError } from './errors.js';
import { createLogger } from './logger.js';

function capture(options: Parameters<typeof createLogger>[0] = {}) {
  const lines: string[] = [];
  const logger = createLogger({ format: 'json', ...options, write: (line) => lines.push(line) });
  return { logger, lines, records: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>) };
}

afterEach(() => {
  vi.unstubAllEnvs();
});

describe('createLogger', () => {
  it('writes one JSON object per line: ISO time, level by name, message and fields', () => {
    const { logger, lines, records } = capture({ level: 'info' });
    logger.info('projection lease acquired', { projection: 'shop', workerId: 'w-1' });
    expect(lines).toHaveLength(1);
    expect(lines[0]!.endsWith('\n')).toBe(true);
    const [record] = records();
    expect(record).toMatchObject({ level: 'info', msg: 'projection lease acquired', projection: 'shop' });
    expect(record!.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  it("keeps an error's type, message, stack, code, hint and its cause chain", () => {
    const { logger, records } = capture();
    const refused = Object.assign(new Error('password authentication failed for user "app"'), {
      code: '28P01',
      severity: 'FATAL',
    });
    const error = new ConfigError('The source database refused the connection.', {
      hint: 'Check sources.shop.url.',
      cause: refused,
    });
    logger.error('capture failed', { error, source: 'shop' });
    const [record] = records();
    const logged = record!.error as Record<string, unknown>;
    expect(logged).toMatchObject({
      type: 'ConfigError',
      message: 'The source database refused the connection.',
      code: 'CONFIG_INVALID',
      hint: 'Check sources.shop.url.',
    });
    expect(logged.stack).toMatch(/^ConfigError: The source database refused[\s\S]*logger\.unit\.spec\.ts/);
    expect(logged.cause).toMatchObject({
      type: 'Error',
      message: 'password authentication failed for user "app"',
      code: '28P01',
      severity: 'FATAL',
    });
    expect((logged.cause as { stack: string }).stack).toMatch(/^Error: password authentication failed/);
    expect(record!.source).toBe('shop');
  });

  it('keeps a cause that is not an error as it is', () => {
    const { logger, records } = capture();
    logger.warn('odd failure', { error: new Error('outer', { cause: { reason: 'quota' } }) });
    expect((records()[0]!.error as { cause: unknown }).cause).toEqual({ reason: 'quota' });
  });

  it('takes its level from TRIBUTARY_LOG_LEVEL, and drops what is below it', () => {
    vi.stubEnv('TRIBUTARY_LOG_LEVEL', 'warn');
    const { logger, records } = capture();
    logger.debug('d');
    logger.info('i');
    logger.warn('w');
    logger.error('e');
    expect(records().map((r) => r.level)).toEqual(['warn', 'error']);

    vi.stubEnv('TRIBUTARY_LOG_LEVEL', 'silent');
    const silent = capture();
    silent.logger.error('nothing');
    expect(silent.lines).toEqual([]);

    vi.stubEnv('TRIBUTARY_LOG_LEVEL', 'nonsense');
    const fallback = capture();
    fallback.logger.debug('hidden');
    fallback.logger.info('shown');
    expect(fallback.records().map((r) => r.msg)).toEqual(['shown']);
  });

  it('binds the fields of a child, errors included', () => {
    const { logger, records } = capture({ level: 'debug' });
    const child = logger.child({ component: 'api' }).child({ projection: 'shop' });
    child.debug('batch committed', { events: 3 });
    expect(records()[0]).toMatchObject({
      component: 'api',
      projection: 'shop',
      events: 3,
      msg: 'batch committed',
    });
  });

  it('writes readable lines in the pretty format, with the stacks of errors and their causes', () => {
    const { logger, lines } = capture({ format: 'pretty' });
    logger.error('capture failed', {
      source: 'shop',
      error: new Error('outer failure', { cause: new Error('inner failure') }),
    });
    const text = lines.join('');
    expect(text).toMatch(/^\d\d:\d\d:\d\d\.\d{3} ERROR capture failed source=shop error="outer failure"\n/);
    expect(text).toMatch(/ {4}Error: outer failure\n {4}at /);
    expect(text).toMatch(/caused by:\n {8}Error: inner failure\n/);
    expect(text).not.toMatch(/"pid"|hostname=/);
  });
});
