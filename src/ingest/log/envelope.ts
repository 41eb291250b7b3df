import { formatPosition } from './position.js';
import type { Envelope, JsonObject } from './types.js';

/** The columns every log read selects, in the shape `toEnvelope` expects. */
export const ENVELOPE_COLUMNS = `e.transaction_id::text as xid, e.global_position::text as gp, e.stream_id,
  e.stream_position::int as stream_position, e.event_id, e.type, e.data, e.metadata, e.event_time, e.recorded_at`;

export interface EventRow {
  xid: string;
  gp: string;
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
    position: formatPosition(row.xid, row.gp),
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
