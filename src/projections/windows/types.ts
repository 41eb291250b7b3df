import type { JsonValue } from '../../ingest/index.js';
import type { Window } from './windows.js';

/** When a pane fired: before the watermark passed the end of its window, at that moment, or after. */
export type PaneTiming = 'EARLY' | 'ON_TIME' | 'LATE';

/**
 * What each pane holds: everything so far, only what arrived since the previous firing, or
 * everything so far together with the value of the previous pane it replaces.
 */
export type AccumulationMode = 'accumulating' | 'discarding' | 'retracting';

/**
 * What a window does when it expires with no element pending since its last pane (Beam's
 * closing behavior): nothing ('fire-if-non-empty'), or emit a final pane all the same
 * ('fire-always'), so that consumers of the panes learn that the window closed.
 */
export type ClosingBehavior = 'fire-if-non-empty' | 'fire-always';

/** One firing of a window. */
export interface Pane {
  key: string;
  window: Window;
  /** 0 for the first pane of the window, then 1, 2, ... */
  index: number;
  timing: PaneTiming;
  /** No pane of this window follows. */
  isFinal: boolean;
  value: JsonValue;
  /** Retracting mode: the value of the previous pane of this window, which this pane replaces. */
  retracted?: JsonValue;
  /** Processing time at which the pane fired, in milliseconds since the epoch. */
  firedAt: number;
  /** The input watermark when the pane fired (event time, milliseconds since the epoch). */
  watermark: number;
}

/** A change to the one-row-per-window results. */
export type ResultChange =
  | {
      op: 'upsert';
      key: string;
      window: Window;
      /** The result over every element of the window so far. */
      value: JsonValue;
      elementCount: number;
      /** Index and timing of the last pane, null before the first firing. */
      paneIndex: number | null;
      timing: PaneTiming | null;
      /** The window has expired: nothing will change it any more. */
      isFinal: boolean;
    }
  | { op: 'delete'; key: string; window: Window };

/**
 * An element that arrived after its window expired (beyond the allowed lateness), or after the
 * window's trigger finished and closed it.
 */
export interface DroppedElement {
  key: string;
  eventTime: number;
  window: Window;
  watermark: number;
  position: string | null;
  value: JsonValue;
  reason: 'expired' | 'closed';
}

/** An element as the engine sees it: already keyed and timestamped. */
export interface WindowElement {
  key: string;
  time: number;
  value: unknown;
  /** Watermark source (see WatermarkSpec.source). */
  source: string;
  position: string | null;
}

export interface EngineOutput {
  panes: Pane[];
  results: ResultChange[];
  dropped: DroppedElement[];
}
