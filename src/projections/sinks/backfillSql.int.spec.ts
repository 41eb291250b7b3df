import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.js';
import { createViewTable } from '../../../test/support/viewTables.js';
import { waitFor } from '../../../test/support/waitFor.js';
import { createPool, type Pool, qualified } from '../../db/index.js';
import { createLogger } from '../../logger.js';
import { canonicalJson, toCanonical } from '../values.js';
import { type ColumnType, defineView } from '../view.js';
import { createPostgresBackend } from './backends/index.js';
import { openViewSnapshot } from './backfill.js';
import { documentSql, rowOp } from './documents.js';
import { listSinkDeadLetters, loadSinks, resolveSinks, type SinkConfig, startSinks } from './index.js';
import type { IndexSpec, ResolvedSink } from './types.js';

/** Every column type, with a key whose bigint is past 2^53, so the chunk boundary must be exact. */
const everything = defineView({
  name: 'everything',
  columns: {
    shard: { type: 'bigint' },
    slug: { type: 'text' },
    title: { type: 'text', nullable: false },
    count: { type: 'integer' },
    big: { type: 'bigint' },
    amount: { type: 'numeric' },
    ratio: { type: 'double' },
    flag: { type: 'boolean' },
    at: { type: 'timestamptz' },
    meta: { type: 'jsonb' },
    tags: { type: 'text[]' },
  },
  primaryKey: ['shard', 'slug'],
  search: { fields: ['title'] },
});

const ROWS: Record<string, unknown>[] = [
  {
    shard: '9223372036854775807',
    slug: 'a',
    title: 'Grüße, “quoted” \\ back\nslash',
    count: -2147483648,
    big: '-9223372036854775808',
    amount: '80.00',
    ratio: 0.1,
    flag: true,
    at: '2026-01-02T03:04:05.123456Z',
    meta: { b: 1.5, a: [1, 'x', null], nested: { deep: true, n: 1e21 } },
    tags: ['red', 'light blue', ''],
  },
  {
    shard: '9223372036854775807',
    slug: 'b',
    title: '',
    count: 0,
    big: '0',
    amount: '-0.000001',
    ratio: 1e300,
    flag: false,
    at: '0001-01-01T00:00:00.000000Z',
    meta: 'just a string',
    tags: [],
  },
  {
    shard: '9007199254740993',
    slug: 'c',
    title: 'lamps and desks',
    count: 2147483647,
    big: '9223372036854775807',
    amount: '12345678901234567890.123456789',
    ratio: 5e-324,
    flag: null,
    at: '1999-12-31T23:59:59.999999Z',
    meta: [0.30000000000000004, 'é'],
    tags: null,
  },
  {
    shard: '9007199254740992',
    slug: 'c',
    title: 'NaN and nulls',
    count: null,
    big: null,
    amount: 'NaN',
    ratio: -123456.789,
    flag: true,
    at: null,
    meta: null,
    tags: ['only'],
  },
  {
    shard: '-1',
    slug: 'z',
    title: 'infinite',
    count: 7,
    big: '42',
    amount: 'Infinity',
    ratio: 0,
    flag: false,
    at: '2026-11-30T21:14:05.010000Z',
    meta: { '10': 'integer-like key', '': 'empty key', aa: 2 },
    tags: ['a', 'b'],
  },
];

/** Every field in the document, the non-text ones in the full text too. */
const FIELDS: SinkConfig['fields'] = {
  title: { weight: 'A' },
  count: { searchable: true, weight: 'D' },
  big: { searchable: true, weight: 'D' },
  amount: { searchable: true, weight: 'C' },
  ratio: { searchable: true, weight: 'D' },
  flag: { searchable: true, weight: 'D' },
  at: { searchable: true, weight: 'D' },
  meta: { searchable: true, weight: 'B' },
  tags: { searchable: true, weight: 'B' },
};

let db: TestDatabase;
let pool: Pool;

beforeAll(async () => {
  db = await createTestDatabase();
  pool = createPool(db.url, { max: 6 });
  await createViewTable(pool, everything);
  // As the view writer stores rows: canonical values, handed to PostgreSQL as their JSON text.
  const records = ROWS.map(
    (row) =>
      `{${Object.entries(everything.columns as Record<string, { type: ColumnType }>)
        .map(
          ([name, column]) =>
            `${JSON.stringify(name)}: ${canonicalJson(column.type, toCanonical(column.type, row[name]))}`,
        )
        .join(', ')}}`,
  );
  await pool.query(
    `insert into tributary_views.everything select * from jsonb_populate_recordset(null::tributary_views.everything, $1::jsonb)`,
    [`[${records.join(',')}]`],
  );
});

afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

function sinkOf(name: string, extra: Partial<SinkConfig> = {}): ResolvedSink {
  return resolveSinks(
    { [name]: { view: 'everything', backend: { kind: 'postgres' }, fields: FIELDS, ...extra } },
    [everything],
  )[0]!;
}

/** Every stored column of a search table but the write time, as jsonb text (exact: no number goes through JavaScript). */
async function stored(table: string): Promise<string[]> {
  const { rows } = await pool.query<{ row: string }>(
    `select (to_jsonb(t) - '__updated_at')::text as row from ${qualified('tributary_search', table)} t order by shard, slug`,
  );
  return rows.map((row) => row.row);
}

describe('a backfill that builds documents in SQL', () => {
  it('writes, column type by column type, exactly what the documents built in the process hold', async () => {
    const sink = sinkOf('equal_search');
    const backend = createPostgresBackend({ url: db.url, pool, inViewDatabase: true });
    const spec: IndexSpec = {
      view: everything,
      fields: sink.fields,
      language: sink.language,
      fuzzy: sink.fuzzy,
      mapping: undefined,
    };
    await backend.ensureIndex('by_process', spec);
    await backend.ensureIndex('by_sql', spec);

    const read = await openViewSnapshot(pool, 'tributary_views', everything);
    const version = await read.version();
    for (;;) {
      const rows = await read.next(2);
      if (rows.length === 0) break;
      const ops = rows.map((row) => rowOp(sink, row, version).op);
      expect((await backend.write('by_process', ops)).refused).toEqual([]);
    }
    await read.close();

    const copy = await openViewSnapshot(pool, 'tributary_views', everything);
    const document = documentSql(sink, 'c')!;
    let chunks = 0;
    // Chunks of two: the boundaries fall between keys past 2^53 that a double cannot tell apart.
    while (
      (await copy.copyNext(2, document, version, (source) => backend.upsertFromSql!('by_sql', source))) > 0
    )
      chunks++;
    await copy.close();
    expect(chunks).toBe(3);

    const byProcess = await stored('by_process');
    const bySql = await stored('by_sql');
    expect(byProcess).toHaveLength(ROWS.length);
    expect(bySql).toEqual(byProcess);

    // And the view's own values, unchanged: numeric scale, bigint, microseconds, jsonb.
    const { rows: view } = await pool.query<{ row: string }>(
      `select to_jsonb(t)::text as row from tributary_views.everything t order by shard, slug`,
    );
    const { rows: columns } = await pool.query<{ row: string }>(
      `select (to_jsonb(t) - '__document' - '__search' - '__text' - '__version' - '__deleted' - '__updated_at')::text as row
         from tributary_search.by_sql t order by shard, slug`,
    );
    expect(columns.map((row) => row.row)).toEqual(view.map((row) => row.row));
    const { rows: docs } = await pool.query<{ amount: string; at: string; big: string }>(
      `select "__document"->>'amount' as amount, "__document"->>'at' as at, "__document"->>'big' as big
         from tributary_search.by_sql where slug = 'a'`,
    );
    expect(docs[0]).toEqual({
      amount: '80.00',
      at: '2026-01-02T03:04:05.123456Z',
      big: '-9223372036854775808',
    });
    await backend.close();
  });

  it('is what a sink without a transform does; a sink with one builds its documents in the process', async () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'info', format: 'json', write: (line) => lines.push(line) });
    const plain = sinkOf('plain_search');
    const transformed = sinkOf('transformed_search', {
      fields: ['title', 'tags'],
      transform: (row) => ({ title: String(row.title).toUpperCase(), tags: row.tags }),
    });
    const workers = startSinks({ url: db.url, sinks: [plain, transformed], pollIntervalMs: 50, logger });
    try {
      await waitFor(
        async () => {
          const rows = await loadSinks(pool, [plain.name, transformed.name]);
          return rows.length === 2 && rows.every((row) => row.index_name && !row.pending_swap);
        },
        { what: 'both first loads' },
      );
    } finally {
      await workers.stop();
    }
    const built = lines
      .map((line) => JSON.parse(line) as { msg: string; sink?: string; documents?: string })
      .filter((line) => line.msg === 'building the search index')
      .map((line) => [line.sink, line.documents]);
    expect(built.sort()).toEqual([
      ['plain_search', 'built in SQL'],
      ['transformed_search', 'built in the process'],
    ]);
    const { rows } = await pool.query<{ title: string }>(
      `select "__document"->>'title' as title from tributary_search.transformed_search order by shard, slug`,
    );
    expect(rows.map((row) => row.title)).toContain('LAMPS AND DESKS');
    expect(await stored('plain_search')).toHaveLength(ROWS.length);
  });
});

it('sends a chunk with a document the table refuses through the process: that document alone reaches the dead letters', async () => {
  // Over a megabyte of distinct words: more than a tsvector holds.
  const huge = Array.from({ length: 160_000 }, (_, i) => `w${i.toString(36)}x`).join(' ');
  await pool.query(`insert into tributary_views.everything (shard, slug, title) values (5, 'huge', $1)`, [
    huge,
  ]);
  const sink = sinkOf('refusing_search');
  const workers = startSinks({ url: db.url, sinks: [sink], pollIntervalMs: 50 });
  try {
    await waitFor(
      async () => {
        const [row] = await loadSinks(pool, [sink.name]);
        return Boolean(row?.index_name && !row.pending_swap);
      },
      { what: 'the first load' },
    );
  } finally {
    await workers.stop();
  }
  const letters = await listSinkDeadLetters(pool, { sink: sink.name });
  expect(letters.map((letter) => letter.documentId)).toEqual([JSON.stringify(['5', 'huge'])]);
  expect(letters[0]!.reason).toMatch(/too long for tsvector/);
  expect(await stored('refusing_search')).toHaveLength(ROWS.length);
});
