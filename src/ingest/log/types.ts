import type { ExpectedVersion } from '../../errors.js';
import type { Position } from './position.js';

export type { ExpectedVersion };

export type JsonValue = string | number | boolean | null | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

/** What an application appends. */
export interface EventInput {
  type: string;
  data: JsonObject;
  metadata?: JsonObject;
  /** Idempotency key, unique within the stream. Generated (UUID) when absent. */
  id?: string;
  /** When the event happened in the world. @default the time of the append */
  eventTime?: Date | string;
}

/** What readers and projections see. */
export interface Envelope<Data extends JsonObject = JsonObject> {
  position: Position;
  streamId: string;
  /** 1 for the first event of a stream. */
  streamPosition: number;
  eventId: string;
  type: string;
  data: Data;
  metadata: JsonObject;
  eventTime: Date;
  recordedAt: Date;
}

export interface AppendOptions {
  /** @default 'any' */
  expectedVersion?: ExpectedVersion;
}

export interface AppendResult {
  /** The stream's version after the append: pass it as the next expectedVersion. */
  nextExpectedVersion: number;
  /** Position of the last event of the append. */
  position: Position;
  /** False when every event id was already in the stream and nothing was written. */
  appended: boolean;
}

export interface ReadStreamOptions {
  /** @default 'forwards' */
  direction?: 'forwards' | 'backwards';
  /** First stream position to return (inclusive). @default 1 forwards, the last event backwards */
  fromVersion?: number;
  /** @default 1000 */
  limit?: number;
}

export interface LogFilter {
  /** Only these event types. */
  types?: readonly string[];
  /** Only types starting with one of these, e.g. `public.products.` for a captured table. */
  typePrefixes?: readonly string[];
  /** Only streams whose id starts with one of these. */
  streamPrefixes?: readonly string[];
}

export interface ReadAllOptions {
  /** @default 1000 */
  limit?: number;
  filter?: LogFilter;
}

export interface ReadAllResult {
  events: Envelope[];
  /**
   * Where to read from next. It can be past the last returned event: when the read
   * reached the visibility bound, everything before it has been seen (filtered or not).
   */
  next: Position;
  /** Committed events exist past `next` but are held back by an older, still open transaction. */
  held: boolean;
}

export interface SubscribeOptions {
  filter?: LogFilter;
  /** Events fetched per read; also the most a subscription holds in memory. @default 500 */
  batchSize?: number;
  /** Fallback poll when no notification arrives. @default 1000 */
  pollIntervalMs?: number;
  /**
   * Longest wait between reads while committed events are held back by an older open
   * transaction (whose commit may send no notification). @default 100
   */
  heldPollIntervalMs?: number;
  signal?: AbortSignal;
}

export interface Subscription extends AsyncIterable<Envelope> {
  /** The position after the last event handed to the consumer. */
  readonly position: Position;
  close(): Promise<void>;
}

export interface EventStore {
  append(streamId: string, events: readonly EventInput[], options?: AppendOptions): Promise<AppendResult>;
  readStream(streamId: string, options?: ReadStreamOptions): Promise<Envelope[]>;
  readAll(from?: Position, options?: ReadAllOptions): Promise<ReadAllResult>;
  subscribe(from?: Position, options?: SubscribeOptions): Subscription;
  /** Position of the last visible event (START when the log is empty). */
  head(): Promise<Position>;
  close(): Promise<void>;
}
