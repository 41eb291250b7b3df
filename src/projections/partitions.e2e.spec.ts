import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { committedHead } from '../../test/support/committedHead.js';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.js';
import {
  appendToAccounts,
  foldStreamsInSql,
  streamCountingProjection,
} from '../../test/support/partitionedCounting.js';
import { seededRandom } from '../../test/support/random.js';
import { waitFor } from '../../test/support/waitFor.js';
import { startWorkers } from './index.js';

// Invariant 1 for a partitioned projection: four processes share an 8-partition projection
// while they are SIGKILLed and started at random and writers keep appending. Every event is
// applied exactly once, and the view equals a single-process run over the same log.

const WORKER = path.join(import.meta.dirname, '..', '..', 'test', 'fixtures', 'partitionedWorker.ts');
const PROCESSES = 4;
const PARTITIONS = 8;

interface Worker {
  child: ChildProcess;
  ready: Promise<unknown>;
}

function spawnWorker(url: string, id: string): Worker {
  // The worker itself, not a wrapper: SIGKILL must hit the process that holds the leases.
  const child = spawn(process.execPath, ['--import', 'tsx', WORKER], {
    cwd: path.join(import.meta.dirname, '..', '..'),
    env: {
      ...process.env,
      DATABASE_URL: url,
      WORKER_ID: id,
      LEASE_MS: '1000',
      BATCH_SIZE: '50',
      PARTITIONS: String(PARTITIONS),
      TRIBUTARY_LOG_LEVEL: 'error',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const ready = new Promise((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('ready')) resolve(undefined);
    });
    child.once('exit', () => reject(new Error('worker exited before it was ready')));
  });
  ready.catch(() => {});
  return { child, ready };
}

const alive = (worker: Worker | undefined) =>
  worker !== undefined && worker.child.exitCode === null && worker.child.signalCode === null;

async function kill(worker: Worker) {
  if (!alive(worker)) return;
  const exited = once(worker.child, 'exit');
  worker.child.kill('SIGKILL');
  await exited;
}

let db: TestDatabase;
let pool: pg.Pool;
const slots: Array<Worker | undefined> = Array.from({ length: PROCESSES }, () => undefined);
const all: Worker[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  pool = new pg.Pool({ connectionString: db.url, max: 6 });
});
afterAll(async () => {
  await Promise.all(all.map(kill));
  await pool.end();
  await db.drop();
});

/** Every partition of `name` has applied everything committed so far. */
const partitionsCaughtUp = async (name: string) => {
  const head = await committedHead(pool);
  const { rows } = await pool.query<{ behind: number; total: number }>(
    `select count(*) filter (where position < $2)::int as behind, count(*)::int as total
     from tributary.projection_partitions where name = $1`,
    [name, head],
  );
  return rows[0]!.total === PARTITIONS && rows[0]!.behind === 0;
};

describe('a partitioned projection across processes', () => {
  it('survives SIGKILLs of four processes started and killed at random: each event applied once, the view equal to a single-process fold', async () => {
    const random = seededRandom(Number(process.env.TRIBUTARY_TEST_SEED ?? 14));
    await appendToAccounts(pool, 20_000, { streams: 300 });
    let appended = 20_000;
    let writing = true;
    // Two writers appending concurrently, so commits land out of position order.
    const writers = [0, 1].map(async (lane) => {
      // About two thousand events a second each, to a bound: the workers must overtake them.
      while (writing && appended < 100_000) {
        await appendToAccounts(pool, 200, {
          streams: 300,
          perAppend: 10,
          offset: 1_000_000 * (lane + 1) + appended,
        });
        appended += 200;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    });

    const processed = async () =>
      Number(
        (
          await pool.query(
            `select coalesce(sum(events_processed), 0)::text as n from tributary.projection_partitions where name = 'stream_counting'`,
          )
        ).rows[0]?.n ?? 0,
      );
    let kills = 0;
    let starts = 0;
    let generation = 0;
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline || kills < 12) {
      const slot = Math.floor(random() * PROCESSES);
      const worker = slots[slot];
      if (alive(worker) && slots.filter(alive).length > 1) {
        // Kill only once it has worked: otherwise a slow start is killed again and again.
        await worker!.ready;
        await kill(worker!);
        kills++;
      } else if (!alive(worker)) {
        const next = spawnWorker(db.url, `p${slot}-${generation++}`);
        slots[slot] = next;
        all.push(next);
        starts++;
        await next.ready;
      }
      // The survivors move on (or have applied everything, once the writers are done): a
      // partition stuck behind a dead process's lease would fail this.
      const before = await processed();
      await waitFor(
        async () => (await processed()) > before || (await partitionsCaughtUp('stream_counting')),
        { what: 'the partitions to make progress', timeoutMs: 60_000, intervalMs: 50 },
      );
      await new Promise((resolve) => setTimeout(resolve, 100 + random() * 900));
    }
    writing = false;
    await Promise.all(writers);
    expect(kills).toBeGreaterThanOrEqual(12);
    expect(appended).toBeGreaterThan(20_000);

    // All four alive again: the partitions spread two per process, and everything is applied.
    for (let slot = 0; slot < PROCESSES; slot++) {
      if (!alive(slots[slot])) {
        const next = spawnWorker(db.url, `p${slot}-${generation++}`);
        slots[slot] = next;
        all.push(next);
        starts++;
      }
    }
    await Promise.all(slots.map((worker) => worker!.ready));
    let state = '';
    await waitFor(
      async () => {
        const { rows } = await pool.query(
          `select partition, position, state, lease_owner, lease_expires_at > now() as valid, events_processed,
                  last_error->>'message' as error
           from tributary.projection_partitions where name = 'stream_counting' order by partition`,
        );
        state = `${JSON.stringify(rows)} head ${await committedHead(pool)}`;
        return partitionsCaughtUp('stream_counting');
      },
      {
        what: () => `every partition to catch up: ${state}`,
        timeoutMs: 120_000,
        intervalMs: 200,
      },
    );
    const owners = await waitFor(
      async () => {
        const { rows } = await pool.query<{ owner: string; n: number }>(
          `select lease_owner as owner, count(*)::int as n from tributary.projection_partitions
           where name = 'stream_counting' and lease_expires_at > now() group by 1`,
        );
        return rows.length === PROCESSES && rows.every((row) => row.n === PARTITIONS / PROCESSES)
          ? rows
          : undefined;
      },
      { what: 'two partitions per process', timeoutMs: 30_000, intervalMs: 100 },
    );
    expect(owners).toHaveLength(PROCESSES);
    await Promise.all(slots.map((worker) => kill(worker!)));

    const { rows: twice } = await pool.query(
      'select count(*)::int as n from tributary_views.applied where times <> 1',
    );
    expect(twice[0].n).toBe(0);
    const { rows: appliedCount } = await pool.query('select count(*)::int as n from tributary_views.applied');
    const { rows: counted } = await pool.query(
      `select count(*)::int as n from tributary.events where type = 'Counted'`,
    );
    expect(appliedCount[0].n).toBe(counted[0].n);
    const fold = await foldStreamsInSql(pool);
    expect(fold.actual).toEqual(fold.expected);

    // The same projection in one process, unpartitioned, over the same log.
    const single = startWorkers({
      url: db.url,
      projections: [streamCountingProjection({ name: 'stream_counting_single' })],
      viewSchema: 'single_views',
    });
    await waitFor(
      async () => {
        const head = await committedHead(pool);
        const { rowCount } = await pool.query(
          `select 1 from tributary.projections where name = 'stream_counting_single' and position >= $1`,
          [head],
        );
        return rowCount === 1;
      },
      { what: 'the single-process run', timeoutMs: 120_000, intervalMs: 200 },
    );
    await single.stop();
    const view = `select stream_id, count::text, sum::text, last_position from %s.stream_counts order by stream_id`;
    const partitioned = await pool.query(view.replace('%s', 'tributary_views'));
    const sequential = await pool.query(view.replace('%s', 'single_views'));
    expect(partitioned.rows).toEqual(sequential.rows);
    console.info(`partitions e2e: ${kills} kills, ${starts} starts, ${counted[0].n} events applied once`);
  });
});
