import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.js';
import {
  assertIndexEqualsView,
  indexRows,
  itemRow,
  items,
  itemsSink,
  viewRows,
  writeItems,
} from '../../../test/support/sinks.js';
import { createViewTable } from '../../../test/support/viewTables.js';
import { waitFor } from '../../../test/support/waitFor.js';
import { createPool, type Pool, startEmbeddedPostgres } from '../../db/index.js';
import {
  createPostgresBackend,
  getSinkStatuses,
  listSinkDeadLetters,
  loadSinks,
  type ResolvedSink,
  requestSink,
  type SinkWorkers,
  startSinks,
} from './index.js';

let db: TestDatabase;
let pool: Pool;
const running: SinkWorkers[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  pool = createPool(db.url, { max: 6 });
  await createViewTable(pool, items);
});

afterEach(async () => {
  for (const workers of running.splice(0)) await workers.stop();
  await pool.query('truncate tributary_views.items');
});

afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

function run(sink: ResolvedSink, url = db.url, extra: Partial<Parameters<typeof startSinks>[0]> = {}) {
  const workers = startSinks({ url, sinks: [sink], pollIntervalMs: 50, leaseTimeoutMs: 2000, ...extra });
  running.push(workers);
  return workers;
}

let lastSeen = '';

async function converged(sink: ResolvedSink, searchPool: pg.Pool | Pool = pool) {
  const [row] = await loadSinks(pool, [sink.name]);
  lastSeen = JSON.stringify(row);
  if (!row?.index_name || row.build_index) return false;
  const state = await assertIndexEqualsView(pool, sink.alias, searchPool);
  const differing = state.view.filter((row, i) => JSON.stringify(row) !== JSON.stringify(state.index[i]));
  lastSeen = JSON.stringify({
    row,
    view: state.view.length,
    index: state.index.length,
    differing: differing.slice(0, 2),
    theirs: state.index.filter((doc) => differing.slice(0, 2).some((row) => row.id === doc.id)),
    stale: state.stale.slice(0, 3),
  });
  return JSON.stringify(state.index) === JSON.stringify(state.view) && state.stale.length === 0;
}

/** What the last check saw, for a timeout's message. */
function describeState(_sink: ResolvedSink, _searchPool?: unknown) {
  return lastSeen;
}

describe('a PostgreSQL search sink', () => {
  it('backfills the view, then follows its changelog: upserts and deletes reach the index, values canonical', async () => {
    await writeItems(
      pool,
      Array.from({ length: 120 }, (_, i) => ({
        op: 'upsert' as const,
        row: itemRow(i + 1, `item ${i + 1}`),
      })),
    );
    const sink = itemsSink('tail_sink');
    run(sink, db.url, { backfillChunk: 25 });
    await waitFor(() => converged(sink), { timeoutMs: 30_000, what: () => describeState(sink) });
    await writeItems(pool, [
      { op: 'upsert', row: itemRow(5, 'renamed five') },
      { op: 'delete', row: { id: 7 } },
      { op: 'upsert', row: itemRow(500, 'brand new') },
    ]);
    await waitFor(() => converged(sink), { timeoutMs: 30_000, what: () => describeState(sink) });
    const docs = await indexRows(pool, sink.alias);
    expect(docs.find((doc) => doc.id === 5)).toMatchObject({
      name: 'renamed five',
      price: '5.50',
      updated_at: '2026-01-02T03:04:05.123456Z',
    });
    expect(docs.some((doc) => doc.id === 7)).toBe(false);
    expect(docs).toHaveLength(120);
    const [status] = await getSinkStatuses(pool, [sink]);
    expect(status).toMatchObject({ name: 'tail_sink', state: 'running', lagChanges: 0, deadLetters: 0 });
  });

  it('rejects a write older than the stored version by the table version check, not by delivery order', async () => {
    const backend = createPostgresBackend({ url: db.url, pool });
    const sink = itemsSink('order_sink');
    const spec = { view: items, fields: sink.fields, language: 'english', fuzzy: true, mapping: undefined };
    await backend.ensureIndex('order_sink_t', spec);
    const upsert = (version: bigint, name: string) => {
      const row = itemRow(1, name);
      return {
        op: 'upsert' as const,
        id: '1',
        version,
        key: { id: 1 },
        row,
        document: { name: row.name, description: row.description },
      };
    };
    expect(await backend.write('order_sink_t', [upsert(10n, 'newer')])).toEqual({ refused: [], stale: 0 });
    // The older write arrives late (a retry, a reordered request): it changes nothing.
    expect((await backend.write('order_sink_t', [upsert(5n, 'older')])).stale).toBe(1);
    expect((await indexRows(pool, 'order_sink_t')).map((doc) => doc.name)).toEqual(['newer']);
    // A delete leaves a tombstone with its version: an older upsert cannot bring the row back.
    await backend.write('order_sink_t', [{ op: 'delete', id: '1', version: 12n, key: { id: 1 } }]);
    expect((await backend.write('order_sink_t', [upsert(11n, 'resurrected')])).stale).toBe(1);
    expect(await indexRows(pool, 'order_sink_t')).toEqual([]);
    expect(await backend.count('order_sink_t')).toBe(0);
    // A newer one does.
    await backend.write('order_sink_t', [upsert(13n, 'back again')]);
    expect((await indexRows(pool, 'order_sink_t')).map((doc) => [doc.name, doc.__version])).toEqual([
      ['back again', '13'],
    ]);
    await backend.drop('order_sink_t');
  });

  it('sets documents the backend refuses aside as dead letters with its reason, and goes on', async () => {
    const sink = itemsSink('refusing_sink', {
      transform: (row) => {
        if (row.id === 3) throw new Error('no document for 3');
        return { name: row.name, description: row.description };
      },
    });
    run(sink);
    await waitFor(async () => Boolean((await loadSinks(pool, [sink.name]))[0]?.index_name), {
      what: 'the first load',
    });
    // Over a megabyte of distinct words: more than a tsvector holds.
    const huge = Array.from({ length: 160_000 }, (_, i) => `w${i.toString(36)}x`).join(' ');
    await writeItems(pool, [
      { op: 'upsert', row: itemRow(1, 'fine one') },
      { op: 'upsert', row: itemRow(2, 'too large', huge) },
      { op: 'upsert', row: itemRow(3, 'unbuildable') },
      { op: 'upsert', row: itemRow(4, 'fine four') },
    ]);
    await writeItems(pool, [{ op: 'upsert', row: itemRow(5, 'after them') }]);
    // Past every change: the refused documents are set aside after the batch's write, before
    // the sink's checkpoint moves past it (document 5 alone may show before they are).
    await waitFor(
      async () =>
        (await indexRows(pool, sink.alias)).some((doc) => doc.id === 5) &&
        (await getSinkStatuses(pool, [sink]))[0]?.lagChanges === 0,
      { timeoutMs: 30_000, what: () => describeState(sink) },
    );
    expect((await indexRows(pool, sink.alias)).map((doc) => doc.id)).toEqual([1, 4, 5]);
    const letters = (await listSinkDeadLetters(pool, { sink: sink.name })).sort((a, b) =>
      a.documentId.localeCompare(b.documentId),
    );
    expect(letters.map((letter) => [letter.documentId, letter.op])).toEqual([
      ['2', 'upsert'],
      ['3', 'upsert'],
    ]);
    expect(letters[0]!.reason).toMatch(/too long for tsvector/);
    expect(letters[1]!.reason).toMatch(/no document for 3/);
    const [status] = await getSinkStatuses(pool, [sink]);
    expect(status).toMatchObject({ deadLetters: 2, lagChanges: 0 });
  });

  it('reindexes while writes flow: a reader never sees fewer documents than the view had, and the new index equals the view', async () => {
    await writeItems(
      pool,
      Array.from({ length: 400 }, (_, i) => ({
        op: 'upsert' as const,
        row: itemRow(i + 1, `item ${i + 1}`),
      })),
    );
    const sink = itemsSink('reindex_sink', { batchSize: 50 });
    run(sink, db.url, { backfillChunk: 40 });
    await waitFor(() => converged(sink), { timeoutMs: 30_000, what: () => describeState(sink) });
    const before = (await loadSinks(pool, [sink.name]))[0]!;
    const atStart = (await viewRows(pool)).length;
    let stop = false;
    let reads = 0;
    let fewest = Number.POSITIVE_INFINITY;
    const reader = (async () => {
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      try {
        while (!stop) {
          const { rows } = await client.query<{ n: number }>(
            `select count(*)::int as n from tributary_search.reindex_sink where not "__deleted"`,
          );
          fewest = Math.min(fewest, rows[0]!.n);
          reads++;
        }
      } finally {
        await client.end();
      }
    })();
    const writer = (async () => {
      let next = 1000;
      while (!stop) {
        // Inserts and renames only: the view never shrinks while the reindex runs.
        await writeItems(pool, [
          { op: 'upsert', row: itemRow(next, `item ${next}`) },
          { op: 'upsert', row: itemRow(1 + (next % 400), `renamed ${next}`) },
        ]);
        next++;
      }
    })();
    try {
      expect(await requestSink(pool, sink.name, 'reindex')).toBe(true);
      await waitFor(
        async () => {
          const [row] = await loadSinks(pool, [sink.name]);
          return (
            row && row.builds > before.builds && !row.build_index && row.index_name !== before.index_name
          );
        },
        { timeoutMs: 60_000, what: () => describeState(sink) },
      );
    } finally {
      stop = true;
      await Promise.all([reader, writer]);
    }
    expect(reads).toBeGreaterThan(10);
    expect(fewest).toBeGreaterThanOrEqual(atStart);
    await waitFor(() => converged(sink), { timeoutMs: 30_000, what: () => describeState(sink) });
    // The old table is gone: only the new one stays behind the alias.
    const { rows } = await pool.query<{ name: string }>(
      `select table_name as name from information_schema.tables where table_schema = 'tributary_search' and table_name like 'reindex_sink%' and table_type = 'BASE TABLE'`,
    );
    expect(rows.map((row) => row.name)).toEqual([(await loadSinks(pool, [sink.name]))[0]!.index_name]);
  });

  it('catches up after its backend (another PostgreSQL server) is stopped and started again, losing nothing', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'tributary-search-'));
    await chmod(dir, 0o755); // as root the server runs as `postgres`, which must reach it
    const options = { dataDir: path.join(dir, 'pgdata'), database: 'search', settings: { fsync: 'off' } };
    let server = await startEmbeddedPostgres(options);
    const port = server.port;
    let searchPool: pg.Pool | undefined;
    try {
      const sink = itemsSink('outage_sink', { backend: { kind: 'postgres', url: server.url } });
      const workers = run(sink, db.url, {});
      searchPool = new pg.Pool({ connectionString: server.url, max: 2 });
      searchPool.on('error', () => {});
      await writeItems(
        pool,
        Array.from({ length: 50 }, (_, i) => ({
          op: 'upsert' as const,
          row: itemRow(i + 1, `item ${i + 1}`),
        })),
      );
      await waitFor(() => converged(sink, searchPool!), {
        timeoutMs: 30_000,
        what: () => describeState(sink, searchPool!),
      });
      await searchPool.end();
      await server.stop();
      // Writes go on while the backend is away.
      for (let i = 0; i < 20; i++) {
        await writeItems(pool, [
          { op: 'upsert', row: itemRow(100 + i, `during outage ${i}`) },
          { op: 'delete', row: { id: i + 1 } },
        ]);
      }
      await waitFor(async () => (await loadSinks(pool, [sink.name]))[0]?.last_error, {
        timeoutMs: 30_000,
        what: 'the sink to notice the outage',
      });
      expect(workers.status()[0]?.state).toBe('running');
      server = await startEmbeddedPostgres({ ...options, port });
      searchPool = new pg.Pool({ connectionString: server.url, max: 2 });
      searchPool.on('error', () => {});
      await waitFor(() => converged(sink, searchPool!), {
        timeoutMs: 60_000,
        intervalMs: 200,
        what: () => describeState(sink, searchPool!),
      });
      expect(await indexRows(searchPool, sink.alias)).toHaveLength(50);
    } finally {
      for (const workers of running.splice(0)) await workers.stop();
      await searchPool?.end().catch(() => {});
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
