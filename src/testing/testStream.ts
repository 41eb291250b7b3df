import { randomBytes } from 'node:crypto';
import { createPool, migrate, type Pool, withTransaction } from '../db/index.js';
import { ValidationError } from '../errors.js';
import { type Envelope, formatPosition, type JsonObject, type JsonValue } from '../ingest/index.js';
import {
  type Duration,
  MAX_WATERMARK,
  type PaneTiming,
  resetWindowState,
  runWindowStep,
  toMillis,
  type WindowedAggregate,
  type WindowInput,
} from '../projections/windows/index.js';

/** An element of a test stream: its event time and the event it stands for. */
export interface TestElement {
  /** Event time: milliseconds since the epoch, a Date or an ISO-8601 string. */
  time: number | Date | string;
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
  /** Processing time when the stream starts. @default 0 */
  startProcessingTime?: number;
}

export interface TestStreamResult {
  panes: TestPane[];
  /** Elements dropped as too late, with the window and watermark that made them so. */
  dropped: { key: string; eventTime: number; window: { start: number; end: number }; watermark: number }[];
  watermark: number;
}

export interface TestStream {
  addElements(...elements: TestElement[]): TestStream;
  advanceWatermarkTo(time: number | Date | string): TestStream;
  advanceWatermarkToInfinity(): TestStream;
  advanceProcessingTime(duration: Duration): TestStream;
  advanceProcessingTimeTo(time: number): TestStream;
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
  let clock = options.startProcessingTime ?? 0;
  const stream: TestStream = {
    addElements(...elements) {
      steps.push({ kind: 'elements', elements });
      return stream;
    },
    advanceWatermarkTo(time) {
      steps.push({ kind: 'watermark', to: toTime(time) });
      return stream;
    },
    advanceWatermarkToInfinity() {
      steps.push({ kind: 'watermark', to: MAX_WATERMARK });
      return stream;
    },
    advanceProcessingTime(duration) {
      clock += toMillis(duration, 'advanceProcessingTime');
      steps.push({ kind: 'clock', to: clock });
      return stream;
    },
    advanceProcessingTimeTo(time) {
      if (!Number.isSafeInteger(time) || time < clock) {
        throw new ValidationError(`Processing time only moves forward: ${time} is before ${clock}.`);
      }
      clock = time;
      steps.push({ kind: 'clock', to: clock });
      return stream;
    },
    run: async () => (await execute(aggregate, steps, options)).panes,
    runDetailed: () => execute(aggregate, steps, options),
  };
  return stream;
}

async function execute(
  aggregate: WindowedAggregate,
  steps: readonly Step[],
  options: TestStreamOptions,
): Promise<TestStreamResult> {
  const connectionString =
    options.connectionString ?? process.env.TRIBUTARY_TEST_DATABASE_URL ?? process.env.DATABASE_URL;
  if (!connectionString) {
    throw new ValidationError('testStream needs a PostgreSQL database.', {
      hint: 'Pass { connectionString } or set TRIBUTARY_TEST_DATABASE_URL.',
    });
  }
  await migrate(connectionString);
  const pool = createPool(connectionString, { max: 2, applicationName: 'tributary-test-stream' });
  // A state key of its own, so that concurrent test streams on one database never meet.
  const stateKey = `${aggregate.name}#test-${randomBytes(6).toString('hex')}`;
  const manualWatermark = (options.watermark ?? 'manual') === 'manual';
  let now = options.startProcessingTime ?? 0;
  let sequence = 0;
  const result: TestStreamResult = { panes: [], dropped: [], watermark: 0 };
  try {
    for (const step of steps) {
      let inputs: WindowInput[] = [];
      if (step.kind === 'elements') {
        inputs = step.elements.map((element) => ({
          kind: 'element',
          element: aggregate.toElement(toEnvelope(element, ++sequence, now)),
        }));
      } else if (step.kind === 'watermark') {
        inputs = [{ kind: 'watermark', to: step.to }];
      } else {
        now = step.to;
      }
      const out = await withTransaction(pool, (tx) =>
        runWindowStep(tx, aggregate, inputs, { now, fireTimers: true, stateKey, manualWatermark }),
      );
      result.watermark = out.watermark;
      for (const dropped of out.dropped) {
        result.dropped.push({
          key: dropped.key,
          eventTime: dropped.eventTime,
          window: dropped.window,
          watermark: dropped.watermark,
        });
      }
    }
    result.panes = await readPanes(pool, stateKey);
    return result;
  } finally {
    await withTransaction(pool, (tx) => resetWindowState(tx, stateKey)).catch(() => {});
    await pool.end();
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
  }>(
    `select key, window_start::text, window_end::text, pane_index, timing, is_final, value, retracted,
            retracted is not null as has_retracted
       from tributary.window_panes where aggregate = $1 order by seq`,
    [stateKey],
  );
  return rows.map((row) => {
    const pane: TestPane = {
      key: row.key,
      window: { start: Number(row.window_start), end: Number(row.window_end) },
      value: row.value,
      timing: row.timing,
      index: row.pane_index,
      isFinal: row.is_final,
    };
    if (row.has_retracted) pane.retracted = row.retracted;
    return pane;
  });
}

function toTime(time: number | Date | string): number {
  const ms = time instanceof Date ? time.getTime() : typeof time === 'string' ? Date.parse(time) : time;
  if (!Number.isSafeInteger(ms)) throw new ValidationError(`${JSON.stringify(time)} is not a time.`);
  return ms;
}

function toEnvelope(element: TestElement, sequence: number, now: number): Envelope {
  const time = toTime(element.time);
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
