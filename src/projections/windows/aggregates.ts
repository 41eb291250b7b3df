import type { JsonValue } from '../../ingest/index.js';
import { addDecimals, compareDecimals, decimalToJson, formatDecimal, parseDecimal } from './decimal.js';

/**
 * How values of one window combine. The accumulator must be plain JSON: it is stored
 * in PostgreSQL between batches. `merge` combines two accumulators (session windows
 * merge this way), and must agree with `add`.
 */
export interface Aggregate<Acc extends JsonValue = JsonValue, Result extends JsonValue = JsonValue> {
  name: string;
  init(): Acc;
  add(acc: Acc, value: unknown): Acc;
  merge(a: Acc, b: Acc): Acc;
  result(acc: Acc): Result;
}

/** Builds a user-defined aggregate; `name` shows up in errors and logs. */
export function defineAggregate<Acc extends JsonValue, Result extends JsonValue>(
  aggregate: Aggregate<Acc, Result>,
): Aggregate<Acc, Result> {
  return aggregate;
}

type Extreme = { v: JsonValue } | null;

export const aggregates = {
  /** Number of elements. */
  count(): Aggregate<number, number> {
    return {
      name: 'count',
      init: () => 0,
      add: (acc) => acc + 1,
      merge: (a, b) => a + b,
      result: (acc) => acc,
    };
  },
  /**
   * Exact sum of numbers or numeric strings: integers of any size and decimal fractions add up
   * without rounding. The result is a JSON number when that number is exact, else a decimal string.
   */
  sum(): Aggregate<string, number | string> {
    return {
      name: 'sum',
      init: () => '0',
      add: (acc, value) => formatDecimal(addDecimals(parseDecimal(acc), parseDecimal(value, 'sum value'))),
      merge: (a, b) => formatDecimal(addDecimals(parseDecimal(a), parseDecimal(b))),
      result: (acc) => decimalToJson(parseDecimal(acc)),
    };
  },
  /** Smallest number (compared exactly, numeric strings too); null for an empty pane. */
  min(): Aggregate<Extreme, JsonValue> {
    return extreme('min', (order) => order < 0);
  },
  /** Largest number; null for an empty pane. */
  max(): Aggregate<Extreme, JsonValue> {
    return extreme('max', (order) => order > 0);
  },
  /** Arithmetic mean as a double, from an exact sum; null for an empty pane. */
  avg(): Aggregate<{ sum: string; count: number }, number | null> {
    return {
      name: 'avg',
      init: () => ({ sum: '0', count: 0 }),
      add: (acc, value) => ({
        sum: formatDecimal(addDecimals(parseDecimal(acc.sum), parseDecimal(value, 'avg value'))),
        count: acc.count + 1,
      }),
      merge: (a, b) => ({
        sum: formatDecimal(addDecimals(parseDecimal(a.sum), parseDecimal(b.sum))),
        count: a.count + b.count,
      }),
      result: (acc) => (acc.count === 0 ? null : Number(acc.sum) / acc.count),
    };
  },
};

function extreme(name: string, better: (order: number) => boolean): Aggregate<Extreme, JsonValue> {
  const pick = (a: Extreme, b: Extreme): Extreme => {
    if (a === null) return b;
    if (b === null) return a;
    return better(compareDecimals(parseDecimal(b.v, `${name} value`), parseDecimal(a.v, `${name} value`)))
      ? b
      : a;
  };
  return {
    name,
    init: () => null,
    add: (acc, value) => {
      parseDecimal(value, `${name} value`);
      return pick(acc, { v: value as JsonValue });
    },
    merge: pick,
    result: (acc) => (acc === null ? null : acc.v),
  };
}
