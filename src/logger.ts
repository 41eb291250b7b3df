import { pino, stdSerializers } from 'pino';

/**
 * Structured logging through pino: one JSON object per line on stderr, or a compact readable
 * line when stderr is a terminal. Level from `TRIBUTARY_LOG_LEVEL` (default `info`). Errors
 * in any field keep their type, message, stack, code, hint and `cause` chain.
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

const LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error', 'silent'];

function parseLevel(value: string | undefined): LogLevel {
  return LEVELS.includes(value as LogLevel) ? (value as LogLevel) : 'info';
}

export interface LoggerOptions {
  /** @default process.env.TRIBUTARY_LOG_LEVEL ?? 'info' */
  level?: LogLevel;
  /** @default process.stderr.isTTY ? 'pretty' : 'json' */
  format?: 'json' | 'pretty';
  /** Where each line goes (with its newline). @default stderr, written synchronously */
  write?: (line: string) => void;
}

export function createLogger(options: LoggerOptions = {}, bound: LogFields = {}): Logger {
  const level = options.level ?? parseLevel(process.env.TRIBUTARY_LOG_LEVEL);
  const format = options.format ?? (process.stderr.isTTY ? 'pretty' : 'json');
  const write = options.write ?? ((line: string) => process.stderr.write(line));
  const destination =
    format === 'pretty'
      ? { write: (line: string) => write(prettyLine(line)) }
      : options.write
        ? { write }
        : pino.destination({ dest: 2, sync: true });
  const root = pino(
    {
      level,
      // Levels by name, time as ISO 8601: what log collectors and people read without a table.
      formatters: { level: (label) => ({ level: label }) },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
  return wrap(Object.keys(bound).length > 0 ? root.child(serialize(bound)) : root);
}

function wrap(instance: pino.Logger): Logger {
  const emit =
    (at: Exclude<LogLevel, 'silent'>) =>
    (message: string, fields?: LogFields): void => {
      if (!instance.isLevelEnabled(at)) return;
      if (fields === undefined) instance[at](message);
      else instance[at](serialize(fields), message);
    };
  return {
    debug: emit('debug'),
    info: emit('info'),
    warn: emit('warn'),
    error: emit('error'),
    child: (fields) => wrap(instance.child(serialize(fields))),
  };
}

/** Every Error among the fields, whatever its key, as pino serializes errors with their causes. */
function serialize(fields: LogFields): LogFields {
  let out: LogFields | undefined;
  for (const [key, value] of Object.entries(fields)) {
    if (!(value instanceof Error)) continue;
    out ??= { ...fields };
    out[key] = serializeError(value);
  }
  return out ?? fields;
}

function serializeError(error: Error): Record<string, unknown> {
  const serialized = stdSerializers.errWithCause(error) as unknown as Record<string, unknown>;
  // A cause that is not an error (a string, an object) is kept as it is.
  if (serialized.cause === undefined && error.cause !== undefined) serialized.cause = error.cause;
  return serialized;
}

/** One JSON line as `HH:MM:SS.mmm LEVEL message key=value …`, then the stack of each error. */
function prettyLine(line: string): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const { time, level, msg, pid: _pid, hostname: _hostname, ...fields } = record;
  const stacks: string[] = [];
  const extras = Object.entries(fields)
    .map(([key, value]) => {
      if (isSerializedError(value)) {
        stacks.push(stackOf(value));
        return `${key}=${JSON.stringify(value.message)}`;
      }
      return `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`;
    })
    .join(' ');
  const clock = typeof time === 'string' ? time.slice(11, 23) : '';
  const head = `${clock} ${String(level).toUpperCase().padEnd(5)} ${String(msg ?? '')}${extras ? ` ${extras}` : ''}`;
  return `${[head, ...stacks].join('\n')}\n`;
}

interface SerializedError {
  message: string;
  stack?: string;
  cause?: unknown;
}

function isSerializedError(value: unknown): value is SerializedError {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as SerializedError).message === 'string' &&
    typeof (value as SerializedError).stack === 'string'
  );
}

function stackOf(error: SerializedError, depth = 0): string {
  const indent = '    '.repeat(depth + 1);
  const own = (error.stack ?? error.message)
    .split('\n')
    .map((line) => indent + line.trim())
    .join('\n');
  return isSerializedError(error.cause) && depth < 5
    ? `${own}\n${indent}caused by:\n${stackOf(error.cause, depth + 1)}`
    : own;
}

/** A logger that drops everything; handy for tests and benchmarks. */
export const silentLogger: Logger = createLogger({ level: 'silent' });
