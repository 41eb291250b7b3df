import type { Queryable } from '../../db/index.js';
import { ValidationError } from '../../errors.js';
import { ENVELOPE_COLUMNS, type EventRow, toEnvelope } from './envelope.js';
import type { Envelope, ReadStreamOptions } from './types.js';
import { validateStreamId } from './validation.js';

/** Reads one stream in stream order (forwards) or reverse order (backwards). */
export async function readStream(
  db: Queryable,
  streamId: string,
  options: ReadStreamOptions = {},
): Promise<Envelope[]> {
  validateStreamId(streamId);
  const direction = options.direction ?? 'forwards';
  const limit = validateLimit(options.limit ?? 1000);
  const from = options.fromVersion;
  if (from !== undefined && (!Number.isSafeInteger(from) || from < 0)) {
    throw new ValidationError('fromVersion must be a non-negative integer.', { field: 'fromVersion' });
  }
  const forwards = direction === 'forwards';
  const { rows } = await db.query<EventRow>(
    `select ${ENVELOPE_COLUMNS} from tributary.events r
     where r.stream_id = $1 and ($2::bigint is null or r.stream_position ${forwards ? '>=' : '<='} $2)
     order by r.stream_position ${forwards ? 'asc' : 'desc'}
     limit $3`,
    [streamId, from ?? null, limit],
  );
  return rows.map(toEnvelope);
}

export function validateLimit(limit: number): number {
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > 100_000) {
    throw new ValidationError(`limit must be an integer between 1 and 100000, got ${limit}.`, {
      field: 'limit',
    });
  }
  return limit;
}
