import { randomUUID } from 'node:crypto';
import { type ExpectedVersion, ValidationError } from '../../errors.js';
import type { EventInput } from './types.js';

export interface LimitOptions {
  /** Largest data + metadata of one event, in bytes of JSON. @default 1_048_576 */
  maxEventBytes?: number;
  /** Most events in one append. @default 10_000 */
  maxEventsPerAppend?: number;
}

export const MAX_NAME_LENGTH = 256;
export const MAX_EVENT_ID_LENGTH = 200;
const MAX_JSON_DEPTH = 100;

/** An event checked and serialized, ready for the database. */
export interface PreparedEvent {
  id: string;
  type: string;
  data: string;
  metadata: string;
  eventTime: Date | null;
  idGiven: boolean;
}

export function validateStreamId(streamId: unknown): string {
  return validateName(streamId, 'streamId', 'stream id');
}

export function validateExpectedVersion(expected: unknown): ExpectedVersion {
  if (expected === 'any' || expected === 'no_stream' || expected === 'stream_exists') return expected;
  if (typeof expected === 'number' && Number.isSafeInteger(expected) && expected >= 0) return expected;
  throw new ValidationError(
    `expectedVersion must be 'any', 'no_stream', 'stream_exists' or a non-negative integer, got ${JSON.stringify(expected)}.`,
    { field: 'expectedVersion' },
  );
}

/** Checks and serializes every event before anything is written. */
export function prepareEvents(events: readonly EventInput[], limits: LimitOptions = {}): PreparedEvent[] {
  const maxBytes = limits.maxEventBytes ?? 1_048_576;
  const maxEvents = limits.maxEventsPerAppend ?? 10_000;
  if (!Array.isArray(events) || events.length === 0) {
    throw new ValidationError('An append needs at least one event.', { field: 'events' });
  }
  if (events.length > maxEvents) {
    throw new ValidationError(`An append holds at most ${maxEvents} events; this one has ${events.length}.`, {
      field: 'events',
      hint: 'Split it into several appends, or raise maxEventsPerAppend.',
    });
  }
  const seen = new Set<string>();
  return events.map((event, index) => {
    const at = `events[${index}]`;
    if (event === null || typeof event !== 'object') {
      throw new ValidationError(`${at} must be an object with type and data.`, { field: at });
    }
    const type = validateName(event.type, `${at}.type`, 'event type');
    const data = serializeObject(event.data, `${at}.data`, true);
    const metadata = serializeObject(event.metadata ?? {}, `${at}.metadata`, false);
    const bytes = Buffer.byteLength(data) + Buffer.byteLength(metadata);
    if (bytes > maxBytes) {
      throw new ValidationError(`${at} is ${bytes} bytes of JSON, above the limit of ${maxBytes}.`, {
        field: at,
        hint: 'Store large payloads elsewhere and reference them from the event, or raise maxEventBytes.',
      });
    }
    let id: string;
    const idGiven = event.id !== undefined;
    if (idGiven) {
      if (typeof event.id !== 'string' || event.id.length === 0 || event.id.length > MAX_EVENT_ID_LENGTH) {
        throw new ValidationError(
          `${at}.id must be a non-empty string of at most ${MAX_EVENT_ID_LENGTH} characters.`,
          {
            field: `${at}.id`,
          },
        );
      }
      if (hasForbiddenCharacters(event.id)) {
        throw new ValidationError(`${at}.id contains a NUL character or an unpaired surrogate.`, {
          field: `${at}.id`,
        });
      }
      id = event.id;
    } else {
      id = randomUUID();
    }
    if (seen.has(id)) {
      throw new ValidationError(`${at}.id '${id}' appears twice in the same append.`, { field: `${at}.id` });
    }
    seen.add(id);
    return {
      id,
      type,
      data,
      metadata,
      eventTime: parseEventTime(event.eventTime, `${at}.eventTime`),
      idGiven,
    };
  });
}

function validateName(value: unknown, field: string, what: string): string {
  if (typeof value !== 'string' || value.trim().length === 0) {
    throw new ValidationError(`${field}: the ${what} must be a non-empty string.`, { field });
  }
  if (value.length > MAX_NAME_LENGTH) {
    throw new ValidationError(
      `${field}: the ${what} is ${value.length} characters long; the limit is ${MAX_NAME_LENGTH}.`,
      {
        field,
      },
    );
  }
  if (hasForbiddenCharacters(value)) {
    throw new ValidationError(`${field}: the ${what} contains a NUL character or an unpaired surrogate.`, {
      field,
    });
  }
  return value;
}

function parseEventTime(value: Date | string | undefined, field: string): Date | null {
  if (value === undefined) return null;
  const date =
    value instanceof Date ? value : typeof value === 'string' ? new Date(value) : new Date(Number.NaN);
  if (Number.isNaN(date.getTime())) {
    throw new ValidationError(`${field} must be a Date or an ISO-8601 string.`, { field });
  }
  return date;
}

function serializeObject(value: unknown, field: string, required: boolean): string {
  if (value === undefined && required) {
    throw new ValidationError(`${field} is required and must be a JSON object.`, { field });
  }
  if (!isPlainObject(value)) {
    throw new ValidationError(`${field} must be a JSON object (not an array, null or a primitive).`, {
      field,
    });
  }
  // The fast path: a walk that builds no strings, then one scan of the serialized text.
  // Only when either finds a problem does the slow walk run, to name the offending field.
  if (!isJson(value, 0)) assertJson(value, field, 0);
  const json = JSON.stringify(value);
  if (FORBIDDEN_ESCAPE.test(json)) assertJson(value, field, 0);
  return json;
}

/**
 * In JSON.stringify's output a NUL or an unpaired surrogate always appears escaped
 * (`\u0000`, `\ud800`…); an escape preceded by an even number of backslashes is one.
 */
const FORBIDDEN_ESCAPE = /(?<!\\)(?:\\\\)*\\u(?:0000|d[89a-f][0-9a-f]{2})/i;

/** True when `value` is plain JSON that JSON.stringify keeps unchanged (strings checked separately). */
function isJson(value: unknown, depth: number): boolean {
  if (depth > MAX_JSON_DEPTH) return false;
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(value);
    case 'object': {
      if (value === null) return true;
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) if (!isJson(value[i], depth + 1)) return false;
        return true;
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) return false;
      for (const key in value) {
        if (!isJson((value as Record<string, unknown>)[key], depth + 1)) return false;
      }
      return true;
    }
    default:
      return false;
  }
}

/** Rejects what JSON.stringify would silently change or what jsonb cannot store. */
function assertJson(value: unknown, path: string, depth: number): void {
  if (depth > MAX_JSON_DEPTH) {
    throw new ValidationError(`${path} nests deeper than ${MAX_JSON_DEPTH} levels.`, { field: path });
  }
  switch (typeof value) {
    case 'string':
      if (hasForbiddenCharacters(value)) {
        throw new ValidationError(
          `${path} contains a NUL character or an unpaired surrogate, which JSON in PostgreSQL cannot store.`,
          {
            field: path,
          },
        );
      }
      return;
    case 'boolean':
      return;
    case 'number':
      if (!Number.isFinite(value)) {
        throw new ValidationError(`${path} is ${value}, which JSON cannot represent.`, { field: path });
      }
      return;
    case 'object':
      if (value === null) return;
      if (Array.isArray(value)) {
        for (const [index, item] of value.entries()) assertJson(item, `${path}[${index}]`, depth + 1);
        return;
      }
      if (!isPlainObject(value)) {
        throw new ValidationError(
          `${path} is a ${value.constructor?.name ?? 'non-plain object'}; only plain JSON values are allowed.`,
          {
            field: path,
            hint: 'Convert dates to ISO strings and class instances to plain objects before appending.',
          },
        );
      }
      for (const [key, item] of Object.entries(value)) {
        if (hasForbiddenCharacters(key)) {
          throw new ValidationError(`${path} has a key with a NUL character or an unpaired surrogate.`, {
            field: path,
          });
        }
        assertJson(item, `${path}.${key}`, depth + 1);
      }
      return;
    default:
      throw new ValidationError(`${path} is of type ${typeof value}, which is not JSON.`, { field: path });
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: NUL is exactly what is being rejected
const FORBIDDEN = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function hasForbiddenCharacters(value: string): boolean {
  return FORBIDDEN.test(value);
}
