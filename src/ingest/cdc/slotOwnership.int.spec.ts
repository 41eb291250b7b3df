import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { streaming } from '../../../test/support/captureSpec.js';
import {
  createSourceDatabase,
  foldChanges,
  readWholeStream,
  type SourceDatabase,
} from '../../../test/support/cdcSource.js';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.js';
import { waitFor } from '../../../test/support/waitFor.js';
import { createPool, type Pool } from '../../db/index.js';
import { createLogger } from '../../logger.js';
import type { Envelope } from '../log/index.js';
import {
  type Capture,
  type CdcSourceConfig,
  cdcStatus,
  dropSource,
  SlotMismatchError,
  startCapture,
} from './index.js';
import { createSlotCommand } from './slotOwnership.js';

// Two Tributary deployments, each with its own log database, capturing one source database.
let logA: TestDatabase;
let logB: TestDatabase;
let poolA: Pool;
let poolB: Pool;
let src: SourceDatabase;
let source: pg.Client;
const captures: Capture[] = [];

beforeAll(async () => {
  [logA, logB] = await Promise.all([createTestDatabase(), createTestDatabase()]);
  poolA = createPool(logA.url);
  poolB = createPool(logB.url);
  src = await createSourceDatabase();
  source = new pg.Client({ connectionString: src.url });
  await source.connect();
});

afterAll(async () => {
  for (const capture of captures) await capture.stop();
  await source.end();
  await poolA.end();
  await poolB.end();
  await src.drop();
  await logA.drop();
  await logB.drop();
});

function capture(pool: Pool, name: string, config: Omit<CdcSourceConfig, 'url'>) {
  const sources = { [name]: { url: src.url, ...config } };
  const running = startCapture({
    sources,
    pool,
    ...(process.env.CDC_DEBUG ? { logger: createLogger({ level: 'debug', format: 'pretty' }) } : {}),
  });
  captures.push(running);
  return { running, sources };
}

async function failure(running: Capture) {
  return Promise.race([
    running.failure,
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error('the capture did not stop within 30 s')), 30_000),
    ),
  ]);
}

/** Source transactions `from`..`to`, each an upsert into `<table>` and a row `seq` in `<table>_audit`. */
async function write(table: string, from: number, to: number) {
  for (let seq = from; seq <= to; seq++) {
    await source.query('begin');
    await source.query(`insert into ${table} values ($1, $2) on conflict (id) do update set v = excluded.v`, [
      seq % 37,
      `v${seq}`,
    ]);
    await source.query(`insert into ${table}_audit values ($1)`, [seq]);
    await source.query('commit');
  }
}

/** The audit seqs in a log, once the log holds `count` of them. */
async function auditSeqs(pool: Pool, stream: string, table: string, count: number): Promise<Envelope[]> {
  return waitFor(
    async () => {
      const all = await readWholeStream(pool, stream);
      return all.filter((e) => e.type.startsWith(`public.${table}_audit.`)).length >= count ? all : undefined;
    },
    { timeoutMs: 30_000, what: `${count} audit rows in ${stream}` },
  );
}

/** Every seq 1..count exactly once, the streamed ones in commit order. */
function expectEachOnce(all: readonly Envelope[], table: string, count: number) {
  const audit = all.filter((e) => e.type.startsWith(`public.${table}_audit.`));
  const seqs = audit.map((e) => (e.data.after as { seq: number }).seq);
  expect([...seqs].sort((a, b) => a - b)).toEqual(Array.from({ length: count }, (_, i) => i + 1));
  const streamed = audit
    .filter((e) => !e.metadata.snapshot)
    .map((e) => (e.data.after as { seq: number }).seq);
  expect(streamed).toEqual([...streamed].sort((a, b) => a - b));
}

async function slotPosition(slot: string): Promise<string | undefined> {
  const { rows } = await source.query<{ lsn: string }>(
    'select confirmed_flush_lsn::text as lsn from pg_replication_slots where slot_name = $1',
    [slot],
  );
  return rows[0]?.lsn;
}

async function createTables(table: string) {
  await source.query(
    `create table ${table} (id int primary key, v text); create table ${table}_audit (seq int primary key)`,
  );
}

describe('two deployments capturing one source', () => {
  it('use a slot each by default: one taking its snapshot while the other is stopped loses nothing of the other', async () => {
    await createTables('shared');
    const config = { tables: ['public.shared', 'public.shared_audit'] };
    await write('shared', 1, 20);
    const a = capture(poolA, 'shop', config);
    await streaming(a.running);
    await write('shared', 21, 60);
    await auditSeqs(poolA, 'cdc-shop', 'shared', 60);
    const slotA = a.running.status()[0]!.slot!;
    await a.running.stop();

    // A is stopped; the source goes on; B starts from scratch and takes its snapshot.
    await write('shared', 61, 400);
    const b = capture(poolB, 'shop', config);
    await streaming(b.running);
    const slotB = b.running.status()[0]!.slot!;
    expect(slotB).not.toBe(slotA);
    expect(slotA).toMatch(/^tributary_shop_[0-9a-f]{10}$/);
    expect(await slotPosition(slotA)).toBeDefined();

    const again = capture(poolA, 'shop', config);
    const all = await auditSeqs(poolA, 'cdc-shop', 'shared', 400);
    expectEachOnce(all, 'shared', 400);
    const fromB = await auditSeqs(poolB, 'cdc-shop', 'shared', 400);
    expectEachOnce(fromB, 'shared', 400);
    await again.running.stop();
    await b.running.stop();
  });

  it('forced onto the same slot name: the second refuses the first one slot, and a replaced slot stops the first with a clear error', async () => {
    await createTables('forced');
    const config = {
      tables: ['public.forced', 'public.forced_audit'],
      slot: `same_${src.tag}`,
      publication: `same_${src.tag}`,
    };
    const slot = config.slot;
    const a = capture(poolA, 'mart', config);
    await streaming(a.running);
    await write('forced', 1, 50);
    await auditSeqs(poolA, 'cdc-mart', 'forced', 50);
    await a.running.stop();
    await write('forced', 51, 300);
    const before = await slotPosition(slot);

    // B finds a slot of its name that it did not create: it leaves it alone and stops.
    const b = capture(poolB, 'mart', config);
    const refusal = await failure(b.running);
    expect(refusal).toBeInstanceOf(SlotMismatchError);
    expect(refusal.message).toMatch(/already exists on the source, and this log did not create it/);
    expect(refusal.hint).toContain(`pg_drop_replication_slot('${slot}')`);
    await b.running.stop();
    expect(await slotPosition(slot)).toBe(before);
    expect(await readWholeStream(poolB, 'cdc-mart')).toEqual([]);

    // A resumes on its own slot: the transactions written while it was stopped, once each.
    const a2 = capture(poolA, 'mart', config);
    expectEachOnce(await auditSeqs(poolA, 'cdc-mart', 'forced', 300), 'forced', 300);
    await a2.running.stop();

    // The slot is replaced behind A's back, as the earlier B did: dropped, and a new one of the
    // same name made and read by B.
    await write('forced', 301, 350);
    await source.query('select pg_drop_replication_slot($1)', [slot]);
    const b2 = capture(poolB, 'mart', config);
    await streaming(b2.running);
    await write('forced', 351, 360);
    await auditSeqs(poolB, 'cdc-mart', 'forced', 360);
    await b2.running.stop();

    // A must not resume on it: 301..350 were never in its slot.
    const a3 = capture(poolA, 'mart', config);
    const stop = await failure(a3.running);
    expect(stop).toBeInstanceOf(SlotMismatchError);
    expect(stop.message).toMatch(/has been read past this log's checkpoint/);
    expect(stop.hint).toContain('tributary cdc drop mart --yes');
    await a3.running.stop();
    const logA = await readWholeStream(poolA, 'cdc-mart');
    expectEachOnce(logA, 'forced', 300);
    const [status] = await cdcStatus({ sources: a3.sources, db: poolA });
    expect(status).toMatchObject({ state: 'failed', running: false });
    expect(status!.lastError).toMatch(/read past this log's checkpoint/);

    // What the hint says: a slot of its own (the default), then `cdc drop` and a new snapshot.
    const own = { tables: config.tables };
    const dropped = await dropSource({
      sources: { mart: { url: src.url, ...own } },
      source: 'mart',
      db: poolA,
    });
    expect(dropped).toMatchObject({ slot, slotDropped: false, publicationDropped: false });
    expect(dropped.slotKept).toMatch(/read past/);
    expect(await slotPosition(slot)).toBeDefined(); // B's slot is B's
    const a4 = capture(poolA, 'mart', own);
    await streaming(a4.running);
    expect(a4.running.status()[0]!.slot).not.toBe(slot);
    const all = await readWholeStream(poolA, 'cdc-mart');
    const { rows } = await source.query<{ id: number; v: string }>('select id, v from forced');
    expect(foldChanges(all).get('public.forced')).toEqual(
      new Map(rows.map((r) => [JSON.stringify({ id: r.id }), r])),
    );
    expect(foldChanges(all).get('public.forced_audit')?.size).toBe(360);
    await a4.running.stop();
  });
});

describe('upgrade', () => {
  it('keeps capturing through the slot a checkpoint of an earlier version names, under the earlier default name', async () => {
    await createTables('legacy');
    const name = `old_${src.tag}`;
    const earlierDefault = `tributary_${name}`;
    const tables = ['public.legacy', 'public.legacy_audit'];
    const a = capture(poolA, name, { tables, slot: earlierDefault, publication: earlierDefault });
    await streaming(a.running);
    await write('legacy', 1, 30);
    await auditSeqs(poolA, `cdc-${name}`, 'legacy', 30);
    await a.running.stop();
    // What the log of an earlier version holds after migrating: a checkpoint, nothing more.
    await poolA.query('delete from tributary.cdc_slots where source = $1', [name]);
    await poolA.query('update tributary.cdc_checkpoints set confirmed_lsn = null where source = $1', [name]);
    await write('legacy', 31, 80);

    const upgraded = capture(poolA, name, { tables });
    await streaming(upgraded.running);
    expect(upgraded.running.status()[0]!.slot).toBe(earlierDefault);
    expectEachOnce(await auditSeqs(poolA, `cdc-${name}`, 'legacy', 80), 'legacy', 80);
    const { rows } = await source.query<{ n: string }>(
      'select count(*) as n from pg_replication_slots where slot_name like $1',
      [`tributary_${name}%`],
    );
    expect(Number(rows[0]!.n)).toBe(1); // no new slot, no new snapshot
    const { rows: recorded } = await poolA.query<{ slot_name: string; confirmed: string | null }>(
      `select s.slot_name, c.confirmed_lsn::text as confirmed
         from tributary.cdc_slots s join tributary.cdc_checkpoints c using (source) where source = $1`,
      [name],
    );
    expect(recorded[0]).toMatchObject({ slot_name: earlierDefault, confirmed: expect.any(String) });
    await upgraded.running.stop();
  });
});

describe('source versions', () => {
  it('accepts the slot creation command of its version, and the older form that 13 and 14 need', async () => {
    const { rows } = await source.query<{ v: number }>(
      "select current_setting('server_version_num')::int as v",
    );
    const version = rows[0]!.v;
    const replication = new pg.Client({
      connectionString: src.url,
      replication: 'database',
    } as pg.ClientConfig);
    await replication.connect();
    try {
      for (const [at, form] of [
        [version, 'own'],
        [140000, 'pre-15'],
      ] as const) {
        for (const snapshot of ['export', 'nothing'] as const) {
          const slot = `form_${form.replace('-', '')}_${snapshot}_${src.tag}`;
          const created = await replication.query<{ consistent_point: string; snapshot_name: string | null }>(
            createSlotCommand(at, slot, snapshot),
          );
          expect(created.rows[0]!.consistent_point).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
          expect(created.rows[0]!.snapshot_name === null).toBe(snapshot === 'nothing');
          // A slot with an exported snapshot stays held by its session until the next command.
          await replication.query(`DROP_REPLICATION_SLOT ${slot}`);
        }
      }
    } finally {
      await replication.end();
    }
  });
});
