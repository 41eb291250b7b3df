import type { Envelope } from '../../ingest/index.js';
import { type Duration, toMillis } from './duration.js';

/**
 * How the watermark follows the elements. The watermark is the event time before which no
 * more elements are expected; it only moves forward.
 */
export interface WatermarkSpec {
  /** Bounded out-of-orderness: the watermark trails the largest event time seen by this much. */
  lagMs: number;
  /** A source with no element for this long (processing time) stops holding the watermark back. */
  idleTimeoutMs: number | null;
  /**
   * When every source is idle, let the watermark follow the clock (`now - idleTimeout`), for
   * event times that are wall-clock times of the source, such as CDC commit times.
   */
  followClockWhenIdle: boolean;
  /** Splits the log into sources with a watermark each (e.g. one per device); one source by default. */
  source: ((envelope: Envelope) => string) | null;
}

export const watermarks = {
  /**
   * The watermark trails the largest event time seen by `maxLag`. With `idleTimeout`, a source
   * that has been quiet that long no longer holds the watermark back, and when every source is
   * quiet the watermark catches up with the largest event time seen.
   */
  boundedOutOfOrderness(options: {
    maxLag: Duration;
    idleTimeout?: Duration;
    source?: (envelope: Envelope) => string;
  }): WatermarkSpec {
    return {
      lagMs: toMillis(options.maxLag, 'watermark.maxLag'),
      idleTimeoutMs:
        options.idleTimeout === undefined
          ? null
          : toMillis(options.idleTimeout, 'watermark.idleTimeout', { allowZero: false }),
      followClockWhenIdle: false,
      source: options.source ?? null,
    };
  },
  /**
   * For captured changes, whose event time is the source commit time: commits arrive in order,
   * so the watermark is the last commit time seen, and when the source is quiet for `idleTimeout`
   * it follows the clock, so the last windows close without waiting for the next change.
   */
  commitTime(options: { idleTimeout?: Duration } = {}): WatermarkSpec {
    return {
      lagMs: 0,
      idleTimeoutMs: toMillis(options.idleTimeout ?? '10s', 'watermark.idleTimeout', { allowZero: false }),
      followClockWhenIdle: true,
      source: null,
    };
  },
};

/** Lowest possible watermark (nothing seen yet) and the watermark at the end of time. */
export const MIN_WATERMARK = -8_640_000_000_000_000;
export const MAX_WATERMARK = 8_640_000_000_000_000;

export interface SourceState {
  /** Largest event time seen from this source. */
  maxEventTime: number;
  /** Processing time of its last element. */
  lastSeenAt: number;
}

export interface WatermarkState {
  watermark: number;
  sources: Record<string, SourceState>;
}

/**
 * The watermark the strategy allows now (not yet made monotonic). `followClock`: the reader has
 * reached the end of the log, so a quiet source may let the watermark follow the clock.
 */
export function strategyWatermark(
  spec: WatermarkSpec,
  state: WatermarkState,
  now: number,
  followClock = false,
): number {
  let active = Number.POSITIVE_INFINITY;
  let anyActive = false;
  let maxSeen = MIN_WATERMARK;
  for (const source of Object.values(state.sources)) {
    maxSeen = Math.max(maxSeen, source.maxEventTime);
    const idle = spec.idleTimeoutMs !== null && now - source.lastSeenAt >= spec.idleTimeoutMs;
    if (idle) continue;
    anyActive = true;
    active = Math.min(active, source.maxEventTime - spec.lagMs);
  }
  if (anyActive) return active;
  // Every source is idle (or none has been seen): nothing older is expected.
  return spec.followClockWhenIdle && followClock
    ? Math.max(maxSeen, now - (spec.idleTimeoutMs ?? 0))
    : maxSeen;
}

/** Processing time at which a source that is active now becomes idle, if any. */
export function nextSourceIdleAt(spec: WatermarkSpec, state: WatermarkState, now: number): number | null {
  if (spec.idleTimeoutMs === null) return null;
  let next: number | null = null;
  for (const source of Object.values(state.sources)) {
    const at = source.lastSeenAt + spec.idleTimeoutMs;
    if (at > now && (next === null || at < next)) next = at;
  }
  return next;
}

/**
 * Processing time at which an idle timeout may next move the watermark, if any: a source
 * becoming idle, or, for a watermark that follows the clock while every source is idle, the
 * next look at the clock.
 */
export function nextIdleDeadline(spec: WatermarkSpec, state: WatermarkState, now: number): number | null {
  const next = nextSourceIdleAt(spec, state, now);
  if (next === null && spec.followClockWhenIdle && spec.idleTimeoutMs !== null)
    return now + Math.max(1000, Math.floor(spec.idleTimeoutMs / 10));
  return next;
}
