import { trace } from '@opentelemetry/api';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.js';
import { waitFor } from '../../test/support/waitFor.js';
import { type Api, createApi } from '../api/index.js';
import { createPool, type Pool } from '../db/index.js';
import { createPostgresEventStore } from '../ingest/index.js';
import { defineProjection, defineView, startWorkers, type Workers } from '../projections/index.js';
import { createMetrics, type Metrics, registerSinkMetrics } from './index.js';
import { tracer } from './tracing.js';

const notes = defineView({
  name: 'traced_notes',
  columns: { id: { type: 'text' }, body: { type: 'text' } },
  primaryKey: ['id'],
});
const projection = defineProjection({
  name: 'traced_notes',
  version: 1,
  views: [notes],
  filter: { types: ['NoteWritten'] },
  async handle(event, ctx) {
    await ctx.upsert(notes, { id: event.streamId, body: String(event.data.body) });
  },
});

let db: TestDatabase;
let pool: Pool;
let api: Api | undefined;
let workers: Workers | undefined;
let metrics: Metrics;
const exporter = new InMemorySpanExporter();

beforeAll(async () => {
  db = await createTestDatabase();
  pool = createPool(db.url, { max: 4 });
  metrics = createMetrics();
});

afterAll(async () => {
  await workers?.stop();
  await api?.close();
  await pool?.end();
  await db?.drop();
  trace.disable();
});

describe('OpenTelemetry traces', () => {
  it('are off by default: without an SDK, spans record nothing', () => {
    const span = tracer().startSpan('probe');
    expect(span.isRecording()).toBe(false);
    span.end();
  });

  it('with an SDK registered: a span per GraphQL operation and per projection batch', async () => {
    trace.setGlobalTracerProvider(
      new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }),
    );
    api = await createApi({
      connectionString: db.url,
      pool,
      projections: [projection],
      metrics,
      config: { auth: { open: true } },
    });
    workers = startWorkers({ url: db.url, projections: [projection], metrics });
    const store = createPostgresEventStore({ connectionString: db.url, pool });
    await store.append('note-1', [{ type: 'NoteWritten', data: { body: 'hello' } }]);
    await store.close();
    await waitFor(
      () =>
        exporter
          .getFinishedSpans()
          .find(
            (span) =>
              span.name === 'tributary.projection.batch' && span.attributes['tributary.batch.applied'] === 1,
          ),
      { what: 'a batch span', timeoutMs: 30_000 },
    );
    const response = await api.yoga.fetch('http://yoga/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: 'query Notes { tracedNotes { nodes { id body } } }' }),
    });
    const body = (await response.json()) as { errors?: unknown };
    expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
    const operation = exporter.getFinishedSpans().find((span) => span.name === 'query Notes');
    expect(operation?.attributes).toMatchObject({
      'graphql.operation.type': 'query',
      'graphql.operation.name': 'Notes',
      'tributary.outcome': 'ok',
    });
    const batch = exporter
      .getFinishedSpans()
      .find(
        (span) =>
          span.name === 'tributary.projection.batch' && span.attributes['tributary.batch.applied'] === 1,
      );
    expect(batch?.attributes).toMatchObject({
      'tributary.projection': 'traced_notes',
      'tributary.batch.committed': true,
    });
  });
});

describe('sink metrics', () => {
  it('a sink feeds its lag, documents and failures into the process metrics', async () => {
    const sink = registerSinkMetrics(metrics, { sink: 'search' });
    sink.setLag({ events: 7, seconds: 1.5 });
    sink.written(3);
    sink.failed();
    const read = registerSinkMetrics(metrics, {
      sink: 'mirror',
      lag: async () => ({ events: 2, seconds: 0 }),
    });
    let text = await metrics.render();
    expect(text).toMatch(/^tributary_sink_lag_events\{sink="search"\} 7$/m);
    expect(text).toMatch(/^tributary_sink_lag_seconds\{sink="search"\} 1\.5$/m);
    expect(text).toMatch(/^tributary_sink_documents_total\{sink="search"\} 3$/m);
    expect(text).toMatch(/^tributary_sink_failures_total\{sink="search"\} 1$/m);
    expect(text).toMatch(/^tributary_sink_lag_events\{sink="mirror"\} 2$/m);
    sink.remove();
    read.remove();
    await new Promise((resolve) => setTimeout(resolve, 1100)); // the lag is read at most once a second
    text = await metrics.render();
    expect(text).not.toMatch(/sink="search"/);
    expect(text).not.toMatch(/sink="mirror"/);
  });
});
