import { GraphQLError, Kind, type ValueNode } from 'graphql';

const invalid = (what: string, value: unknown) =>
  new GraphQLError(`${what} cannot represent ${JSON.stringify(value)?.slice(0, 80)}.`, {
    extensions: { code: 'BAD_USER_INPUT' },
  });

const INTEGER = /^-?\d{1,19}$/;
const DECIMAL = /^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/;

/** 64-bit integers travel as strings, so JavaScript clients lose no precision. */
export const bigIntScalar = {
  description: 'A 64-bit integer, as a string.',
  serialize: (value: unknown) => String(value),
  parseValue: (value: unknown) => {
    const text = typeof value === 'number' && Number.isSafeInteger(value) ? String(value) : value;
    if (typeof text !== 'string' || !INTEGER.test(text)) throw invalid('BigInt', value);
    return text;
  },
  parseLiteral: (node: ValueNode) => {
    if (node.kind !== Kind.STRING && node.kind !== Kind.INT) throw invalid('BigInt', node.kind);
    if (!INTEGER.test(node.value)) throw invalid('BigInt', node.value);
    return node.value;
  },
};

/** Arbitrary-precision numbers travel as strings. */
export const decimalScalar = {
  description: 'An arbitrary-precision decimal number, as a string.',
  serialize: (value: unknown) => String(value),
  parseValue: (value: unknown) => {
    const text = typeof value === 'number' && Number.isFinite(value) ? String(value) : value;
    if (typeof text !== 'string' || !DECIMAL.test(text)) throw invalid('Decimal', value);
    return text;
  },
  parseLiteral: (node: ValueNode) => {
    if (node.kind !== Kind.STRING && node.kind !== Kind.INT && node.kind !== Kind.FLOAT) {
      throw invalid('Decimal', node.kind);
    }
    if (!DECIMAL.test(node.value)) throw invalid('Decimal', node.value);
    return node.value;
  },
};

/** ISO 8601 timestamps; values read from views keep PostgreSQL's microseconds. */
export const dateTimeScalar = {
  description: 'An ISO 8601 timestamp with time zone.',
  serialize: (value: unknown) => (value instanceof Date ? value.toISOString() : String(value)),
  parseValue: (value: unknown) => {
    if (typeof value !== 'string' || Number.isNaN(Date.parse(value))) throw invalid('DateTime', value);
    return value;
  },
  parseLiteral: (node: ValueNode) => {
    if (node.kind !== Kind.STRING || Number.isNaN(Date.parse(node.value)))
      throw invalid('DateTime', node.kind);
    return node.value;
  },
};

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
        {
          extensions: { code: 'BAD_USER_INPUT' },
        },
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
