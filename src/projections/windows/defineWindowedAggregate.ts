import { assertIdentifier, type Queryable } from '../../db/index.js';
import { ValidationError } from '../../errors.js';
import { type Envelope, type LogFilter, readAll, START } from '../../ingest/index.js';
import { defineView, type ViewDefinition } from '../view.js';
import type { Aggregate } from './aggregates.js';
import { type Duration, toMillis } from './duration.js';
import type { EngineConfig } from './engine.js';
import { runWindowStep, type WindowStepResult } from './runWindowStep.js';
import { normalizeTrigger, type TriggerSpec } from './triggers.js';
import type { AccumulationMode, ClosingBehavior, WindowElement } from './types.js';
import { type WatermarkSpec, watermarks } from './watermarks.js';
import { resetWindowState } from './windowStore.js';
import { GLOBAL_WINDOW, type WindowSpec } from './windows.js';

export interface WindowedAggregateOptions {
  /** Lower-case identifier of at most 48 characters; names the views `<name>_panes` and `<name>_results`. */
  name: string;
  /** Bump it when the definition changes: the aggregate is then rebuilt from the start of the log. @default 1 */
  version?: number;
  /** Which events of the log feed the aggregate. @default every event */
  filter?: LogFilter;
  /** The grouping key of an event. */
  key: (envelope: Envelope) => string | number;
  /** The value handed to the aggregate. @default envelope.data */
  value?: (envelope: Envelope) => unknown;
  /** The event time. @default envelope.eventTime (for captured changes: the source commit time) */
  eventTime?: (envelope: Envelope) => Date | number | string;
  window: WindowSpec;
  /** @default watermarks.boundedOutOfOrderness({ maxLag: 0 }) */
  watermark?: WatermarkSpec;
  /** How long after the end of a window late elements still update it. @default 0 */
  allowedLateness?: Duration;
  /** @default triggers.default(): ON_TIME, then a LATE pane per late element */
  trigger?: TriggerSpec;
  /** @default 'accumulating' */
  accumulation?: AccumulationMode;
  /**
   * What a window that expires with nothing pending does: nothing ('fire-if-non-empty'), or fire a
   * final pane all the same ('fire-always'), a marker that tells pane consumers the window closed.
   * @default 'fire-if-non-empty'
   */
  closingBehavior?: ClosingBehavior;
  aggregate: Aggregate;
  description?: string;
  /**
   * What happens to an event whose key, event time or value is bad (the aggregate throws):
   * stop the aggregate, or set the event aside in the dead letters and go on. @default 'stop'
   */
  onError?: 'stop' | 'dead-letter';
  /** Attempts before `onError` applies. @default the runner's (3 attempts, 200 ms doubling) */
  retry?: { maxAttempts?: number; initialDelayMs?: number; maxDelayMs?: number };
}

export const panesViewColumns = {
  key: { type: 'text', nullable: false },
  window_start: { type: 'timestamptz', nullable: false },
  window_end: { type: 'timestamptz', nullable: false },
  pane_index: { type: 'integer', nullable: false },
  timing: { type: 'text', nullable: false, description: 'EARLY, ON_TIME or LATE' },
  is_final: { type: 'boolean', nullable: false, description: 'No pane of this window follows.' },
  value: { type: 'jsonb' },
  retracted: { type: 'jsonb', description: 'Retracting mode: the value of the pane this one replaces.' },
  fired_at: { type: 'timestamptz', nullable: false, description: 'Processing time at which the pane fired.' },
  watermark: {
    type: 'timestamptz',
    description: 'The input watermark when the pane fired; null before the first one.',
  },
} as const;

export const resultsViewColumns = {
  key: { type: 'text', nullable: false },
  window_start: { type: 'timestamptz', nullable: false },
  window_end: { type: 'timestamptz', nullable: false },
  value: { type: 'jsonb', description: 'The result over every element of the window so far.' },
  element_count: { type: 'bigint', nullable: false },
  pane_index: { type: 'integer', description: 'Index of the last pane fired.' },
  timing: { type: 'text', description: 'Timing of the last pane fired.' },
  is_final: { type: 'boolean', nullable: false, description: 'The window has expired.' },
} as const;

export const lateViewColumns = {
  position: { type: 'text', nullable: false, description: 'Log position of the dropped event.' },
  window_start: { type: 'timestamptz', nullable: false },
  window_end: { type: 'timestamptz', nullable: false },
  key: { type: 'text', nullable: false },
  event_time: { type: 'timestamptz', nullable: false },
  watermark: { type: 'timestamptz', description: 'The watermark when the event arrived.' },
  value: { type: 'jsonb' },
  reason: {
    type: 'text',
    nullable: false,
    description: "'expired': after the window's allowed lateness; 'closed': after its trigger finished.",
  },
} as const;

export type PanesView = ViewDefinition<typeof panesViewColumns>;
export type ResultsView = ViewDefinition<typeof resultsViewColumns>;
export type LateView = ViewDefinition<typeof lateViewColumns>;

/**
 * The part of the projection runner's batch transaction a windowed aggregate uses: the
 * transaction's client for its own state tables, the view writes, and the runner's clock.
 */
export interface WindowTransaction {
  readonly client: Queryable;
  readonly views: {
    upsert(view: string, row: Record<string, unknown>): Promise<void>;
    delete(view: string, key: Record<string, unknown>): Promise<boolean>;
    /** True while `tributary replay` re-delivers events. */
    readonly replaying?: boolean;
  };
  readonly now: Date;
  /** The checkpoint the transaction starts from. */
  readonly position: string;
  scheduleTimer(at: Date): void;
}

/**
 * A windowed aggregate is a projection: give it to the runner with the other projections.
 * Its window state, timers and panes commit in the runner's batch transaction, with the checkpoint.
 */
export interface WindowedAggregate {
  readonly kind: 'windowed-aggregate';
  readonly name: string;
  readonly version: number;
  readonly filter: LogFilter | undefined;
  readonly onError: 'stop' | 'dead-letter' | undefined;
  readonly retry: WindowedAggregateOptions['retry'];
  /** A replay leaves the windows alone (their state already holds the events), so it is safe. */
  readonly replay: 'idempotent';
  readonly config: EngineConfig & { watermark: WatermarkSpec };
  /** `<name>_panes`, `<name>_results` and `<name>_late` (elements dropped as too late). */
  readonly views: readonly [PanesView, ResultsView, LateView];
  readonly panesView: PanesView;
  readonly resultsView: ResultsView;
  readonly lateView: LateView;
  /** Rows of the window state tables belong to this key (name and version). */
  readonly stateKey: string;
  /** Keys, timestamps and values an envelope; throws a ValidationError for a bad event time or key. */
  toElement(envelope: Envelope): WindowElement;
  handleBatch(envelopes: readonly Envelope[], tx: WindowTransaction): Promise<void>;
  onTimer(now: Date, tx: WindowTransaction): Promise<Date | undefined>;
}

/** Declares an event-time windowed aggregate over the log. */
export function defineWindowedAggregate(options: WindowedAggregateOptions): WindowedAggregate {
  assertIdentifier(options.name, 'windowed aggregate name');
  if (options.name.length > 48) {
    throw new ValidationError(`Windowed aggregate name '${options.name}' is longer than 48 characters.`, {
      hint: 'Its views are named <name>_panes and <name>_results, which must stay within 63 characters.',
    });
  }
  const version = options.version ?? 1;
  if (!Number.isSafeInteger(version) || version < 1) {
    throw new ValidationError(`version must be a positive integer, got ${version}.`, { field: 'version' });
  }
  const accumulation = options.accumulation ?? 'accumulating';
  if (!['accumulating', 'discarding', 'retracting'].includes(accumulation)) {
    throw new ValidationError(`Unknown accumulation mode '${accumulation}'.`, {
      hint: "Use 'accumulating', 'discarding' or 'retracting'.",
    });
  }
  if (typeof options.key !== 'function') throw new ValidationError('key must be a function of the envelope.');
  const aggregate = options.aggregate;
  for (const method of ['init', 'add', 'merge', 'result'] as const) {
    if (typeof aggregate?.[method] !== 'function') {
      throw new ValidationError(`The aggregate needs a ${method} function.`, {
        hint: 'Use aggregates.count(), sum(), min(), max(), avg(), or defineAggregate({ init, add, merge, result }).',
      });
    }
  }
  const closingBehavior = options.closingBehavior ?? 'fire-if-non-empty';
  if (!['fire-if-non-empty', 'fire-always'].includes(closingBehavior)) {
    throw new ValidationError(`Unknown closing behavior '${closingBehavior}'.`, {
      hint: "Use 'fire-if-non-empty' or 'fire-always'.",
    });
  }
  const watermark = options.watermark ?? watermarks.boundedOutOfOrderness({ maxLag: 0 });
  const keyOf = options.key;
  const extractValue = options.value ?? ((envelope: Envelope) => envelope.data);
  const timeOf = options.eventTime ?? ((envelope: Envelope) => envelope.eventTime);
  const sourceOf = watermark.source;
  const panesView = defineView({
    name: `${options.name}_panes`,
    columns: panesViewColumns,
    primaryKey: ['key', 'window_start', 'window_end', 'pane_index'],
    description: `Every pane fired by the windowed aggregate ${options.name}.`,
  });
  const resultsView = defineView({
    name: `${options.name}_results`,
    columns: resultsViewColumns,
    primaryKey: ['key', 'window_start', 'window_end'],
    description: options.description ?? `Current result per key and window of ${options.name}.`,
  });
  const lateView = defineView({
    name: `${options.name}_late`,
    columns: lateViewColumns,
    primaryKey: ['position', 'window_start', 'window_end'],
    description: `Events ${options.name} dropped because they arrived after their window expired.`,
  });
  const stateKey = `${options.name}#${version}`;

  const step = async (
    tx: WindowTransaction,
    envelopes: readonly Envelope[],
  ): Promise<WindowStepResult | null> => {
    // A replay re-delivers events the state already holds: applying them again would count them twice.
    if (tx.views.replaying) return null;
    if (tx.position === START) await startFromScratch(tx.client, options.name, version, stateKey);
    const inputs = envelopes.map((envelope) => ({
      kind: 'element' as const,
      element: windowed.toElement(envelope),
    }));
    // A commit-time watermark follows the clock only once nothing more waits in the log.
    const caughtUp = watermark.followClockWhenIdle
      ? (
          await readAll(tx.client, envelopes.at(-1)?.position ?? tx.position, {
            limit: 1,
            filter: options.filter,
          })
        ).events.length === 0
      : true;
    const out = await runWindowStep(tx.client, windowed, inputs, {
      now: tx.now.getTime(),
      fireTimers: true,
      stateKey,
      caughtUp,
    });
    await writeViews(tx, windowed, out);
    return out;
  };

  const windowed: WindowedAggregate = {
    kind: 'windowed-aggregate',
    name: options.name,
    version,
    filter: options.filter,
    onError: options.onError,
    retry: options.retry,
    replay: 'idempotent',
    config: {
      window: options.window,
      allowedLatenessMs: toMillis(options.allowedLateness ?? 0, 'allowedLateness'),
      trigger: normalizeTrigger(options.trigger),
      accumulation,
      closing: closingBehavior,
      aggregate,
      watermark,
    },
    views: [panesView, resultsView, lateView],
    panesView,
    resultsView,
    lateView,
    stateKey,
    toElement(envelope) {
      const time = toEventTime(timeOf(envelope), envelope);
      const key = keyOf(envelope);
      if ((typeof key !== 'string' && typeof key !== 'number') || key === '') {
        throw new ValidationError(
          `The key of event ${envelope.eventId} at ${envelope.position} is ${JSON.stringify(key)}; keys are non-empty strings or numbers.`,
          { field: 'key' },
        );
      }
      return {
        key: String(key),
        time,
        value: extractValue(envelope),
        source: sourceOf ? sourceOf(envelope) : '',
        position: envelope.position,
      };
    },
    async handleBatch(envelopes, tx) {
      const out = await step(tx, envelopes);
      if (out?.nextWakeAt != null) tx.scheduleTimer(new Date(out.nextWakeAt));
    },
    async onTimer(_now, tx) {
      const out = await step(tx, []);
      return out?.nextWakeAt == null ? undefined : new Date(out.nextWakeAt);
    },
  };
  return windowed;
}

/**
 * The projection starts from the beginning of the log (first run, in-place rebuild, or a shadow
 * rebuild of a new version): state left under this name and version belongs to an earlier run.
 * A shadow rebuild of the version that is live would share its state, so it is refused.
 */
async function startFromScratch(db: Queryable, name: string, version: number, stateKey: string) {
  const { rows } = await db.query(
    'select 1 from tributary.projections where name = $1 and version = $2 and position > $3',
    [name, version, START],
  );
  if (rows.length > 0) {
    throw new ValidationError(
      `Windowed aggregate '${name}' version ${version} is live; a rebuild of the same version would share its window state.`,
      { hint: 'Bump its version and rebuild: the new version builds its own state and swaps in.' },
    );
  }
  await resetWindowState(db, stateKey);
}

/** Writes the step's panes, results and dropped elements to the views, in firing order. */
async function writeViews(tx: WindowTransaction, aggregate: WindowedAggregate, out: WindowStepResult) {
  for (const pane of out.panes) {
    await tx.views.upsert(aggregate.panesView.name, {
      key: pane.key,
      window_start: new Date(pane.window.start),
      window_end: new Date(pane.window.end),
      pane_index: pane.index,
      timing: pane.timing,
      is_final: pane.isFinal,
      value: pane.value,
      retracted: pane.retracted ?? null,
      fired_at: new Date(pane.firedAt),
      watermark: watermarkTime(pane.watermark),
    });
  }
  for (const change of out.results) {
    const key = {
      key: change.key,
      window_start: new Date(change.window.start),
      window_end: new Date(change.window.end),
    };
    if (change.op === 'delete') {
      await tx.views.delete(aggregate.resultsView.name, key);
      continue;
    }
    await tx.views.upsert(aggregate.resultsView.name, {
      ...key,
      value: change.value,
      element_count: String(change.elementCount),
      pane_index: change.paneIndex,
      timing: change.timing,
      is_final: change.isFinal,
    });
  }
  for (const dropped of out.dropped) {
    await tx.views.upsert(aggregate.lateView.name, {
      position: dropped.position ?? '',
      window_start: new Date(dropped.window.start),
      window_end: new Date(dropped.window.end),
      key: dropped.key,
      event_time: new Date(dropped.eventTime),
      watermark: watermarkTime(dropped.watermark),
      value: dropped.value,
      reason: dropped.reason,
    });
  }
}

/** A watermark as a view holds it: null before any (year 1), the end of time as the end of year 9999. */
function watermarkTime(ms: number): Date | null {
  if (ms < GLOBAL_WINDOW.start) return null;
  return new Date(Math.min(ms, GLOBAL_WINDOW.end));
}

function toEventTime(value: Date | number | string, envelope: Envelope): number {
  const ms = value instanceof Date ? value.getTime() : typeof value === 'string' ? Date.parse(value) : value;
  if (typeof ms !== 'number' || !Number.isSafeInteger(ms)) {
    throw new ValidationError(
      `The event time of event ${envelope.eventId} at ${envelope.position} is ${JSON.stringify(value)}, not a time.`,
      { field: 'eventTime', hint: 'Return a Date, an ISO-8601 string or milliseconds since the epoch.' },
    );
  }
  return ms;
}
