import type { Queryable } from '../../db/index.js';
import { ConcurrencyError, IdempotencyConflictError } from '../../errors.js';
import { formatPosition } from './position.js';
import { translateStreamOrder } from './streamOrder.js';
import type { AppendOptions, AppendResult, EventInput } from './types.js';
import {
  type LimitOptions,
  type PreparedEvent,
  prepareEvents,
  validateExpectedVersion,
  validateStreamId,
} from './validation.js';

const APPEND_SQL = `select outcome, next_version, last_transaction_id::text as xid, last_global_position::text as gp
  from tributary.append_events_json($1, $2, $3::jsonb, $4, $5)`;

/**
 * Appends events to one stream through `db`, which may be a pool (the append is
 * then its own transaction) or a client inside a caller's transaction (CDC appends
 * captured changes and its source checkpoint together this way).
 *
 * `notifyAtCommit` (default true) sends the subscribers' wake-up from inside the
 * transaction. The event store passes false and wakes subscribers itself after the
 * commit, because notifications sent at commit serialize concurrent commits.
 *
 * Given event ids are probed (a repeat is a no-op returning the first result) and indexed;
 * generated ones are neither. Bulk writers that never repeat an id use `openStreamCopy`.
 */
export async function appendToStream(
  db: Queryable,
  streamId: string,
  events: readonly EventInput[],
  options: AppendOptions = {},
  limits: LimitOptions = {},
  notifyAtCommit = true,
): Promise<AppendResult> {
  validateStreamId(streamId);
  const expected = validateExpectedVersion(options.expectedVersion ?? 'any');
  const prepared = prepareEvents(events, limits);
  try {
    const { rows } = await db.query<{ outcome: string; next_version: string; xid: string; gp: string }>(
      APPEND_SQL,
      [streamId, String(expected), eventsJson(prepared), prepared.some((e) => e.idGiven), notifyAtCommit],
    );
    const row = rows[0]!;
    return {
      nextExpectedVersion: Number(row.next_version),
      position: formatPosition(row.xid, row.gp),
      appended: row.outcome === 'appended',
    };
  } catch (error) {
    throw translateAppendError(error, streamId, expected, prepared);
  }
}

/**
 * The batch as one JSON array; data and metadata are already JSON text and go in as they are,
 * so nothing is escaped twice.
 */
function eventsJson(prepared: readonly PreparedEvent[]): string {
  let json = '[';
  for (let i = 0; i < prepared.length; i++) {
    const e = prepared[i]!;
    const at = e.eventTime === null ? 'null' : `"${e.eventTime.toISOString()}"`;
    json += `${i === 0 ? '' : ','}{"id":${JSON.stringify(e.id)},"type":${JSON.stringify(e.type)},"data":${e.data},"metadata":${e.metadata},"at":${at}}`;
  }
  return `${json}]`;
}

function translateAppendError(
  error: unknown,
  streamId: string,
  expected: ReturnType<typeof validateExpectedVersion>,
  prepared: ReturnType<typeof prepareEvents>,
): unknown {
  const pgError = error as { code?: string; detail?: string; constraint?: string };
  if (pgError.code === 'TRB01') {
    return new ConcurrencyError(streamId, expected, Number(pgError.detail));
  }
  if (pgError.code === 'TRB02') {
    const repeated = new Set<string>(JSON.parse(pgError.detail ?? '[]') as string[]);
    const ids = prepared.map((e) => e.id);
    return new IdempotencyConflictError(
      streamId,
      ids.filter((id) => repeated.has(id)),
      ids.filter((id) => !repeated.has(id)),
    );
  }
  return translateStreamOrder(error);
}
