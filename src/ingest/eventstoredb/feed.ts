import type { EsdbPosition, EventStoreDbFilter } from './types.js';

/**
 * An event as the capture needs it from `$all`: the shape `@eventstore/db-client` reads,
 * mirrored so that the capture and its tests do not depend on the driver.
 */
export interface EsdbRecordedEvent {
  streamId: string;
  id: string;
  revision: bigint;
  type: string;
  created: Date;
  isJson: boolean;
  /** Parsed JSON (or the text when it does not parse) for JSON events, bytes otherwise. */
  data: unknown;
  /** Parsed JSON, bytes when it does not parse, undefined when empty. */
  metadata: unknown;
  position: EsdbPosition;
}

/** A subscription to `$all`, read one item at a time. */
export interface EsdbSubscription {
  /**
   * The next event, waiting at most `waitMs` (null when none came by then). Throws when the
   * subscription failed (the server went away, access was denied…).
   */
  next(waitMs: number): Promise<EsdbRecordedEvent | null>;
  /** Whether the server said the subscription has read everything it had (live). */
  readonly caughtUp: boolean;
  close(): Promise<void>;
}

/**
 * The part of an EventStoreDB server the capture talks to. `clientFeed.ts` implements it with
 * `@eventstore/db-client`; tests of the capture's own logic give it a feed of their own.
 */
export interface EsdbFeed {
  /** The position of the last event of `$all`, or null when it is empty. */
  head(): Promise<EsdbPosition | null>;
  /** The first event at or after `position`, unfiltered. */
  eventAt(position: EsdbPosition): Promise<EsdbRecordedEvent | undefined>;
  /** Events after `from` (exclusive), or from the beginning, through the server-side filter. */
  subscribe(from: EsdbPosition | 'start', filter: ServerFilter | null): EsdbSubscription;
  close(): Promise<void>;
}

/** The filter sent to the server: the configured one, widened to let stream deletions through. */
export type ServerFilter = EventStoreDbFilter;

export const compareEsdbPositions = (a: EsdbPosition, b: EsdbPosition): number =>
  a.commit !== b.commit
    ? a.commit < b.commit
      ? -1
      : 1
    : a.prepare < b.prepare
      ? -1
      : a.prepare > b.prepare
        ? 1
        : 0;
