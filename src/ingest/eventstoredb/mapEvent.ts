import { isValidationError } from '../../errors.js';
import {
  type JsonObject,
  type JsonValue,
  prepareEvents,
  type StreamEvent,
  validateStreamId,
} from '../log/index.js';
import type { EsdbRecordedEvent, ServerFilter } from './feed.js';
import type { EventStoreDbSettings } from './types.js';

/** What one `$all` event becomes in the log. */
export type MappedEvent =
  | { kind: 'event'; event: StreamEvent }
  /**
   * A stream deleted or truncated in EventStoreDB: a `$streamDeleted` / `$streamTruncated`
   * event in the stream's log stream. `ifKnown`: only when the log holds that stream (under an
   * event-type filter, deletions of every stream come through).
   */
  | { kind: 'marker'; event: StreamEvent; ifKnown: boolean }
  /** Cannot be an event of the log (a name too long, a NUL character…): kept in the source's rejected stream. */
  | { kind: 'rejected'; event: StreamEvent; reason: string }
  | { kind: 'skip' };

/** Above this `$tb` (truncate before), a stream is soft-deleted: EventStoreDB writes long.MaxValue. */
const SOFT_DELETED = 9.2e18;
const NO_LIMITS = { maxEventBytes: Number.MAX_SAFE_INTEGER, maxEventsPerAppend: 1 };

/** The log stream where a source's events that cannot be mapped are kept. */
export const rejectedStream = (settings: Pick<EventStoreDbSettings, 'name'>) =>
  `tributary-rejected-${settings.name}`;

/**
 * Maps one event of `$all`. Its id, type, data and metadata carry across; the stream is the
 * EventStoreDB stream under `streamPrefix`; the metadata gains `source` and `esdb` (the
 * original stream, revision, `$all` position and creation time); the event time is the
 * creation time. Data that is not a JSON object is wrapped: `{ value }` for other JSON,
 * `{ base64 }` for binary data, `{ text }` for JSON that does not parse.
 */
export function mapEvent(settings: EventStoreDbSettings, event: EsdbRecordedEvent): MappedEvent {
  const system = event.type.startsWith('$');
  if (event.type === '$metadata' && event.streamId.startsWith('$$')) return streamMetadata(settings, event);
  if (event.type === '$streamDeleted') {
    return marker(settings, event, event.streamId, '$streamDeleted', { stream: event.streamId, hard: true });
  }
  if (event.type === '$>') {
    if (!settings.linkEvents) return { kind: 'skip' };
  } else if (system && !settings.systemEvents) {
    return { kind: 'skip' };
  }
  if (!passesFilter(settings.filter, event.streamId, event.type)) return { kind: 'skip' };
  return toStreamEvent(settings, event, event.streamId, event.type, wrapData(event), false);
}

function streamMetadata(settings: EventStoreDbSettings, event: EsdbRecordedEvent): MappedEvent {
  const stream = event.streamId.slice(2);
  const data = event.data as { $tb?: unknown } | null;
  const truncateBefore = typeof data === 'object' && data !== null ? data.$tb : undefined;
  if (typeof truncateBefore === 'number') {
    if (!passesFilter(settings.filter?.on === 'stream' ? settings.filter : null, stream, ''))
      return { kind: 'skip' };
    return truncateBefore >= SOFT_DELETED
      ? marker(settings, event, stream, '$streamDeleted', { stream, hard: false })
      : marker(settings, event, stream, '$streamTruncated', { stream, truncateBefore });
  }
  // Other stream settings ($maxAge, $maxCount, ACLs): system events like any other.
  if (!settings.systemEvents || !passesFilter(settings.filter, event.streamId, event.type))
    return { kind: 'skip' };
  return toStreamEvent(settings, event, event.streamId, event.type, wrapData(event), false);
}

function marker(
  settings: EventStoreDbSettings,
  event: EsdbRecordedEvent,
  stream: string,
  type: string,
  data: JsonObject,
): MappedEvent {
  if (settings.filter?.on === 'stream' && !passesFilter(settings.filter, stream, '')) return { kind: 'skip' };
  const mapped = toStreamEvent(settings, event, stream, type, data, true);
  if (mapped.kind !== 'event') return mapped;
  return { kind: 'marker', event: mapped.event, ifKnown: settings.filter?.on === 'eventType' };
}

function toStreamEvent(
  settings: EventStoreDbSettings,
  event: EsdbRecordedEvent,
  stream: string,
  type: string,
  data: JsonObject,
  marker: boolean,
): MappedEvent {
  const esdb: JsonObject = {
    stream: event.streamId,
    eventId: event.id,
    revision: event.revision.toString(),
    commit: event.position.commit.toString(),
    prepare: event.position.prepare.toString(),
    created: event.created.toISOString(),
    contentType: event.isJson ? 'application/json' : 'application/octet-stream',
    ...(marker ? { type: event.type } : {}),
  };
  const own = event.metadata;
  let metadata: JsonObject;
  if (own !== null && typeof own === 'object' && !Array.isArray(own) && !(own instanceof Uint8Array)) {
    metadata = { ...(own as JsonObject), source: settings.name, esdb };
  } else if (own instanceof Uint8Array) {
    metadata = {
      source: settings.name,
      esdb: { ...esdb, metadataBase64: Buffer.from(own).toString('base64') },
    };
  } else {
    metadata = {
      source: settings.name,
      esdb: own === undefined ? esdb : { ...esdb, metadata: own as JsonValue },
    };
  }
  try {
    const streamId = validateStreamId(settings.streamPrefix + stream);
    const [prepared] = prepareEvents(
      [{ id: event.id, type, data, metadata, eventTime: event.created }],
      NO_LIMITS,
    );
    return { kind: 'event', event: { ...prepared!, streamId } };
  } catch (error) {
    if (!isValidationError(error)) throw error;
    return rejected(settings, event, error.message);
  }
}

function rejected(settings: EventStoreDbSettings, event: EsdbRecordedEvent, reason: string): MappedEvent {
  const [prepared] = prepareEvents(
    [
      {
        id: event.id,
        type: 'esdb.rejected',
        data: {
          stream: JSON.stringify(event.streamId),
          type: JSON.stringify(event.type),
          eventId: event.id,
          revision: event.revision.toString(),
          commit: event.position.commit.toString(),
          prepare: event.position.prepare.toString(),
          error: reason,
        },
        metadata: { source: settings.name },
        eventTime: event.created,
      },
    ],
    NO_LIMITS,
  );
  return { kind: 'rejected', event: { ...prepared!, streamId: rejectedStream(settings) }, reason };
}

function wrapData(event: EsdbRecordedEvent): JsonObject {
  const data = event.data;
  if (!event.isJson || data instanceof Uint8Array) {
    return { base64: Buffer.from(data as Uint8Array).toString('base64') };
  }
  if (data !== null && typeof data === 'object' && !Array.isArray(data)) return data as JsonObject;
  // The client hands back the text of JSON data that does not parse.
  if (typeof data === 'string') {
    try {
      JSON.parse(data);
    } catch {
      return { text: data };
    }
  }
  return { value: (data ?? null) as JsonValue };
}

/** Whether a stream and type pass the configured filter (the server applied it; this re-checks widened ones). */
function passesFilter(filter: ServerFilter | null, stream: string, type: string): boolean {
  if (filter === null) return true;
  const subject = filter.on === 'stream' ? stream : type;
  if (filter.prefixes !== undefined) return filter.prefixes.some((prefix) => subject.startsWith(prefix));
  return new RegExp(filter.regex!).test(subject);
}

/**
 * The filter sent to the server: the configured one, widened so that the events that delete or
 * truncate the streams it selects come through (`$$<stream>` metadata, `$streamDeleted`
 * tombstones); without one, system events are filtered out on the server unless captured.
 */
export function serverFilter(settings: EventStoreDbSettings): ServerFilter | null {
  const filter = settings.filter;
  const lifecycleTypes = ['$metadata', '$streamDeleted', ...(settings.linkEvents ? ['$>'] : [])];
  if (filter === null) {
    if (settings.systemEvents) return null;
    return {
      on: 'eventType',
      regex: `^(?:[^$]|${lifecycleTypes
        .map(escapeRegex)
        .map((t) => `${t}$`)
        .join('|')})`,
    };
  }
  if (filter.on === 'stream') {
    if (filter.prefixes !== undefined)
      return { on: 'stream', prefixes: [...filter.prefixes, ...filter.prefixes.map((p) => `$$${p}`)] };
    return { on: 'stream', regex: `(?:${filter.regex})|^\\$\\$` };
  }
  if (filter.prefixes !== undefined)
    return { on: 'eventType', prefixes: [...filter.prefixes, ...lifecycleTypes] };
  return {
    on: 'eventType',
    regex: `(?:${filter.regex})|${lifecycleTypes.map((t) => `^${escapeRegex(t)}$`).join('|')}`,
  };
}

const escapeRegex = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
