import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import { migrate, quoteIdentifier } from '../db/index.js';
import { ConfigError } from '../errors.js';
import { type Envelope, formatPosition, type JsonObject, type LogFilter } from '../ingest/index.js';
import {
  type AnyView,
  canonicalSelectList,
  type Projection,
  ProjectionHandlerError,
  type Row,
} from '../projections/index.js';
import {
  type ApplyResult,
  applyEnvelopes,
  applyTimer,
  clearCache,
  createViewTables,
  createViewWriter,
  type FailureMemory,
  type RowCache,
  runSqlBatch,
} from '../projections/internal.js';

/** An event as a test states it; everything but the type has a default. */
export interface GivenEvent {
  type: string;
  data?: JsonObject;
  /** @default 'test-stream' */
  streamId?: string;
  metadata?: JsonObject;
  /** @default a fixed time, one second apart per event */
  eventTime?: Date | string;
  id?: string;
}

/**
 * A captured row change as the log holds it: type `<schema>.<table>.<op>`, data
 * `{ key, before, after, unchanged }`.
 */
export function cdcChange(
  table: string,
  op: 'insert' | 'update' | 'delete' | 'truncate' | 'snapshot',
  change: { key?: JsonObject; before?: JsonObject | null; after?: JsonObject | null; unchanged?: string[] },
): GivenEvent {
  return {
    type: `${table}.${op}`,
    streamId: table,
    data: {
      key: change.key ?? {},
      before: change.before ?? null,
      after: change.after ?? null,
      unchanged: change.unchanged ?? [],
    },
  };
}

export interface WhenOptions {
  /** A PostgreSQL with Tributary's migrations (applied if missing). @default TRIBUTARY_TEST_DATABASE_URL or DATABASE_URL */
  url?: string;
  /**
   * The processing time the run sees (`tx.now`, and `onTimer` runs whose time has come by then).
   * @default one second after the last given event was recorded
   */
  now?: Date | string;
  /** Envelopes per batch, as the runner's `batchSize`. @default 1000 */
  batchSize?: number;
}

export interface When {
  /** Asserts the view's rows, in primary-key order; each row is compared on the columns its expected row names. */
  then(view: AnyView | string, expected: readonly Row[]): Promise<void>;
  /** The view's rows in primary-key order, for your own assertions. */
  rows(view: AnyView | string): Promise<Row[]>;
}

export interface Given {
  /** Runs `projection` over the given events, from an empty view, in a transaction that is rolled back. */
  when(projection: Projection, options?: WhenOptions): When;
}

/**
 * Given these events, when the projection runs, then these rows: a projection test
 * against a real PostgreSQL. Each run builds the views in a throwaway schema inside a
 * transaction that is rolled back, so tests share a database without interfering.
 *
 * ```ts
 * await given([{ type: 'Deposited', data: { account: 'a1', amount: 5 } }])
 *   .when(balances)
 *   .then(balancesView, [{ account: 'a1', balance: '5' }]);
 * ```
 */
export function given(events: readonly GivenEvent[]): Given {
  return {
    when(projection, options = {}) {
      let result: Promise<Map<string, Row[]>> | undefined;
      const run = () => {
        result ??= runProjection(projection, events, options);
        return result;
      };
      const rowsOf = async (view: AnyView | string) => {
        const name = typeof view === 'string' ? view : view.name;
        const rows = (await run()).get(name);
        if (!rows)
          throw new assert.AssertionError({
            message: `Projection '${projection.name}' has no view '${name}'.`,
          });
        return rows;
      };
      return {
        rows: rowsOf,
        // biome-ignore lint/suspicious/noThenProperty: given/when/then is the kit's vocabulary; awaiting `when(...)` itself is caught below
        async then(view, expected) {
          if (typeof view === 'function') {
            const error = new TypeError(
              'Do not await when(...) itself: call .then(view, rows) or .rows(view).',
            );
            (expected as unknown as (reason: unknown) => void)(error);
            return;
          }
          const actual = await rowsOf(view);
          // Each row is compared on the columns its expected row names; extra rows show in full.
          const pick = (row: Row, columns: string[]) =>
            Object.fromEntries(columns.map((c) => [c, comparable(row[c])]));
          assert.deepStrictEqual(
            actual.map((row, i) => pick(row, Object.keys(expected[i] ?? row))),
            expected.map((row) => pick(row, Object.keys(row))),
            `Rows of view '${typeof view === 'string' ? view : view.name}' differ from the expected ones.`,
          );
        },
      };
    },
  };
}

/** Values as they compare: dates by instant, numbers and numeric strings alike. */
function comparable(value: unknown): unknown {
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  if (value === undefined) return null;
  return value;
}

const migrated = new Map<string, Promise<unknown>>();

async function runProjection(
  projection: Projection,
  events: readonly GivenEvent[],
  options: WhenOptions,
): Promise<Map<string, Row[]>> {
  const url = options.url ?? process.env.TRIBUTARY_TEST_DATABASE_URL ?? process.env.DATABASE_URL;
  if (!url) {
    throw new ConfigError('given(...).when(...) needs a PostgreSQL to run against.', {
      hint: 'Pass { url } to when(), set TRIBUTARY_TEST_DATABASE_URL (or DATABASE_URL), or start one with startTestDatabase() from tributary/testing.',
    });
  }
  let migration = migrated.get(url);
  if (!migration) {
    migration = migrate(url);
    migrated.set(url, migration);
  }
  await migration;
  const envelopes = toEnvelopes(events).filter((envelope) => matches(projection.filter, envelope));
  const client = new pg.Client({ connectionString: url, application_name: 'tributary-testing' });
  client.on('error', () => {});
  await client.connect();
  try {
    await client.query('begin');
    const schema = `tributary_test_${randomBytes(6).toString('hex')}`;
    await createViewTables(client, projection.views, schema);
    await runAsTheRunnerWould(client, projection, envelopes, {
      schema,
      now: options.now ? new Date(options.now) : new Date(EVENTS_START + events.length * 1000),
      batchSize: options.batchSize ?? 1000,
    });
    const result = new Map<string, Row[]>();
    for (const view of projection.views) {
      const { rows } = await client.query<Row>(
        `select ${canonicalSelectList(view.columns)} from ${quoteIdentifier(schema)}.${quoteIdentifier(view.name)} order by ${view.primaryKey.map(quoteIdentifier).join(', ')}`,
      );
      result.set(view.name, rows);
    }
    return result;
  } finally {
    await client.query('rollback').catch(() => {});
    await client.end().catch(() => {});
  }
}

/**
 * A SQL projection's run: the given envelopes go into a temporary table with the log's
 * columns, and the runner's statement reads its batches from there. A failing statement
 * fails the run with PostgreSQL's error.
 */
async function runSqlAsTheRunnerWould(
  client: pg.Client,
  projection: Projection,
  envelopes: readonly Envelope[],
  options: { schema: string; batchSize: number },
): Promise<void> {
  const step = projection.sql!;
  const name = typeof step.view === 'string' ? step.view : step.view.name;
  const view = projection.views.find((candidate) => candidate.name === name)!;
  const source = 'pg_temp.tributary_given_events';
  await client.query(
    `create temp table tributary_given_events (
       transaction_id xid8, global_position bigint, stream_id text, stream_position bigint, event_id text,
       type text, data jsonb, metadata jsonb, event_time timestamptz, recorded_at timestamptz,
       primary key (transaction_id, global_position)) on commit drop`,
  );
  await client.query(
    `insert into ${source} (transaction_id, global_position, stream_id, stream_position, event_id, type, data, metadata, event_time, recorded_at)
     select '1'::xid8, e.global_position, e.stream_id, e.stream_position, e.event_id, e.type, e.data, e.metadata, e.event_time, e.recorded_at
     from jsonb_to_recordset($1::jsonb) as e(global_position bigint, stream_id text, stream_position bigint, event_id text, type text, data jsonb, metadata jsonb, event_time timestamptz, recorded_at timestamptz)`,
    [
      JSON.stringify(
        envelopes.map((envelope, i) => ({
          global_position: i + 1,
          stream_id: envelope.streamId,
          stream_position: envelope.streamPosition,
          event_id: envelope.eventId,
          type: envelope.type,
          data: envelope.data,
          metadata: envelope.metadata,
          event_time: envelope.eventTime.toISOString(),
          recorded_at: envelope.recordedAt.toISOString(),
        })),
      ),
    ],
  );
  let from = formatPosition(0n, 0n);
  for (;;) {
    const batch = await runSqlBatch(
      client as never,
      step,
      view,
      options.schema,
      undefined,
      from,
      options.batchSize,
      source,
    );
    if (batch.read === 0) return;
    from = batch.next;
  }
}

/** When the given events are recorded: from here, one second apart. */
const EVENTS_START = Date.UTC(2024, 0, 1);

/**
 * The runner's loop, inside the test's transaction: `onTimer` first and whenever its time
 * has come, batches of envelopes through `applyEnvelopes` (the one way the runner, replay
 * and dead-letter retries call handlers), with the projection's retry and failure
 * policies. A batch the runner would roll back and retry is rolled back to a savepoint and
 * retried; the stop policy ends the run with the handler's error.
 */
async function runAsTheRunnerWould(
  client: pg.Client,
  projection: Projection,
  envelopes: readonly Envelope[],
  options: { schema: string; now: Date; batchSize: number },
): Promise<void> {
  if (projection.sql) return runSqlAsTheRunnerWould(client, projection, envelopes, options);
  const { now } = options;
  const cache: RowCache = new Map();
  const failures: FailureMemory = new Map();
  const maxAttempts = projection.retry?.maxAttempts ?? 3;
  let from = formatPosition(0n, 0n);
  let next = 0;
  let isolateUntil = -1;
  let timer: Date | undefined = projection.onTimer ? now : undefined;
  for (let steps = 0; ; steps++) {
    if (steps > 100_000)
      throw new Error(`Projection '${projection.name}' did not settle within 100,000 steps.`);
    const timerDue = projection.onTimer && timer && now >= timer;
    if (!timerDue && next >= envelopes.length) return;
    const batch = timerDue
      ? []
      : envelopes.slice(next, next + (next <= isolateUntil ? 1 : options.batchSize));
    await client.query('savepoint batch');
    const writer = createViewWriter({
      client,
      projection: projection.name,
      views: projection.views,
      schema: options.schema,
      cache,
      // As under the runner: a partitioned projection's keyed state is refused.
      ...((projection.partitions ?? 1) > 1 ? { partitioned: true } : {}),
    });
    let result: ApplyResult;
    if (timerDue) {
      const at = await applyTimer(projection, { client, writer, now, from });
      result = { position: from, applied: 0, deadLettered: 0, ...(at ? { timer: at } : {}) };
      timer = undefined;
    } else {
      result = await applyEnvelopes(batch, {
        projection,
        client,
        writer,
        failures,
        from,
        now,
        readNext: batch.at(-1)!.position,
      });
    }
    let abandoned = result.rollback === true;
    if (!abandoned) {
      try {
        await writer.flush();
      } catch (error) {
        // A batch whose writes break a view's constraint: retried, then one envelope at a time.
        if (timerDue) throw error;
        const attempts = (failures.get(batch[0]!.position)?.attempts ?? 0) + 1;
        failures.set(batch[0]!.position, { attempts, error });
        if (attempts >= maxAttempts && batch.length > 1) {
          failures.delete(batch[0]!.position);
          isolateUntil = next + batch.length - 1;
        }
        abandoned = true;
      }
    } else if (
      projection.handleBatch &&
      batch.length > 1 &&
      (failures.get(batch[0]!.position)?.attempts ?? 0) >= maxAttempts
    ) {
      failures.delete(batch[0]!.position);
      isolateUntil = next + batch.length - 1;
    }
    if (abandoned) {
      await client.query('rollback to savepoint batch');
      clearCache(cache);
      continue;
    }
    await client.query('release savepoint batch');
    if (result.timer && (!timer || result.timer < timer)) timer = result.timer;
    if (result.halt) {
      const { envelope, error } = result.halt;
      throw new ProjectionHandlerError(projection.name, envelope.position, envelope.type, error);
    }
    const done = batch.findIndex((envelope) => envelope.position > result.position);
    next += done === -1 ? batch.length : done;
    from = result.position;
  }
}

function toEnvelopes(events: readonly GivenEvent[]): Envelope[] {
  const versions = new Map<string, number>();
  const base = EVENTS_START;
  return events.map((event, index) => {
    const streamId = event.streamId ?? 'test-stream';
    const streamPosition = (versions.get(streamId) ?? 0) + 1;
    versions.set(streamId, streamPosition);
    const time = new Date(base + index * 1000);
    return {
      position: formatPosition(1n, BigInt(index + 1)),
      streamId,
      streamPosition,
      eventId: event.id ?? randomUUID(),
      type: event.type,
      data: event.data ?? {},
      metadata: event.metadata ?? {},
      eventTime: event.eventTime ? new Date(event.eventTime) : time,
      recordedAt: time,
    };
  });
}

/** The log's filter rule, in memory: any type rule matches, and the stream prefix must match. */
function matches(filter: LogFilter | undefined, envelope: Envelope): boolean {
  if (!filter) return true;
  const typeRules = (filter.types?.length ?? 0) + (filter.typePrefixes?.length ?? 0);
  if (
    typeRules > 0 &&
    !(filter.types ?? []).includes(envelope.type) &&
    !(filter.typePrefixes ?? []).some((prefix) => envelope.type.startsWith(prefix))
  ) {
    return false;
  }
  if (filter.streamPrefixes?.length && !filter.streamPrefixes.some((p) => envelope.streamId.startsWith(p))) {
    return false;
  }
  return true;
}
