/**
 * One error hierarchy for all of Tributary. Every error carries a stable `code`
 * (used by the CLI exit messages and as `extensions.code` in GraphQL) and, where
 * it helps, a `hint` that tells the user what to do next.
 */
export const ErrorCodes = {
  Validation: 'VALIDATION_FAILED',
  Concurrency: 'WRONG_EXPECTED_VERSION',
  IdempotencyConflict: 'IDEMPOTENCY_CONFLICT',
  StreamOrderConflict: 'STREAM_ORDER_CONFLICT',
  NotFound: 'NOT_FOUND',
  Config: 'CONFIG_INVALID',
  Migration: 'MIGRATION_FAILED',
  EmbeddedPostgres: 'EMBEDDED_POSTGRES_FAILED',
  Timeout: 'TIMEOUT',
  Internal: 'INTERNAL',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export class TributaryError extends Error {
  readonly code: string;
  readonly hint: string | undefined;

  constructor(code: string, message: string, options?: { hint?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.hint = options?.hint;
  }

  /** The message followed by the hint, for people reading a terminal. */
  describe(): string {
    return this.hint ? `${this.message}\n  → ${this.hint}` : this.message;
  }
}

export class ValidationError extends TributaryError {
  /** Dotted path of the offending field, e.g. `events[2].data`. */
  readonly field: string | undefined;

  constructor(message: string, options?: { field?: string; hint?: string; cause?: unknown }) {
    super(ErrorCodes.Validation, message, options);
    this.field = options?.field;
  }
}

export type ExpectedVersion = 'any' | 'no_stream' | 'stream_exists' | number;

export class ConcurrencyError extends TributaryError {
  constructor(
    readonly streamId: string,
    readonly expected: ExpectedVersion,
    /** The stream's version when the append was refused; 0 means the stream does not exist. */
    readonly actual: number,
  ) {
    super(
      ErrorCodes.Concurrency,
      `Stream '${streamId}' is at version ${actual}, but the append expected ${describeExpected(expected)}.`,
      { hint: 'Re-read the stream, decide again, and retry the append with the current version.' },
    );
  }
}

export class IdempotencyConflictError extends TributaryError {
  constructor(
    readonly streamId: string,
    readonly repeatedIds: readonly string[],
    readonly newIds: readonly string[],
  ) {
    super(
      ErrorCodes.IdempotencyConflict,
      `Append to '${streamId}' repeats ${repeatedIds.length} event id(s) already in the stream but also carries ${newIds.length} new one(s).`,
      {
        hint: 'Retry an append with exactly the same events it had the first time, or give every new event a new id.',
      },
    );
  }
}

/**
 * An append inside a transaction that began writing before another transaction appended to
 * the same stream and committed. Its events would be read before events already in the
 * stream, so it is refused (SQLSTATE 40001 in PostgreSQL); the transaction succeeds when run
 * again. Appends that are their own transaction are run again by Tributary itself.
 */
export class StreamOrderConflictError extends TributaryError {
  constructor(
    readonly streamId: string | undefined,
    cause?: unknown,
  ) {
    super(
      ErrorCodes.StreamOrderConflict,
      `${streamId === undefined ? 'A stream' : `Stream '${streamId}'`} was appended to by a transaction that began writing after this one, so this append would be read out of stream order.`,
      { hint: 'Roll back and run the transaction again; nothing of it was written.', cause },
    );
  }
}

export class NotFoundError extends TributaryError {
  constructor(
    readonly kind: string,
    readonly id: string,
    hint?: string,
  ) {
    super(ErrorCodes.NotFound, `Unknown ${kind} '${id}'.`, hint === undefined ? undefined : { hint });
  }
}

export class ConfigError extends TributaryError {
  constructor(message: string, options?: { hint?: string; cause?: unknown }) {
    super(ErrorCodes.Config, message, options);
  }
}

export class MigrationError extends TributaryError {
  constructor(message: string, options?: { hint?: string; cause?: unknown }) {
    super(ErrorCodes.Migration, message, options);
  }
}

export class EmbeddedPostgresError extends TributaryError {
  constructor(message: string, options?: { hint?: string; cause?: unknown }) {
    super(ErrorCodes.EmbeddedPostgres, message, options);
  }
}

export class TimeoutError extends TributaryError {
  constructor(message: string, options?: { hint?: string; cause?: unknown }) {
    super(ErrorCodes.Timeout, message, options);
  }
}

export const isTributaryError = (error: unknown): error is TributaryError => error instanceof TributaryError;
export const isConcurrencyError = (error: unknown): error is ConcurrencyError =>
  error instanceof ConcurrencyError;
export const isValidationError = (error: unknown): error is ValidationError =>
  error instanceof ValidationError;

function describeExpected(expected: ExpectedVersion): string {
  switch (expected) {
    case 'any':
      return 'any version';
    case 'no_stream':
      return 'no stream';
    case 'stream_exists':
      return 'an existing stream';
    default:
      return `version ${expected}`;
  }
}
