/**
 * Structured logging: one JSON object per line on stderr, or a compact readable
 * line when stderr is a terminal. Level from `TRIBUTARY_LOG_LEVEL` (default `info`).
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

const rank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

function parseLevel(value: string | undefined): LogLevel {
  return value !== undefined && value in rank ? (value as LogLevel) : 'info';
}

export interface LoggerOptions {
  /** @default process.env.TRIBUTARY_LOG_LEVEL ?? 'info' */
  level?: LogLevel;
  /** @default process.stderr.isTTY ? 'pretty' : 'json' */
  format?: 'json' | 'pretty';
  /** @default (line) => process.stderr.write(line) */
  write?: (line: string) => void;
}

export function createLogger(options: LoggerOptions = {}, bound: LogFields = {}): Logger {
  const level = options.level ?? parseLevel(process.env.TRIBUTARY_LOG_LEVEL);
  const format = options.format ?? (process.stderr.isTTY ? 'pretty' : 'json');
  const write = options.write ?? ((line: string) => process.stderr.write(line));

  const emit = (at: Exclude<LogLevel, 'silent'>, message: string, fields?: LogFields) => {
    if (rank[at] < rank[level]) return;
    const all = { ...bound, ...fields };
    if (format === 'json') {
      write(
        `${JSON.stringify({ time: new Date().toISOString(), level: at, msg: message, ...serialize(all) })}\n`,
      );
      return;
    }
    const extras = Object.entries(serialize(all))
      .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
      .join(' ');
    write(
      `${new Date().toISOString().slice(11, 23)} ${at.toUpperCase().padEnd(5)} ${message}${extras ? ` ${extras}` : ''}\n`,
    );
  };

  return {
    debug: (message, fields) => emit('debug', message, fields),
    info: (message, fields) => emit('info', message, fields),
    warn: (message, fields) => emit('warn', message, fields),
    error: (message, fields) => emit('error', message, fields),
    child: (fields) => createLogger({ level, format, write }, { ...bound, ...fields }),
  };
}

function serialize(fields: LogFields): LogFields {
  const out: LogFields = {};
  for (const [key, value] of Object.entries(fields)) {
    out[key] =
      value instanceof Error
        ? { name: value.name, message: value.message, ...('code' in value ? { code: value.code } : {}) }
        : value;
  }
  return out;
}

/** A logger that drops everything; handy for tests and benchmarks. */
export const silentLogger: Logger = createLogger({ level: 'silent' });
