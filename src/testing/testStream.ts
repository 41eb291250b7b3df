import { randomBytes } from 'node:crypto';
import { closePool, createPool, migrate, type Pool, withTransaction } from '../db/index.js';
import { ValidationError } from '../errors.js';
import { type Envelope, formatPosition, type JsonObject, type JsonValue } from '../ingest/index.js';
import {
  type Duration,
  MAX_WATERMARK,
  MIN_WATERMARK,
  type PaneTiming,
  resetWindowState,
  runWindowStep,
  toMillis,
  type WindowedAggregate,
  type WindowInput,
} from '../projections/windows/index.js';
import { testDatabaseUrl } from './testDatabase.js';

/** A time: milliseconds since the epoch, a Date or an ISO-8601 string. */
export type TestTime = number | Date | string;

/** An element of a test stream: its event time and the event it stands for. */
export interface TestElement {
  /** Event time. */
  time: TestTime;
  data?: JsonObject;
  type?: string;
  streamId?: string;
  metadata?: JsonObject;
}

export interface TestPane {
  key: string;
  window: { start: number; end: number };
  value: JsonValue;
  timing: PaneTiming;
  index: number;
  isFinal: boolean;
  retracted?: JsonValue;
  /** Processing time at which the pane fired (milliseconds since the epoch). */
  firedAt: number;
  /** The input watermark then; null while there was none yet. */
  watermark: number | null;
}

export interface TestStreamOptions {
  /**
   * A PostgreSQL database Tributary may migrate and write its window tables in.
   * @default process.env.TRIBUTARY_TEST_DATABASE_URL ?? process.env.DATABASE_URL
   */
  connectionString?: string;
  /**
   * 'manual': only advanceWatermarkTo moves the watermark, as in a Beam TestStream;
   * 'strategy': the aggregate's own watermark strategy follows the elements (and the virtual clock).
   * @default 'manual'
   */
  watermark?: 'manual' | 'strategy';
  /** Processing time when the stream starts. @default 0 (1970-01-01T00:00:00Z) */
  startProcessingTime?: TestTime;
}

export interface TestStreamResult {
  panes: TestPane[];
  /** Elements dropped as too late, with the window and watermark that made them so. */
  dropped: {
    key: string;
    eventTime: number;
    window: { start: number; end: number };
    watermark: number;
    /** 'expired': beyond the allowed lateness; 'closed': the window's trigger had finished. */
    reason: 'expired' | 'closed';
  }[];
  watermark: number;
}

export interface TestStream {
  addElements(...elements: TestElement[]): TestStream;
  advanceWatermarkTo(time: TestTime): TestStream;
  advanceWatermarkToInfinity(): TestStream;
  /**
   * Moves the virtual clock forward by `duration`. The clock moves continuously: every timer due
   * on the way fires at its own time, in order, as it would with a real clock.
   */
  advanceProcessingTime(duration: Duration): TestStream;
  /** Moves the virtual clock forward to `time`, like advanceProcessingTime. */
  advanceProcessingTimeTo(time: TestTime): TestStream;
  /** Runs the script against PostgreSQL and returns the panes in firing order. */
  run(): Promise<TestPane[]>;
  /** Like run(), with the dropped elements and the final watermark. */
  runDetailed(): Promise<TestStreamResult>;
}

type Step =
  | { kind: 'elements'; elements: TestElement[] }
  | { kind: 'watermark'; to: number }
  | { kind: 'clock'; to: number };

/**
 * A scripted stream for a windowed aggregate: elements, watermark moves and processing-time
 * moves, in order, on a virtual clock. Each step runs the production code path (one transaction
 * that loads the window state from PostgreSQL, applies the step and writes it back), so what
 * the test sees is what a running projection would emit.
 */
export function testStream(aggregate: WindowedAggregate, options: TestStreamOptions = {}): TestStream {
  const steps: Step[] = [];
  const start = toTime(options.startProcessingTime ?? 0, 'startProcessingTime');
  let clock = start;
  const moveClock = (to: number) => {
    if (to < clock) {
      throw new ValidationError(
        `Processing time only moves forward: ${new Date(to).toISOString()} is before ${new Date(clock).toISOString()}.`,
      );
    }
    clock = to;
    steps.push({ kind: 'clock', to });
  };
  const stream: TestStream = {
    addElements(...elements) {
      for (const element of elements) toTime(element.time, 'element time');
      steps.push({ kind: 'elements', elements });
      return stream;
    },
    advanceWatermarkTo(time) {
      steps.push({ kind: 'watermark', to: toTime(time, 'watermark') });
      return stream;
    },
    advanceWatermarkToInfinity() {
      steps.push({ kind: 'watermark', to: MAX_WATERMARK });
      return stream;
    },
    advanceProcessingTime(duration) {
      moveClock(clock + toMillis(duration, 'advanceProcessingTime'));
      return stream;
    },
    advanceProcessingTimeTo(time) {
      moveClock(toTime(time, 'processing time'));
      return stream;
    },
    run: async () => (await execute(aggregate, steps, start, options)).panes,
    runDetailed: () => execute(aggregate, steps, start, options),
  };
  return stream;
}

/**
 * Panes grouped by key and window (in order of key, then window start and end), each group's
 * panes in firing order: one window's story at a glance.
 */
export function panesByWindow(
  panes: readonly TestPane[],
): { key: string; window: { start: number; end: number }; panes: TestPane[] }[] {
  const groups = new Map<
    string,
    { key: string; window: { start: number; end: number }; panes: TestPane[] }
  >();
  for (const pane of panes) {
    const id = JSON.stringify([pane.key, pane.window.start, pane.window.end]);
    let group = groups.get(id);
    if (!group) {
      group = { key: pane.key, window: pane.window, panes: [] };
      groups.set(id, group);
    }
    group.panes.push(pane);
  }
  return [...groups.values()].sort(
    (a, b) =>
      (a.key < b.key ? -1 : a.key > b.key ? 1 : 0) ||
      a.window.start - b.window.start ||
      a.window.end - b.window.end,
  );
}

async function execute(
  aggregate: WindowedAggregate,
  steps: readonly Step[],
  start: number,
  options: TestStreamOptions,
): Promise<TestStreamResult> {
  const connectionString = options.connectionString ?? testDatabaseUrl();
  if (!connectionString) {
    throw new ValidationError('testStream needs a PostgreSQL database.', {
      hint: 'Pass { connectionString }, set TRIBUTARY_TEST_DATABASE_URL (or DATABASE_URL), or start one with startTestDatabase() from tributary/testing.',
    });
  }
  await migrate(connectionString);
  const pool = createPool(connectionString, { max: 2, applicationName: 'tributary-test-stream' });
  // A state key of its own, so that concurrent test streams on one database never meet.
  const stateKey = `${aggregate.name}#test-${randomBytes(6).toString('hex')}`;
  const manualWatermark = (options.watermark ?? 'manual') === 'manual';
  let now = start;
  let sequence = 0;
  /** When the window state next needs the clock (a trigger's delay, a source going idle). */
  let nextEventAt: number | null = null;
  const result: TestStreamResult = { panes: [], dropped: [], watermark: 0 };
  const runStep = async (inputs: WindowInput[]) => {
    const out = await withTransaction(pool, (tx) =>
      runWindowStep(tx, aggregate, inputs, { now, fireTimers: true, stateKey, manualWatermark }),
    );
    result.watermark = out.watermark;
    nextEventAt = out.nextEventAt;
    for (const dropped of out.dropped) {
      result.dropped.push({
        key: dropped.key,
        eventTime: dropped.eventTime,
        window: dropped.window,
        watermark: dropped.watermark,
        reason: dropped.reason,
      });
    }
  };
  try {
    for (const step of steps) {
      if (step.kind === 'elements') {
        await runStep(
          step.elements.map((element) => ({
            kind: 'element',
            element: aggregate.toElement(toEnvelope(element, ++sequence, now)),
          })),
        );
      } else if (step.kind === 'watermark') {
        await runStep([{ kind: 'watermark', to: step.to }]);
      } else {
        // A continuously moving clock meets every timer on the way, each at its own time.
        while (nextEventAt !== null && nextEventAt > now && nextEventAt < step.to) {
          now = nextEventAt;
          await runStep([]);
        }
        now = step.to;
        await runStep([]);
      }
    }
    result.panes = await readPanes(pool, stateKey);
    return result;
  } finally {
    await withTransaction(pool, (tx) => resetWindowState(tx, stateKey)).catch(() => {});
    await closePool(pool);
  }
}

/** The panes as PostgreSQL recorded them, in firing order. */
async function readPanes(pool: Pool, stateKey: string): Promise<TestPane[]> {
  const { rows } = await pool.query<{
    key: string;
    window_start: string;
    window_end: string;
    pane_index: number;
    timing: PaneTiming;
    is_final: boolean;
    value: JsonValue;
    retracted: JsonValue;
    has_retracted: boolean;
    fired_at_ms: string;
    input_watermark: string;
  }>(
    `select key, window_start::text, window_end::text, pane_index, timing, is_final, value, retracted,
            retracted is not null as has_retracted, fired_at_ms::text, input_watermark::text
       from tributary.window_panes where aggregate = $1 order by seq`,
    [stateKey],
  );
  return rows.map((row) => {
    const watermark = Number(row.input_watermark);
    const pane: TestPane = {
      key: row.key,
      window: { start: Number(row.window_start), end: Number(row.window_end) },
      value: row.value,
      timing: row.timing,
      index: row.pane_index,
      isFinal: row.is_final,
      firedAt: Number(row.fired_at_ms),
      watermark: watermark <= MIN_WATERMARK ? null : watermark,
    };
    if (row.has_retracted) pane.retracted = row.retracted;
    return pane;
  });
}

function toTime(time: TestTime, what: string): number {
  const ms = time instanceof Date ? time.getTime() : typeof time === 'string' ? Date.parse(time) : time;
  if (!Number.isSafeInteger(ms)) {
    throw new ValidationError(`The ${what} ${JSON.stringify(time)} is not a time.`, {
      hint: 'Give milliseconds since the epoch, a Date or an ISO-8601 string.',
    });
  }
  return ms;
}

function toEnvelope(element: TestElement, sequence: number, now: number): Envelope {
  const time = toTime(element.time, 'element time');
  return {
    position: formatPosition(1n, BigInt(sequence)),
    streamId: element.streamId ?? 'test',
    streamPosition: sequence,
    eventId: `test-${sequence}`,
    type: element.type ?? 'TestElement',
    data: element.data ?? {},
    metadata: element.metadata ?? {},
    eventTime: new Date(time),
    recordedAt: new Date(now),
  };
}
