import { GraphQLError, Kind, type ValueNode } from 'graphql';
import {
  CANONICAL_TIMESTAMP,
  canonicalTimestamp,
  checkedText,
  toCanonical,
  ValueTypeError,
} from '../projections/index.js';

/** A scalar that cannot hold the input: a typed, client-facing validation error. */
const invalid = (what: string, value: unknown, reason?: string) => {
  const shown = (typeof value === 'string' ? JSON.stringify(value) : String(value)).slice(0, 80);
  return new GraphQLError(`${what} cannot represent ${shown}${reason ? `: it ${reason}` : ''}.`, {
    extensions: { code: 'VALIDATION_FAILED' },
  });
};

/** Parses with the column type's canonical rules, turning their refusal into a GraphQL error. */
const canonical = (what: string, type: 'bigint' | 'numeric', value: unknown): string => {
  try {
    return toCanonical(type, value) as string;
  } catch (error) {
    if (error instanceof ValueTypeError) throw invalid(what, value, error.reason);
    throw error;
  }
};

/** 64-bit integers travel as strings, so JavaScript clients lose no precision. */
export const bigIntScalar = {
  description: 'A 64-bit integer, as a string.',
  serialize: (value: unknown) => (typeof value === 'string' ? value : String(value)),
  parseValue: (value: unknown) => {
    if (typeof value !== 'string' && !(typeof value === 'number' && Number.isSafeInteger(value))) {
      throw invalid('BigInt', value, 'must be a string of digits');
    }
    return canonical('BigInt', 'bigint', value);
  },
  parseLiteral: (node: ValueNode) => {
    if (node.kind !== Kind.STRING && node.kind !== Kind.INT) throw invalid('BigInt', node.kind);
    return canonical('BigInt', 'bigint', node.value);
  },
};

/** Arbitrary-precision numbers travel as strings, exactly as PostgreSQL prints them. */
export const decimalScalar = {
  description: 'An arbitrary-precision decimal number, as a string (scale kept: "80.00").',
  serialize: (value: unknown) => (typeof value === 'string' ? value : String(value)),
  parseValue: (value: unknown) => {
    if (typeof value !== 'string' && typeof value !== 'number') {
      throw invalid('Decimal', value, 'must be a decimal string');
    }
    return canonical('Decimal', 'numeric', value);
  },
  parseLiteral: (node: ValueNode) => {
    if (node.kind !== Kind.STRING && node.kind !== Kind.INT && node.kind !== Kind.FLOAT) {
      throw invalid('Decimal', node.kind);
    }
    return canonical('Decimal', 'numeric', node.value);
  },
};

const parseDateTime = (value: unknown): string => {
  if (typeof value !== 'string') throw invalid('DateTime', value, 'must be an ISO 8601 string');
  try {
    return canonicalTimestamp(value);
  } catch (error) {
    if (error instanceof ValueTypeError) throw invalid('DateTime', value, error.reason);
    throw error;
  }
};

/** ISO 8601 timestamps, always served as UTC with microseconds: `2026-11-30T21:14:05.010000Z`. */
export const dateTimeScalar = {
  description: 'An ISO 8601 timestamp, served in UTC with microseconds (2026-11-30T21:14:05.010000Z).',
  serialize: (value: unknown) =>
    typeof value === 'string' && CANONICAL_TIMESTAMP.test(value) ? value : canonicalTimestamp(value),
  parseValue: parseDateTime,
  parseLiteral: (node: ValueNode) => {
    if (node.kind !== Kind.STRING) throw invalid('DateTime', node.kind);
    return parseDateTime(node.value);
  },
};

/** A string argument PostgreSQL can hold: no NUL, no lone surrogate. */
export function checkedString(value: string, what: string): string {
  try {
    return checkedText(value);
  } catch (error) {
    if (error instanceof ValueTypeError) throw invalid(what, value, error.reason);
    throw error;
  }
}

export const jsonScalar = {
  description: 'Any JSON value.',
  serialize: (value: unknown) => value,
  parseValue: (value: unknown) => value,
  parseLiteral: (node: ValueNode): unknown => literalValue(node),
};

function literalValue(node: ValueNode): unknown {
  switch (node.kind) {
    case Kind.STRING:
    case Kind.BOOLEAN:
      return node.value;
    case Kind.INT:
    case Kind.FLOAT:
      return Number(node.value);
    case Kind.NULL:
      return null;
    case Kind.LIST:
      return node.values.map(literalValue);
    case Kind.OBJECT:
      return Object.fromEntries(node.fields.map((field) => [field.name.value, literalValue(field.value)]));
    default:
      throw new GraphQLError(
        'Variables inside JSON literals are not supported; pass the whole value as a variable.',
        { extensions: { code: 'VALIDATION_FAILED' } },
      );
  }
}

/** `any`, `no_stream`, `stream_exists` or a version number. */
export const expectedVersionScalar = {
  description: "The stream version the append expects: a number, or 'any', 'no_stream', 'stream_exists'.",
  serialize: (value: unknown) => value,
  parseValue: (value: unknown) => parseExpected(value),
  parseLiteral: (node: ValueNode) => {
    if (node.kind === Kind.INT) return parseExpected(Number(node.value));
    if (node.kind === Kind.STRING || node.kind === Kind.ENUM) return parseExpected(node.value);
    throw invalid('ExpectedVersion', node.kind);
  },
};

function parseExpected(value: unknown): 'any' | 'no_stream' | 'stream_exists' | number {
  if (value === 'any' || value === 'no_stream' || value === 'stream_exists') return value;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value;
  if (typeof value === 'string' && /^\d{1,15}$/.test(value)) return Number(value);
  throw invalid('ExpectedVersion', value);
}
