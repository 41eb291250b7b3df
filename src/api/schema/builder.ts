import SchemaBuilder from '@pothos/core';
import type { ExpectedVersion } from '../../ingest/index.js';
import type { ColumnType } from '../../projections/index.js';
import {
  bigIntScalar,
  dateTimeScalar,
  decimalScalar,
  expectedVersionScalar,
  jsonScalar,
} from '../scalars.js';
import type { ApiContext } from './context.js';

// The Pothos builder the schema features share. Kept apart from context.ts, whose types the
// public API shows: these name Pothos' global types, which only an app using Pothos has.

export type Row = Record<string, unknown>;
// biome-ignore lint/complexity/noBannedTypes: any non-undefined JSON value
export type JsonInput = {} | null;
export type SchemaTypes = {
  Context: ApiContext;
  Scalars: {
    BigInt: { Input: string; Output: unknown };
    Decimal: { Input: string; Output: unknown };
    DateTime: { Input: string; Output: unknown };
    JSON: { Input: JsonInput; Output: unknown };
    ExpectedVersion: { Input: ExpectedVersion; Output: unknown };
  };
  DefaultFieldNullability: false;
};
export type Builder = PothosSchemaTypes.SchemaBuilder<PothosSchemaTypes.ExtendDefaultTypes<SchemaTypes>>;
export type ScalarName = 'String' | 'Int' | 'BigInt' | 'Decimal' | 'Float' | 'Boolean' | 'DateTime' | 'JSON';

/** The GraphQL scalar of each column type (`text[]` is a list of it). */
export const SCALAR_OF: Record<ColumnType, ScalarName> = {
  text: 'String',
  integer: 'Int',
  bigint: 'BigInt',
  numeric: 'Decimal',
  double: 'Float',
  boolean: 'Boolean',
  timestamptz: 'DateTime',
  jsonb: 'JSON',
  'text[]': 'String',
};

/** A builder with Tributary's scalars registered. */
export function createBuilder(): Builder {
  const builder = new SchemaBuilder<SchemaTypes>({ defaultFieldNullability: false });
  builder.scalarType('BigInt', bigIntScalar);
  builder.scalarType('Decimal', decimalScalar);
  builder.scalarType('DateTime', dateTimeScalar);
  builder.scalarType('JSON', {
    ...jsonScalar,
    parseValue: (value) => value as JsonInput,
    parseLiteral: (node) => jsonScalar.parseLiteral(node) as JsonInput,
  });
  builder.scalarType('ExpectedVersion', expectedVersionScalar);
  return builder;
}
