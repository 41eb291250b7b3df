import type { Queryable } from '../../db/index.js';
import { translateStreamOrder } from './streamOrder.js';
import type { PreparedEvent } from './validation.js';

/** An event of a multi-stream append: checked and serialized, with the stream it goes to. */
export interface StreamEvent extends PreparedEvent {
  streamId: string;
}

export interface AppendToStreamsResult {
  /** Events written. */
  appended: number;
  /** Events skipped because their stream already held an event with the same given id. */
  duplicates: number;
}

// One statement for the whole batch, whatever the number of streams: given ids already in
// their stream (or repeated within the batch) are skipped, every stream's version moves by
// the events it receives, and the events take global positions in the batch's order.
// Streams are locked in stream-id order, so concurrent multi-stream appends cannot deadlock.
const APPEND_SQL = `
with input as (
  select t.ord, t.e ->> 'stream' as stream_id, t.e ->> 'id' as event_id, (t.e ->> 'given')::boolean as given,
         t.e ->> 'type' as type, t.e -> 'data' as data, t.e -> 'metadata' as metadata,
         (t.e ->> 'at')::timestamptz as at,
         row_number() over (partition by t.e ->> 'stream', t.e ->> 'id' order by t.ord) as occurrence
    from jsonb_array_elements($1::jsonb) with ordinality as t (e, ord)
),
fresh as (
  select i.* from input i
   where not i.given
      or (i.occurrence = 1
          and not exists (select 1 from tributary.events e
                           where e.stream_id = i.stream_id and e.event_id_given and e.event_id = i.event_id))
),
counts as (
  select stream_id, count(*)::bigint as n from fresh group by stream_id
),
bumped as (
  insert into tributary.streams as s (stream_id, version)
  select stream_id, n from counts order by stream_id
  on conflict (stream_id) do update set version = s.version + excluded.version, updated_at = now()
  returning s.stream_id, s.version
),
inserted as (
  insert into tributary.events (stream_id, stream_position, event_id, event_id_given, type, data, metadata, event_time)
  select f.stream_id, b.version - c.n + row_number() over (partition by f.stream_id order by f.ord),
         f.event_id, f.given, f.type, f.data, f.metadata, coalesce(f.at, now())
    from fresh f join bumped b using (stream_id) join counts c using (stream_id)
   order by f.ord
  returning 1
)
select (select count(*) from inserted)::int as appended, (select count(*) from input)::int as total`;

/**
 * Appends events to several streams in one statement, in the caller's transaction, in the
 * order given: the writer of captured domain events (outbox rows, EventStoreDB events), whose
 * events each name their own stream. There is no expected-version check. An event whose id was
 * given and is already in its stream is skipped (an idempotent retry), as is a repeat of a
 * given id within the batch; the caller checks and serializes the events (`prepareEvents`).
 * Subscribers are not woken: wake them after the commit (`createWakeUp`).
 */
export async function appendToStreams(
  db: Queryable,
  events: readonly StreamEvent[],
): Promise<AppendToStreamsResult> {
  if (events.length === 0) return { appended: 0, duplicates: 0 };
  const { rows } = await db
    .query<{ appended: number; total: number }>(APPEND_SQL, [batchJson(events)])
    .catch((error: unknown) => {
      throw translateStreamOrder(error);
    });
  const { appended, total } = rows[0]!;
  return { appended, duplicates: total - appended };
}

/** The batch as one JSON array; data and metadata are JSON text already and go in as they are. */
function batchJson(events: readonly StreamEvent[]): string {
  let json = '[';
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!;
    const at = e.eventTime === null ? 'null' : `"${e.eventTime.toISOString()}"`;
    json += `${i === 0 ? '' : ','}{"stream":${JSON.stringify(e.streamId)},"id":${JSON.stringify(e.id)},"given":${e.idGiven},"type":${JSON.stringify(e.type)},"data":${e.data},"metadata":${e.metadata},"at":${at}}`;
  }
  return `${json}]`;
}
