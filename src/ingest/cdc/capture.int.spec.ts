import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { captureSpec, streaming } from '../../../test/support/captureSpec.js';
import {
  createSourceDatabase,
  foldChanges,
  randomWrite,
  readWholeStream,
  type SourceDatabase,
} from '../../../test/support/cdcSource.js';
import type { TestDatabase } from '../../../test/support/database.js';
import { waitFor } from '../../../test/support/waitFor.js';
import type { Pool } from '../../db/index.js';
import { createLogger } from '../../logger.js';
import type { Envelope } from '../log/index.js';
import { type Capture, type CdcSourceConfig, CdcSourceError, cdcStatus, startCapture } from './index.js';

let db: TestDatabase;
let pool: Pool;
let src: SourceDatabase;
let source: pg.Client;
const captures: Capture[] = [];

captureSpec((spec) => ({ db, pool, src, source } = spec), captures);

/** `ownPool`: the capture opens its own pool (application_name tributary-cdc), which a test may cut. */
function capture(name: string, config: Omit<CdcSourceConfig, 'url'>, { ownPool = false } = {}) {
  const sources = {
    [name]: { url: src.url, slot: `s_${name}_${src.tag}`, publication: `p_${name}_${src.tag}`, ...config },
  };
  const running = startCapture({
    sources,
    ...(ownPool ? { url: db.url } : { pool }),
    ...(process.env.CDC_DEBUG ? { logger: createLogger({ level: 'debug', format: 'pretty' }) } : {}),
  });
  captures.push(running);
  return { running, sources };
}

/** Once streaming, the slot is consistent: every later commit is captured. */
async function events(name: string, count: number): Promise<Envelope[]> {
  return waitFor(
    async () => {
      const all = await readWholeStream(pool, `cdc-${name}`);
      return all.length >= count ? all : undefined;
    },
    { timeoutMs: 30_000, what: `${count} events in cdc-${name}` },
  ).catch(async (error: unknown) => {
    const all = await readWholeStream(pool, `cdc-${name}`);
    throw new Error(
      `${(error as Error).message}; the stream holds: ${JSON.stringify(all.map((e) => [e.type, e.data]))}`,
    );
  });
}

describe('values', () => {
  it('converts every kind of value by type, without losing precision', async () => {
    await source.query(`create type mood as enum ('ok', 'sad');
      create domain positive as integer check (value > 0);
      create table vals (id int primary key, small smallint, big bigint, num numeric(40,10), flag boolean,
        ts timestamp(6), tstz timestamptz, doc jsonb, js json, tags text[], nums int[], bigs bigint[],
        bin bytea, d date, note text, f float8, m mood, moods mood[], p positive, u uuid)`);
    const insert = `insert into vals values ($1, 7, 9007199254740993, 12345678901234567890.0123456789, true,
        '2024-02-29 13:14:15.123456', '2024-02-29 13:14:15.654321+02', '{"a":[1,{"b":null}]}', '[1,2]',
        '{"x y","q\\"t",NULL}', '{{1,2},{3,4}}', '{9007199254740993}', '\\xdeadbeef', '2024-01-02', 'hello', 1.5,
        'sad', '{ok,sad}', 5, '7d444840-9dc0-11d1-b245-5ffdce74fad2')`;
    await source.query(insert, [1]);
    const { sources } = capture('vals', { tables: ['public.vals'] });
    await events('vals', 1);
    await source.query(insert, [2]);
    const [snapshot, inserted] = await events('vals', 2);
    const expected = {
      small: 7,
      big: '9007199254740993',
      num: '12345678901234567890.0123456789',
      flag: true,
      ts: '2024-02-29T13:14:15.123456',
      tstz: '2024-02-29T11:14:15.654321Z',
      doc: { a: [1, { b: null }] },
      js: [1, 2],
      tags: ['x y', 'q"t', null],
      nums: [
        [1, 2],
        [3, 4],
      ],
      bigs: ['9007199254740993'],
      bin: Buffer.from('deadbeef', 'hex').toString('base64'),
      d: '2024-01-02',
      note: 'hello',
      f: 1.5,
      m: 'sad',
      moods: ['ok', 'sad'],
      p: 5,
      u: '7d444840-9dc0-11d1-b245-5ffdce74fad2',
    };
    expect(snapshot!.type).toBe('public.vals.snapshot');
    expect(snapshot!.data).toEqual({
      key: { id: 1 },
      before: null,
      after: { id: 1, ...expected },
      unchanged: [],
    });
    expect(inserted!.type).toBe('public.vals.insert');
    expect(inserted!.data).toEqual({
      key: { id: 2 },
      before: null,
      after: { id: 2, ...expected },
      unchanged: [],
    });
    expect(inserted!.metadata).toMatchObject({ source: 'vals', ordinal: 0 });
    expect(Math.abs(inserted!.eventTime.getTime() - Date.now())).toBeLessThan(60_000);

    const [status] = await cdcStatus({ sources, db: pool });
    expect(status).toMatchObject({ source: 'vals', slotExists: true, snapshot: { done: true, rows: 1 } });
  });
});

describe('awkward and large values', () => {
  it('carries control characters, backslashes, formatted and \\u0000 json, and a row far above the append limit', async () => {
    await source.query('create table odd (id int primary key, note text, js json, doc jsonb)');
    const note = 'tab\there\nnew line\r\\back\\slash \\N "quoted" é 🙂 \u2028';
    const insert = 'insert into odd values ($1, $2, $3, $4)';
    await source.query(insert, [1, note, '{\n\t"a" : [1,\n 2],\t"b": "x\\ty"\n}', '{"k": "v\\\\w"}']);
    capture('odd', { tables: ['public.odd'] });
    await events('odd', 1);
    const huge = 'x'.repeat(3 * 1024 * 1024);
    await source.query(insert, [2, note, '{"nul": "a\\u0000b"}', '{}']);
    await source.query(insert, [3, huge, null, null]);
    const [snapshot, awkward, large] = await events('odd', 3);
    // The same values through the snapshot's COPY and the stream's.
    expect(snapshot!.data.after).toEqual({ id: 1, note, js: { a: [1, 2], b: 'x\ty' }, doc: { k: 'v\\w' } });
    // jsonb cannot hold \u0000: that json value arrives as its text instead of stopping the capture.
    expect(awkward!.data.after).toEqual({ id: 2, note, js: '{"nul": "a\\u0000b"}', doc: {} });
    expect((large!.data.after as { note: string }).note).toBe(huge);
  });
});

describe('TOAST', () => {
  it('lists an unchanged TOASTed column in `unchanged` and never fills it, with and without REPLICA IDENTITY FULL', async () => {
    await source.query(`create table docs (id int primary key, body text, n int);
      alter table docs alter column body set storage external;
      create table docs_full (id int primary key, body text, n int);
      alter table docs_full alter column body set storage external;
      alter table docs_full replica identity full;`);
    const { running } = capture('toast', { tables: ['public.docs', 'public.docs_full'] });
    await streaming(running);
    const body = 'x'.repeat(10_000);
    for (const table of ['docs', 'docs_full']) {
      await source.query(`insert into ${table} values (1, $1, 1)`, [body]);
      await source.query(`update ${table} set n = 2 where id = 1`);
      await source.query(`update ${table} set body = 'short', n = 3 where id = 1`);
      await source.query(`delete from ${table} where id = 1`);
    }
    const all = await events('toast', 8);
    const plain = all.filter((e) => e.type.startsWith('public.docs.'));
    const full = all.filter((e) => e.type.startsWith('public.docs_full.'));
    expect(plain.map((e) => e.type.split('.').pop())).toEqual(['insert', 'update', 'update', 'delete']);
    expect(plain[1]!.data).toEqual({
      key: { id: 1 },
      before: null,
      after: { id: 1, n: 2 },
      unchanged: ['body'],
    });
    expect(plain[2]!.data).toEqual({
      key: { id: 1 },
      before: null,
      after: { id: 1, body: 'short', n: 3 },
      unchanged: [],
    });
    expect(plain[3]!.data).toEqual({ key: { id: 1 }, before: null, after: null, unchanged: [] });
    expect(full[1]!.data).toEqual({
      key: { id: 1 },
      before: { id: 1, body, n: 1 },
      after: { id: 1, n: 2 },
      unchanged: ['body'],
    });
    expect(full[3]!.data).toEqual({
      key: { id: 1 },
      before: { id: 1, body: 'short', n: 3 },
      after: null,
      unchanged: [],
    });
  });
});

describe('keys, truncate and schema changes', () => {
  it('carries composite keys and key changes, truncates, and follows schema changes mid-stream', async () => {
    await source.query('create table lines (order_id int, line int, qty int, primary key (order_id, line))');
    const { running } = capture('shape', { tables: ['public.lines'], snapshot: 'never' });
    await streaming(running);
    await source.query('insert into lines values (1, 1, 5), (1, 2, 6)');
    await source.query('update lines set line = 3 where order_id = 1 and line = 2');
    await source.query('truncate lines');
    await source.query('alter table lines add column note text');
    await source.query("insert into lines values (2, 1, 1, 'n')");
    await source.query('alter table lines rename column qty to quantity');
    await source.query("insert into lines values (2, 2, 2, 'm')");
    await source.query('alter table lines alter column quantity type bigint');
    await source.query("insert into lines values (2, 3, 9007199254740993, 'o')");
    await source.query('alter table lines drop column note');
    await source.query('insert into lines values (2, 4, 4)');
    const all = await events('shape', 8);
    expect(all.map((e) => [e.type, e.data])).toEqual([
      [
        'public.lines.insert',
        {
          key: { order_id: 1, line: 1 },
          before: null,
          after: { order_id: 1, line: 1, qty: 5 },
          unchanged: [],
        },
      ],
      [
        'public.lines.insert',
        {
          key: { order_id: 1, line: 2 },
          before: null,
          after: { order_id: 1, line: 2, qty: 6 },
          unchanged: [],
        },
      ],
      [
        'public.lines.update',
        {
          key: { order_id: 1, line: 3 },
          before: { order_id: 1, line: 2 },
          after: { order_id: 1, line: 3, qty: 6 },
          unchanged: [],
        },
      ],
      ['public.lines.truncate', { key: null, before: null, after: null, unchanged: [] }],
      [
        'public.lines.insert',
        {
          key: { order_id: 2, line: 1 },
          before: null,
          after: { order_id: 2, line: 1, qty: 1, note: 'n' },
          unchanged: [],
        },
      ],
      [
        'public.lines.insert',
        {
          key: { order_id: 2, line: 2 },
          before: null,
          after: { order_id: 2, line: 2, quantity: 2, note: 'm' },
          unchanged: [],
        },
      ],
      [
        'public.lines.insert',
        {
          key: { order_id: 2, line: 3 },
          before: null,
          after: { order_id: 2, line: 3, quantity: '9007199254740993', note: 'o' },
          unchanged: [],
        },
      ],
      [
        'public.lines.insert',
        {
          key: { order_id: 2, line: 4 },
          before: null,
          after: { order_id: 2, line: 4, quantity: '4' },
          unchanged: [],
        },
      ],
    ]);
    // The two rows of one source transaction share its LSN, in order.
    expect(all[0]!.metadata.lsn).toBe(all[1]!.metadata.lsn);
    expect([all[0]!.metadata.ordinal, all[1]!.metadata.ordinal]).toEqual([0, 1]);
    const folded = foldChanges(all).get('public.lines')!;
    // Keys come back from jsonb, which orders object keys by length: compare parsed.
    expect([...folded.keys()].map((key) => JSON.parse(key))).toEqual(
      [1, 2, 3, 4].map((line) => ({ order_id: 2, line })),
    );
  });
});

async function sourceRows(table: string): Promise<Map<string, unknown>> {
  const { rows } = await source.query<{ id: number; v: string }>(`select id, v from ${table} order by id`);
  return new Map(rows.map((r) => [JSON.stringify({ id: r.id }), { id: r.id, v: r.v }]));
}

/** Every audit seq must appear exactly once (snapshot or stream), streamed ones in commit order. */
function checkAudit(all: readonly Envelope[], written: number) {
  const seqs = all
    .filter((e) => e.type.startsWith('public.audit.'))
    .map((e) => (e.data.after as { seq: number }).seq);
  expect(new Set(seqs).size).toBe(seqs.length);
  expect([...seqs].sort((a, b) => a - b)).toEqual(Array.from({ length: written }, (_, i) => i + 1));
  const streamed = all
    .filter((e) => e.type === 'public.audit.insert')
    .map((e) => (e.data.after as { seq: number }).seq);
  expect(streamed).toEqual([...streamed].sort((a, b) => a - b));
  // Each source transaction's events are contiguous and appear once.
  const seen = new Set<string>();
  let previous: unknown;
  for (const event of all) {
    const lsn = event.metadata.lsn as string;
    if (event.metadata.snapshot) continue;
    if (lsn !== previous) {
      expect(seen.has(lsn)).toBe(false);
      seen.add(lsn);
      previous = lsn;
    }
  }
  return streamed.length;
}

describe('validation', () => {
  it('refuses a source with a table that has no key before creating or streaming anything, and stops it without retrying', async () => {
    await source.query('create table loose (a int, b text); create table tight (id int primary key)');
    const lines: string[] = [];
    const logger = createLogger({ level: 'info', format: 'json', write: (line) => lines.push(line) });
    const sources = {
      loose: {
        url: src.url,
        slot: `s_loose_${src.tag}`,
        publication: `p_loose_${src.tag}`,
        tables: ['public.tight', 'public.loose'],
      },
    };
    const running = startCapture({ sources, pool, logger });
    captures.push(running);
    const error = await Promise.race([
      running.failure,
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error('no refusal within 30 s')), 30_000),
      ),
    ]);
    expect(error).toBeInstanceOf(CdcSourceError);
    expect(error.message).toMatch(/public\.loose has no primary key and no replica identity/);
    expect(error.hint).toMatch(/ADD PRIMARY KEY .* REPLICA IDENTITY FULL/);
    expect(running.status()[0]).toMatchObject({ state: 'failed', lastError: expect.stringMatching(/loose/) });
    // Nothing was created on the source: the table with a key is not captured without the other.
    const { rows } = await source.query<{ slots: string; publications: string }>(
      `select (select count(*) from pg_replication_slots where slot_name = $1) as slots,
              (select count(*) from pg_publication where pubname = $2) as publications`,
      [sources.loose.slot, sources.loose.publication],
    );
    expect(rows[0]).toEqual({ slots: '0', publications: '0' });
    // Not retried: a retry would come 500 ms after the failure; give it three times that.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(lines.filter((line) => line.includes('retrying'))).toEqual([]);
    expect(lines.filter((line) => line.includes('CAPTURE STOPPED'))).toHaveLength(1);
    const [status] = await cdcStatus({ sources, db: pool });
    expect(status).toMatchObject({ state: 'failed', running: false, slotExists: false });
    expect(status!.lastError).toMatch(/public\.loose has no primary key/);
    expect(status!.lastErrorAt).toBeInstanceOf(Date);
    await running.stop();
  });
});

describe('snapshot handoff', () => {
  it('under a concurrent writer, the log folds to the source table and every later transaction appears once', async () => {
    await source.query(`create table items (id int primary key, v text);
      create table audit (seq int primary key);
      insert into items select i, 's' || i from generate_series(1, 20000) i;`);
    const writer = new pg.Client({ connectionString: src.url });
    await writer.connect();
    let seq = 0;
    let stop = false;
    const writing = (async () => {
      while (!stop) await randomWrite(writer, ++seq, 25_000);
    })();
    const { running } = capture('handoff', {
      tables: ['public.items', 'public.audit'],
      snapshotChunkSize: 500,
    });
    await streaming(running);
    // Some transactions after the snapshot point, then stop writing.
    const target = seq + 200;
    await waitFor(() => seq >= target, { timeoutMs: 60_000, what: 'writes after the snapshot' });
    stop = true;
    await writing;
    await writer.end();
    const all = await waitFor(
      async () => {
        const read = await readWholeStream(pool, 'cdc-handoff');
        return read.filter((e) => e.type.startsWith('public.audit.')).length >= seq ? read : undefined;
      },
      { timeoutMs: 60_000, what: 'every audit row' },
    );
    const snapshotRows = all.filter((e) => e.type === 'public.items.snapshot').length;
    expect(snapshotRows).toBeGreaterThan(15_000);
    const streamed = checkAudit(all, seq);
    expect(streamed).toBeGreaterThanOrEqual(200);
    const folded = foldChanges(all).get('public.items')!;
    expect(folded).toEqual(await sourceRows('items'));
  });
});

describe('faults', () => {
  it('resumes from the checkpoint when the replication or the log connection drops, nothing lost or doubled', async () => {
    await source.query(
      'create table items2 (id int primary key, v text); create table audit2 (seq int primary key)',
    );
    const { running, sources } = capture(
      'faults',
      { tables: ['public.items2', 'public.audit2'] },
      { ownPool: true },
    );
    await streaming(running);
    const writer = new pg.Client({ connectionString: src.url });
    await writer.connect();
    await writer.query('set search_path to public');
    const slot = sources.faults!.slot!;
    for (let seq = 1; seq <= 300; seq++) {
      await writer.query('begin');
      await writer.query('insert into items2 values ($1, $2)', [seq, `v${seq}`]);
      await writer.query('insert into audit2 values ($1)', [seq]);
      await writer.query('commit');
      if (seq % 75 === 40) {
        // The log's database drops the capture's connections, mid-append or idle.
        await pool.query(
          "select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and application_name = 'tributary-cdc'",
        );
      }
      if (seq % 75 === 0) {
        // The network drops: the server ends our walsender.
        await writer.query(
          'select pg_terminate_backend(active_pid) from pg_replication_slots where slot_name = $1',
          [slot],
        );
      }
    }
    const all = await waitFor(
      async () => {
        const read = await readWholeStream(pool, 'cdc-faults');
        return read.length >= 600 ? read : undefined;
      },
      { timeoutMs: 60_000, what: '600 events' },
    );
    expect(all).toHaveLength(600);
    const seqs = all
      .filter((e) => e.type === 'public.audit2.insert')
      .map((e) => (e.data.after as { seq: number }).seq);
    expect(seqs).toEqual(Array.from({ length: 300 }, (_, i) => i + 1));
    await writer.end();

    // Stopped, then the slot is dropped behind Tributary's back: reported, never recreated.
    await running.stop();
    await source.query('select pg_drop_replication_slot($1)', [slot]);
    const again = startCapture({ sources, pool });
    captures.push(again);
    const failed = await waitFor(() => again.status().find((s) => s.state === 'failed'), {
      timeoutMs: 30_000,
      what: 'the capture to report the lost slot',
    });
    expect(failed.lastError).toMatch(/replication slot .* no longer exists/);
    const { rowCount } = await source.query('select 1 from pg_replication_slots where slot_name = $1', [
      slot,
    ]);
    expect(rowCount).toBe(0);
    const [status] = await waitFor(async () => {
      const statuses = await cdcStatus({ sources, db: pool });
      return statuses[0]?.lastError ? statuses : undefined;
    });
    expect(status).toMatchObject({ state: 'failed', slotExists: false });
    await again.stop();
  });

  it('writes heartbeat messages into the source WAL when asked to', async () => {
    await source.query('create table beat (id int primary key)');
    const watcher = `w_${src.tag}`;
    await source.query("select pg_create_logical_replication_slot($1, 'test_decoding')", [watcher]);
    const { running } = capture('beat', { tables: ['public.beat'], heartbeatIntervalMs: 100 });
    await streaming(running);
    await waitFor(
      async () => {
        const { rows } = await source.query<{ data: string }>(
          'select data from pg_logical_slot_peek_changes($1, null, null)',
          [watcher],
        );
        return rows.some((r) => r.data.includes('tributary_heartbeat'));
      },
      { timeoutMs: 30_000, what: 'a heartbeat message in the WAL' },
    );
    await running.stop();
    await source.query('select pg_drop_replication_slot($1)', [watcher]);
  });

  it('moves an idle slot forward while another database on the server is written to, and resumes from there', async () => {
    await source.query('create table quiet (id int primary key)');
    const { running, sources } = capture('idle', { tables: ['public.quiet'] });
    await streaming(running);
    const slot = sources.idle!.slot!;
    const other = await createSourceDatabase();
    const noisy = new pg.Client({ connectionString: other.url });
    await noisy.connect();
    await noisy.query('create table noise (id serial primary key, payload text)');
    for (let i = 0; i < 20; i++)
      await noisy.query("insert into noise (payload) select repeat('n', 200) from generate_series(1, 500)");
    const { rows } = await noisy.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn');
    const written = rows[0]!.lsn;
    await noisy.end();
    await other.drop();
    await waitFor(
      async () => {
        const { rows: slotRows } = await source.query<{ ok: boolean }>(
          'select confirmed_flush_lsn >= $2::pg_lsn as ok from pg_replication_slots where slot_name = $1',
          [slot, written],
        );
        return slotRows[0]?.ok;
      },
      { timeoutMs: 60_000, what: `slot ${slot} to be confirmed past ${written}` },
    );
    expect(await readWholeStream(pool, 'cdc-idle')).toEqual([]);
    // The slot is now ahead of the last captured transaction, by the log's own leave: a restart
    // must resume there, not take it for a slot someone else read.
    await running.stop();
    const again = startCapture({ sources, pool });
    captures.push(again);
    await streaming(again);
    await source.query('insert into quiet values (1)');
    const [inserted] = await events('idle', 1);
    expect(inserted!.type).toBe('public.quiet.insert');
    expect(again.status()[0]!.lastError).toBeNull();
    await again.stop();
  });
});

describe('several processes of one deployment', () => {
  it('starting on a fresh source while another takes the snapshot: it stands by, then takes over', async () => {
    await source.query(`create table twin (id int primary key, v text);
      insert into twin select g, 's' || g from generate_series(1, 20000) g`);
    const config = { tables: ['public.twin'], snapshotChunkSize: 100 };
    const { sources, running: first } = capture('twin', config);
    // The slot exists and the snapshot runs (the slot is idle meanwhile): a second process starts.
    await waitFor(
      async () =>
        first.status()[0]!.state === 'snapshotting' &&
        (await source.query('select 1 from pg_replication_slots where slot_name = $1', [sources.twin!.slot]))
          .rowCount === 1,
      { timeoutMs: 30_000, what: 'the snapshot under way' },
    );
    const second = startCapture({ sources, pool });
    captures.push(second);
    let failed: unknown;
    void Promise.race([first.failure, second.failure]).then((error) => {
      failed = error;
    });
    const streamingOne = async () =>
      waitFor(
        () => {
          if (failed !== undefined) throw failed;
          return [first, second].find((c) => c.status()[0]!.state === 'streaming');
        },
        { timeoutMs: 60_000, what: 'one capture streaming' },
      );
    const leader = await streamingOne();
    const follower = leader === first ? second : first;
    await source.query("insert into twin values (20001, 'after')");
    const all = await events('twin', 20001);
    expect(all.filter((e) => e.type === 'public.twin.snapshot')).toHaveLength(20000);
    expect(all[20000]!.type).toBe('public.twin.insert');
    expect(follower.status()[0]!.state).not.toBe('streaming');
    expect(failed).toBeUndefined();

    await leader.stop();
    expect(await streamingOne()).toBe(follower);
    await source.query("insert into twin values (20002, 'taken over')");
    const after = await events('twin', 20002);
    expect(after).toHaveLength(20002);
    expect(new Set(after.map((e) => e.eventId)).size).toBe(20002);
    await follower.stop();
  });
});

describe('status', () => {
  it('shows the WAL a stopped capture holds from restart_lsn beside its lag, readable, and warns past the threshold', async () => {
    await source.query('create table held (id int primary key, v text)');
    const { running, sources } = capture('held', {
      tables: ['public.held'],
      retainedWalWarningBytes: 1024 * 1024,
    });
    await streaming(running);
    // A transaction left open while others commit and are confirmed: decoding would have to
    // restart at its beginning, so the slot keeps the WAL from there (restart_lsn), far behind
    // its confirmed position.
    const open = new pg.Client({ connectionString: src.url });
    await open.connect();
    try {
      await open.query('begin');
      await open.query("insert into held values (0, 'open')");
      await source.query(
        'insert into held select g, repeat(md5(g::text), 16) from generate_series(1, 4000) g',
      );
      const { rows } = await source.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn');
      await events('held', 4000);
      await waitFor(
        async () =>
          (
            await source.query<{ ok: boolean }>(
              'select confirmed_flush_lsn >= $2::pg_lsn as ok from pg_replication_slots where slot_name = $1',
              [sources.held!.slot, rows[0]!.lsn],
            )
          ).rows[0]?.ok,
        { what: 'the slot confirmed past the inserts' },
      );
      await running.stop();
      await source.query("insert into held select g, 'later' from generate_series(5001, 5100) g");

      const [status] = await cdcStatus({ sources, db: pool });
      expect(status).toMatchObject({ state: 'stopped', running: false, slotExists: true, slotActive: false });
      expect(status!.lagBytes).toBeGreaterThan(0);
      expect(status!.retainedBytes! - status!.lagBytes!).toBeGreaterThan(1024 * 1024);
      expect(status!.lagSize).toMatch(/^\d+ (bytes|kB)$/);
      expect(status!.retainedSize).toMatch(/^\d+ (kB|MB)$/);
      expect(['reserved', 'extended']).toContain(status!.walStatus);
      if (status!.safeWalSizeBytes !== null) expect(status!.safeWalSize).toMatch(/^\d+ (kB|MB|GB)$/);
      expect(status!.warnings).toEqual([
        expect.stringMatching(
          new RegExp(
            `not running and slot '${sources.held!.slot}' holds \\d+ (kB|MB) of WAL .*threshold 1024 kB`,
          ),
        ),
      ]);
    } finally {
      await open.query('rollback').catch(() => {});
      await open.end();
    }
  });
});
