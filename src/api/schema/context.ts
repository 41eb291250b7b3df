/// <reference types="@pothos/core" preserve="true" />
// The declaration of Builder names the global PothosSchemaTypes namespace: the directive keeps
// @pothos/core in the program of an app that typechecks this file without skipLibCheck.
import SchemaBuilder from '@pothos/core';
import type { Pool } from '../../db/index.js';
import type { EventStore, ExpectedVersion } from '../../ingest/index.js';
import type { ChangeTailer, ColumnType } from '../../projections/index.js';
import type { AnyView } from '../anyView.js';
import type { Scope } from '../apiConfig.js';
import { type Identity, requireScope } from '../auth.js';
import {
  bigIntScalar,
  dateTimeScalar,
  decimalScalar,
  expectedVersionScalar,
  jsonScalar,
} from '../scalars.js';
import type { StatusProvider } from '../status.js';

export interface ApiContext {
  identity: Identity;
  /** The request's `x-request-id`, or one made up; logs about the request carry it. */
  requestId: string;
  /** Aborted when the request or the subscription ends. */
  signal?: AbortSignal;
}

export interface SchemaOptions {
  views: readonly AnyView[];
  viewSchema: string;
  pool: Pool;
  tailer: ChangeTailer;
  store: Pick<EventStore, 'append'>;
  status: StatusProvider;
  /** Projections whose checkpoints a read-your-writes query on `view` waits for. @default every projection */
  projectionsOf?: (view: string) => readonly string[] | undefined;
  defaultPageSize: number;
  maxPageSize: number;
  subscriptionBuffer: number;
  readYourWritesTimeoutMs: number;
  /** Called when a view subscription starts; the returned function when it ends. */
  onSubscription?: (view: string) => () => void;
}

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

/** A resolver (or subscribe function) that runs only for callers holding `scope` (or admin). */
export function scoped<Root, Args, Result>(
  scope: Scope,
  resolve: (root: Root, args: Args, context: ApiContext) => Result,
): (root: Root, args: Args, context: ApiContext) => Result {
  return (root, args, context) => {
    requireScope(context.identity, scope);
    return resolve(root, args, context);
  };
}

/** `order_lines` → `OrderLines`; `order_lines` → `orderLines`. */
export const typeName = (name: string) =>
  name
    .split('_')
    .filter(Boolean)
    .map((part) => part[0]!.toUpperCase() + part.slice(1))
    .join('');
export const fieldName = (name: string) => {
  const type = typeName(name);
  return type[0]!.toLowerCase() + type.slice(1);
};
