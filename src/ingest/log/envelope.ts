import { formatPosition } from './position.js';
import type { Envelope, JsonObject } from './types.js';

/** The columns every log read selects (from the alias `r`), in the shape `toEnvelope` expects. */
export const ENVELOPE_COLUMNS = `r.transaction_id::text as xid, r.global_position::text as seq, r.stream_id,
  r.stream_position::int as stream_position, r.event_id, r.type, r.data, r.metadata, r.event_time, r.recorded_at`;

export interface EventRow {
  xid: string;
  /** The global position. */
  seq: string;
  stream_id: string;
  stream_position: number;
  event_id: string;
  type: string;
  data: JsonObject;
  metadata: JsonObject;
  event_time: Date;
  recorded_at: Date;
}

export function toEnvelope(row: EventRow): Envelope {
  return {
    position: formatPosition(row.xid, row.seq),
    streamId: row.stream_id,
    streamPosition: row.stream_position,
    eventId: row.event_id,
    type: row.type,
    data: row.data,
    metadata: row.metadata,
    eventTime: row.event_time,
    recordedAt: row.recorded_at,
  };
}
