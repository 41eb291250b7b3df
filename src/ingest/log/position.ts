import { ValidationError } from '../../errors.js';

/**
 * An opaque, totally ordered place in the log. Internally `(transaction_id, global_position)`
 * as two 16-digit hex numbers, so that comparing the strings compares the positions.
 */
export type Position = string & { readonly __brand?: 'Position' };

const FORMAT = /^[0-9a-f]{16}-[0-9a-f]{16}$/;

/** Before the first event. */
export const START: Position = formatPosition(0n, 0n);

export interface PositionParts {
  transactionId: bigint;
  globalPosition: bigint;
}

export function formatPosition(transactionId: bigint | string, globalPosition: bigint | string): Position {
  const hex = (value: bigint | string) => BigInt(value).toString(16).padStart(16, '0');
  return `${hex(transactionId)}-${hex(globalPosition)}`;
}

export function isPosition(value: unknown): value is Position {
  return typeof value === 'string' && FORMAT.test(value);
}

/** Parses an opaque position; throws a ValidationError for anything that is not one. */
export function parsePosition(position: string): PositionParts {
  if (!isPosition(position)) {
    throw new ValidationError(`'${String(position).slice(0, 80)}' is not a Tributary log position.`, {
      field: 'position',
      hint: 'Use a position returned by Tributary (append results, envelopes, cursors) unchanged.',
    });
  }
  return {
    transactionId: BigInt(`0x${position.slice(0, 16)}`),
    globalPosition: BigInt(`0x${position.slice(17)}`),
  };
}

export function comparePositions(a: Position, b: Position): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function maxPosition(a: Position, b: Position): Position {
  return a >= b ? a : b;
}
