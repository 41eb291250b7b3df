import { isValidationError } from '../../errors.js';
import {
  type JsonObject,
  type PreparedEvent,
  prepareEvents,
  type StreamEvent,
  validateStreamId,
} from '../log/index.js';
import { type Relation, rejectedRowEvent, type SourceTransaction } from './changeEvents.js';
import type { Tuple, TupleValue } from './pgoutputDecoder.js';
import type { OutboxSettings } from './types.js';

/** An outbox table as the latest relation message describes it: where each field's column is. */
export interface OutboxMapping {
  settings: OutboxSettings;
  /** Index of each configured column in the relation's columns; -1 when the column is gone. */
  stream: number;
  type: number;
  data: number;
  id: number;
  metadata: number;
}

export function outboxMapping(relation: Pick<Relation, 'columns'>, settings: OutboxSettings): OutboxMapping {
  const index = (column: string | null) =>
    column === null ? -1 : relation.columns.findIndex((c) => c.name === column);
  return {
    settings,
    stream: index(settings.columns.stream),
    type: index(settings.columns.type),
    data: index(settings.columns.data),
    id: index(settings.columns.id),
    metadata: index(settings.columns.metadata),
  };
}

/** Outbox events are not held to the application append limits, like captured rows. */
const NO_LIMITS = { maxEventBytes: Number.MAX_SAFE_INTEGER, maxEventsPerAppend: 1 };

/** Why an outbox row cannot become an event: it lands in the source's stream as `<table>.rejected`. */
class OutboxRowError extends Error {}

/**
 * The domain event an inserted outbox row stands for, in the stream its `stream` column names;
 * or, when the row cannot be one (a null or empty stream or type, data that is not a JSON
 * object, an id too long…), a `<schema>.<table>.rejected` event for the source's own stream
 * that carries the row and the reason, so that nothing is lost and capture goes on.
 */
export function outboxEvent(
  txn: SourceTransaction,
  relation: Relation,
  mapping: OutboxMapping,
  tuple: Tuple,
): { event: StreamEvent } | { rejected: PreparedEvent } {
  const ordinal = txn.ordinal;
  try {
    const { settings } = mapping;
    const text = (index: number, field: string): string | null => {
      if (index < 0) throw new OutboxRowError(`the table has no column '${field}' any more`);
      const value = tuple[index] as TupleValue | undefined;
      return typeof value === 'string' ? value : null;
    };
    const required = (index: number, field: string): string => {
      const value = text(index, field);
      if (value === null || value.length === 0)
        throw new OutboxRowError(`column '${field}' is null or empty`);
      return value;
    };
    const object = (index: number, field: string, optional = false): JsonObject => {
      if (optional && text(index, field) === null) return {};
      const value = required(index, field);
      const kind = relation.kinds[index]!.kind;
      if (kind !== 'json' && kind !== 'text') {
        throw new OutboxRowError(`column '${field}' must be json, jsonb or text holding JSON`);
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(value);
      } catch {
        throw new OutboxRowError(`column '${field}' does not hold JSON`);
      }
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
        throw new OutboxRowError(`column '${field}' must hold a JSON object`);
      }
      return parsed as JsonObject;
    };
    const streamId = validateStreamId(
      settings.streamPrefix + required(mapping.stream, settings.columns.stream),
    );
    const id = settings.columns.id === null ? undefined : required(mapping.id, settings.columns.id);
    const metadata: JsonObject = {
      // A null metadata column: no metadata of the application's.
      ...(settings.columns.metadata === null
        ? {}
        : object(mapping.metadata, settings.columns.metadata, true)),
      source: txn.source,
      lsn: txn.finalLsn,
      xid: txn.xid,
      ordinal,
      outbox: `${relation.schema}.${relation.name}`,
    };
    const [prepared] = prepareEvents(
      [
        {
          ...(id === undefined ? {} : { id }),
          type: required(mapping.type, settings.columns.type),
          data: object(mapping.data, settings.columns.data),
          metadata,
          eventTime: txn.commitTime,
        },
      ],
      NO_LIMITS,
    );
    txn.ordinal++;
    return {
      event: {
        ...prepared!,
        // Without an id column the id is derived from the LSN like a row change's: never repeated.
        ...(id === undefined ? { id: txn.idPrefix + ordinal, idGiven: false } : {}),
        streamId,
      },
    };
  } catch (error) {
    if (!(error instanceof OutboxRowError) && !isValidationError(error)) throw error;
    return { rejected: rejectedRowEvent(txn, relation, tuple, error.message) };
  }
}
