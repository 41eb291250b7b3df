import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { captureSpec, streaming } from '../../../test/support/captureSpec.js';
import { readWholeStream, type SourceDatabase } from '../../../test/support/cdcSource.js';
import type { TestDatabase } from '../../../test/support/database.js';
import { foldWithSnapshots } from '../../../test/support/snapshotChecks.js';
import { waitFor } from '../../../test/support/waitFor.js';
import type { Pool } from '../../db/index.js';
import { createLogger } from '../../logger.js';
import {
  type Capture,
  type CdcSourceConfig,
  cancelSnapshots,
  cdcStatus,
  findSource,
  readSnapshotStatuses,
  requestSnapshots,
  startCapture,
} from './index.js';

let db: TestDatabase;
let pool: Pool;
let src: SourceDatabase;
let source: pg.Client;
const captures: Capture[] = [];

captureSpec((spec) => ({ db, pool, src, source } = spec), captures);

function sourcesOf(name: string, config: Omit<CdcSourceConfig, 'url'>) {
  return {
    [name]: { url: src.url, slot: `s_${name}_${src.tag}`, publication: `p_${name}_${src.tag}`, ...config },
  };
}

function capture(name: string, config: Omit<CdcSourceConfig, 'url'>) {
  const running = startCapture({
    sources: sourcesOf(name, config),
    pool,
    ...(process.env.CDC_DEBUG ? { logger: createLogger({ level: 'debug', format: 'pretty' }) } : {}),
  });
  captures.push(running);
  return running;
}

async function snapshotsDone(name: string, ids: number[]) {
  return waitFor(
    async () => {
      const statuses = await readSnapshotStatuses(pool, name, ids);
      return statuses.every((s) => s.state === 'done') ? statuses : undefined;
    },
    { timeoutMs: 120_000, intervalMs: 100, what: `snapshots ${ids.join(', ')} done` },
  );
}

/** Random inserts, updates and deletes on `table(id int, v text)`, one per transaction, until stopped. */
function churn(table: string, maxId: number) {
  let stop = false;
  let count = 0;
  const writer = new pg.Client({ connectionString: src.url });
  const done = (async () => {
    await writer.connect();
    while (!stop) {
      const id = 1 + Math.floor(Math.random() * maxId);
      const op = Math.random();
      if (op < 0.35) {
        await writer.query(
          `insert into ${table} values ($1, $2) on conflict (id) do update set v = excluded.v`,
          [id, `i${count}`],
        );
      } else if (op < 0.75) await writer.query(`update ${table} set v = $2 where id = $1`, [id, `u${count}`]);
      else await writer.query(`delete from ${table} where id = $1`, [id]);
      count++;
    }
    await writer.end();
  })();
  return {
    async stop() {
      stop = true;
      await done;
      return count;
    },
  };
}

async function sourceRows(table: string) {
  const { rows } = await source.query<{ id: number; v: string }>(`select id, v from ${table}`);
  return new Map(rows.map((r) => [JSON.stringify({ id: r.id }), r]));
}

/** Waits until the log holds every change of the source so far (a marker row's insert). */
async function caughtUp(stream: string, marker: number) {
  await source.query('insert into markers values ($1)', [marker]);
  await waitFor(
    async () =>
      (await readWholeStream(pool, stream)).some(
        (e) => e.type === 'public.markers.insert' && (e.data.after as { id: number }).id === marker,
      ),
    { timeoutMs: 60_000, what: `marker ${marker}` },
  );
}

describe('incremental snapshots', () => {
  it('back-fills a table added to `tables` later, by itself, while writers change it, and never lands a row after a newer change', async () => {
    await source.query(`create table first (id int primary key, v text);
      create table later (id int primary key, v text);
      create table markers (id int primary key);
      insert into first values (1, 'a');
      insert into later select i, 'r' || i from generate_series(1, 3000) i;`);
    const one = capture('added', { tables: ['public.first', 'public.markers'], snapshotChunkSize: 250 });
    await streaming(one);
    await source.query(`update later set v = 'before-added' where id <= 10`);
    await one.stop();

    const writes = churn('later', 3500);
    const two = capture('added', {
      tables: ['public.first', 'public.markers', 'public.later'],
      snapshotChunkSize: 250,
    });
    await streaming(two);
    const [requested] = await readSnapshotStatuses(pool, 'added');
    expect(requested).toMatchObject({ table: 'public.later', reason: 'added' });
    await snapshotsDone('added', [requested!.id]);
    const changes = await writes.stop();
    await caughtUp('cdc-added', 1);

    const all = await readWholeStream(pool, 'cdc-added');
    const { rows, stale } = foldWithSnapshots(all, 'public.later');
    expect(stale).toEqual([]);
    expect(rows).toEqual(await sourceRows('later'));
    const snapshotRows = all.filter((e) => e.type === 'public.later.snapshot');
    expect(snapshotRows[0]!.metadata).toMatchObject({
      source: 'added',
      snapshot: true,
      incremental: requested!.id,
    });
    expect(new Set(snapshotRows.map((e) => e.eventId)).size).toBe(snapshotRows.length);
    const [status] = await cdcStatus({ sources: sourcesOf('added', { tables: ['public.later'] }), db: pool });
    expect(status!.incrementalSnapshots).toEqual([
      expect.objectContaining({
        table: 'public.later',
        state: 'done',
        reason: 'added',
        rowsRead: expect.any(Number),
      }),
    ]);
    const [done] = status!.incrementalSnapshots;
    expect(done!.rowsWritten).toBe(snapshotRows.length);
    expect(done!.rowsRead).toBeGreaterThanOrEqual(done!.rowsWritten);
    console.log(
      `back-fill: ${done!.rowsRead} rows read in ${done!.chunks} chunks, ${done!.rowsRead - done!.rowsWritten} dropped for a newer change, ${changes} concurrent changes`,
    );
  });

  for (const watermarks of ['message', 'table'] as const) {
    it(`re-snapshots a captured table on demand under concurrent writes (watermarks: ${watermarks})`, async () => {
      const table = `again_${watermarks}`;
      await source.query(`create table ${table} (id int primary key, v text);
        insert into ${table} select i, 's' || i from generate_series(1, 2000) i;`);
      const name = `re_${watermarks}`;
      const config = { tables: [`public.${table}`, 'public.markers'], snapshotChunkSize: 200, watermarks };
      const running = capture(name, config);
      await streaming(running);
      const writes = churn(table, 2400);
      const ids = await requestSnapshots(pool, findSource(sourcesOf(name, config), name), []);
      expect(ids).toHaveLength(2);
      // Asking again while they are open gives the same snapshots.
      expect(
        await requestSnapshots(pool, findSource(sourcesOf(name, config), name), [`public.${table}`]),
      ).toEqual([ids[0]]);
      await waitFor(() => running.status()[0]!.incremental !== null, {
        what: 'the snapshot in the live status',
      });
      await snapshotsDone(name, ids);
      await writes.stop();
      await caughtUp(`cdc-${name}`, 100 + ids[0]!);

      const all = await readWholeStream(pool, `cdc-${name}`);
      const { rows, stale } = foldWithSnapshots(all, `public.${table}`, { requireKnown: true });
      expect(stale).toEqual([]);
      expect(rows).toEqual(await sourceRows(table));
      const incremental = all.filter((e) => e.type === `public.${table}.snapshot` && e.metadata.incremental);
      expect(incremental.length).toBeGreaterThan(1000);
      if (watermarks === 'table') {
        const { rows: signals } = await source.query('select * from tributary_signals');
        expect(signals).toEqual([]);
        expect(all.some((e) => e.type.startsWith('public.tributary_signals.'))).toBe(false);
      }
    });
  }

  it('is cancelled on request, refuses a table the source does not capture, and fails a table it cannot read in chunks', async () => {
    await source.query(`create table big (id int primary key, v text);
      insert into big select i, 'b' || i from generate_series(1, 20000) i;
      create table full_identity (a int, b text);
      alter table full_identity replica identity full;
      insert into full_identity values (1, 'x');`);
    const config = { tables: ['public.big', 'public.full_identity'], snapshotChunkSize: 50 };
    const running = capture('cancel', config);
    await streaming(running);
    const settings = findSource(sourcesOf('cancel', config), 'cancel');
    await expect(requestSnapshots(pool, settings, ['public.other'])).rejects.toThrow(
      /Table 'public.other' is not captured by source 'cancel'/,
    );
    const [big, keyless] = await requestSnapshots(pool, settings, []);
    await waitFor(async () => (await readSnapshotStatuses(pool, 'cancel', [big!]))[0]!.rowsRead > 0, {
      what: 'a first chunk',
    });
    expect(await cancelSnapshots(pool, 'cancel', ['public.big'])).toBe(1);
    const [failed] = await waitFor(async () => {
      const statuses = await readSnapshotStatuses(pool, 'cancel', [keyless!]);
      return statuses[0]!.state === 'failed' ? statuses : undefined;
    });
    expect(failed!.lastError).toMatch(/no primary key or replica identity index/);
    const [cancelled] = await readSnapshotStatuses(pool, 'cancel', [big!]);
    expect(cancelled!.state).toBe('cancelled');
    expect(cancelled!.rowsRead).toBeLessThan(20000);
  });
});
