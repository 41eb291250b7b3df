import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { kill9, runCapture, runCli, writeSourcesConfig } from '../../../test/support/captureProcess.js';
import { captureSpec } from '../../../test/support/captureSpec.js';
import { readWholeStream, type SourceDatabase, sourceBinDir } from '../../../test/support/cdcSource.js';
import type { TestDatabase } from '../../../test/support/database.js';
import { foldWithSnapshots } from '../../../test/support/snapshotChecks.js';
import { waitFor } from '../../../test/support/waitFor.js';
import type { Pool } from '../../db/index.js';

let db: TestDatabase;
let pool: Pool;
let src: SourceDatabase;
let dir: string;

captureSpec((spec) => ({ db, pool, src, dir } = spec));

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const otherVersion = sourceBinDir() !== undefined;
const ROWS = otherVersion ? 15_000 : 30_000;
const KILLS = otherVersion ? 3 : 5;

describe('an incremental snapshot under SIGKILL', () => {
  it(`re-snapshots a table under inserts, updates and deletes across ${KILLS} SIGKILLs: the log folds to the table, and no snapshot row lands after a newer change`, async () => {
    const setup = new pg.Client({ connectionString: src.url });
    await setup.connect();
    await setup.query(`create table items (id int primary key, v text);
      create table markers (id int primary key);
      insert into items select i, 's' || i from generate_series(1, ${ROWS}) i;`);
    await setup.end();
    const config = await writeSourcesConfig(dir, 'isnap', {
      isnap: {
        url: src.url,
        tables: ['public.items', 'public.markers'],
        slot: `s_isnap_${src.tag}`,
        publication: `p_isnap_${src.tag}`,
        snapshotChunkSize: 500,
      },
    });
    const first = runCapture(config, db.url);
    await first.seen(['streaming changes']);

    // Two writers on the same keys as the snapshot, one change per transaction.
    let stop = false;
    let changes = 0;
    const touched = new Set<number>();
    const writer = async () => {
      const client = new pg.Client({ connectionString: src.url });
      await client.connect();
      while (!stop) {
        const id = 1 + Math.floor(Math.random() * (ROWS + 2000));
        touched.add(id);
        const op = Math.random();
        if (op < 0.3) {
          await client.query(
            'insert into items values ($1, $2) on conflict (id) do update set v = excluded.v',
            [id, `i${changes}`],
          );
        } else if (op < 0.75)
          await client.query('update items set v = $2 where id = $1', [id, `u${changes}`]);
        else await client.query('delete from items where id = $1', [id]);
        changes++;
        await delay(1);
      }
      await client.end();
    };
    const writing = Promise.all([writer(), writer()]);

    const requested = await runCli(config, db.url, ['cdc', 'snapshot', 'isnap', 'public.items', '--no-wait']);
    expect(requested.code).toBe(0);
    expect(requested.stdout).toMatch(/incremental snapshot of public\.items \(#(\d+)\) requested/);
    const id = Number(/#(\d+)/.exec(requested.stdout)![1]);
    const rowsRead = async () =>
      Number(
        (
          await pool.query<{ n: string }>(
            'select rows_read as n from tributary.cdc_snapshots where id = $1',
            [id],
          )
        ).rows[0]!.n,
      );

    // Each kill lands at a random moment of a chunk's cycle (read, stream, commit, progress):
    // the time between two chunks is measured first.
    const nextChunk = async () => {
      const before = await rowsRead();
      await waitFor(async () => (await rowsRead()) > before, {
        timeoutMs: 60_000,
        intervalMs: 5,
        what: 'a chunk',
      });
    };
    let capture = first;
    let killedDuring = 0;
    for (let round = 0; round < KILLS; round++) {
      await nextChunk();
      const started = Date.now();
      await nextChunk();
      await delay(Math.floor(Math.random() * (Date.now() - started)));
      await kill9(capture);
      if ((await rowsRead()) < ROWS) killedDuring++;
      capture = runCapture(config, db.url);
      await capture.seen(['streaming changes']);
    }
    expect(killedDuring).toBeGreaterThanOrEqual(KILLS - 1);

    // Following it to the end through the CLI: a progress bar, then the outcome.
    const followed = await runCli(config, db.url, ['cdc', 'snapshot', 'isnap', 'public.items']);
    expect(followed.code).toBe(0);
    expect(followed.stdout).toMatch(
      new RegExp(`public\\.items #${id} {2}done at .*: \\d+ rows read, \\d+ appended`),
    );
    stop = true;
    await writing;
    const setupMarker = new pg.Client({ connectionString: src.url });
    await setupMarker.connect();
    await setupMarker.query('insert into markers values (1)');
    const all = await waitFor(
      async () => {
        const events = await readWholeStream(pool, 'cdc-isnap');
        return events.some((e) => e.type === 'public.markers.insert') ? events : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 500, what: 'the marker' },
    );
    const status = await runCli(config, db.url, ['cdc', 'status']);
    capture.process.kill('SIGTERM');
    await capture.exited;

    const { rows, stale } = foldWithSnapshots(all, 'public.items', { requireKnown: true });
    expect(stale).toEqual([]);
    const { rows: table } = await setupMarker.query<{ id: number; v: string }>('select id, v from items');
    await setupMarker.end();
    expect(rows).toEqual(new Map(table.map((r) => [JSON.stringify({ id: r.id }), r])));
    // Each row of the snapshot once: its chunks were committed with their progress.
    const incremental = all.filter((e) => e.metadata.incremental === id);
    const keys = incremental.map((e) => JSON.stringify(e.data.key));
    expect(new Set(keys).size).toBe(keys.length);
    expect(new Set(incremental.map((e) => e.eventId)).size).toBe(incremental.length);
    // None lost either: every row no writer touched was read and appended.
    const snapshotted = new Set(incremental.map((e) => (e.data.key as { id: number }).id));
    const missing = table.filter((r) => !touched.has(r.id) && !snapshotted.has(r.id));
    expect(missing).toEqual([]);
    const sortedIds = incremental.map((e) => (e.data.key as { id: number }).id);
    expect(sortedIds).toEqual([...sortedIds].sort((a, b) => a - b));
    expect(status.stdout).toMatch(
      new RegExp(`incremental {3}public\\.items #${id} done \\(requested\\): \\d+ rows read`),
    );
    console.log(
      `incremental snapshot kill test: ${KILLS} kills (${killedDuring} during the snapshot), ${incremental.length} snapshot rows appended, ${changes} concurrent changes`,
    );
  });
});
