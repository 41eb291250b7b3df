import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getProjectionStatuses, startWorkers } from '../src/projections/index.js';
import { committedHead } from './support/committedHead.js';
import { appendCounted, countingProjection, foldInSql } from './support/counting.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { waitFor } from './support/waitFor.js';

const WORKER = path.join(import.meta.dirname, 'fixtures', 'countingWorker.ts');

interface Worker {
  child: ChildProcess;
  ready: Promise<unknown>;
}

function spawnWorker(url: string, env: Record<string, string> = {}): Worker {
  // The worker itself, not a wrapper: SIGKILL must hit the process that holds the lease.
  const child = spawn(process.execPath, ['--import', 'tsx', WORKER], {
    cwd: path.join(import.meta.dirname, '..'),
    env: { ...process.env, DATABASE_URL: url, TRIBUTARY_LOG_LEVEL: 'warn', ...env },
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

async function kill(worker: Worker) {
  if (worker.child.exitCode !== null || worker.child.signalCode !== null) return;
  const exited = once(worker.child, 'exit');
  worker.child.kill('SIGKILL');
  await exited;
}

let db: TestDatabase;
let pool: pg.Pool;
const live: Worker[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  pool = new pg.Pool({ connectionString: db.url, max: 6 });
});
afterAll(async () => {
  await Promise.all(live.map(kill));
  await pool.end();
  await db.drop();
});

const caughtUp = async (name: string) => {
  const head = await committedHead(pool);
  const { rowCount } = await pool.query(
    'select 1 from tributary.projections where name = $1 and position >= $2',
    [name, head],
  );
  return rowCount === 1;
};

const doubleApplied = async () =>
  (await pool.query('select count(*)::int as n from tributary_views.applied where times <> 1')).rows[0]
    .n as number;

describe('projection workers in child processes', () => {
  it('survive SIGKILL at random moments: the final view equals a fresh run and a fold in SQL', async () => {
    await appendCounted(pool, 30_000, { keys: 1000 });
    let appended = 30_000;
    // Writers keep appending while the worker is killed and restarted.
    let writing = true;
    const writer = (async () => {
      while (writing && appended < 60_000) {
        await appendCounted(pool, 200, { keys: 1000, chunk: 100, offset: appended });
        appended += 200;
        await new Promise((resolve) => setTimeout(resolve, 30));
      }
    })();
    let kills = 0;
    let lastPosition = '';
    let progressed = 0;
    const processed = async () =>
      Number(
        (await pool.query(`select events_processed from tributary.projections where name = 'counting'`))
          .rows[0]?.events_processed ?? 0,
      );
    while (kills < 20) {
      // The same worker id, as a restarted process keeps: it reclaims its own lease at once.
      // Small batches keep it committing all the time, so kills land in every phase of a batch.
      const worker = spawnWorker(db.url, { WORKER_ID: 'crash', LEASE_MS: '1000', BATCH_SIZE: '20' });
      live.push(worker);
      const before = await processed();
      await worker.ready;
      // Once it is busy with the backlog, kill it at a random moment.
      await waitFor(async () => (await processed()) > before, {
        what: 'the worker to make progress',
        timeoutMs: 30_000,
      });
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 500));
      await kill(worker);
      kills++;
      const { rows } = await pool.query(`select position from tributary.projections where name = 'counting'`);
      if (rows[0] && rows[0].position !== lastPosition) progressed++;
      lastPosition = rows[0]?.position ?? '';
    }
    writing = false;
    await writer;
    expect(kills).toBe(20);
    expect(appended).toBeGreaterThanOrEqual(50_000);
    // Every run got work done before being killed: the kills landed mid-stream.
    expect(progressed).toBe(20);

    const final = spawnWorker(db.url, { WORKER_ID: 'final', LEASE_MS: '1000' });
    live.push(final);
    await waitFor(() => caughtUp('counting'), {
      what: 'the restarted worker to catch up',
      timeoutMs: 120_000,
      intervalMs: 200,
    });
    await kill(final);

    expect(await doubleApplied()).toBe(0);
    const { rows: appliedCount } = await pool.query('select count(*)::int as n from tributary_views.applied');
    const { rows: counted } = await pool.query(
      `select count(*)::int as n from tributary.events where type = 'Counted'`,
    );
    expect(appliedCount[0].n).toBe(counted[0].n);
    const fold = await foldInSql(pool);
    expect(fold.actual).toEqual(fold.expected);

    const fresh = countingProjection({ name: 'counting_fresh', track: true });
    const workers = startWorkers({ url: db.url, projections: [fresh], viewSchema: 'fresh_views' });
    await waitFor(() => caughtUp('counting_fresh'), {
      what: 'the fresh run',
      timeoutMs: 120_000,
      intervalMs: 200,
    });
    await workers.stop();
    expect((await foldInSql(pool, 'fresh_views')).actual).toEqual(fold.actual);
  });

  it('two workers on one projection: one runs it at a time, the other takes over when it is killed', async () => {
    const projection = countingProjection({ track: true });
    const a = spawnWorker(db.url, { WORKER_ID: 'worker-a', LEASE_MS: '2000', BATCH_SIZE: '100' });
    const b = spawnWorker(db.url, { WORKER_ID: 'worker-b', LEASE_MS: '2000', BATCH_SIZE: '100' });
    live.push(a, b);
    await Promise.all([a.ready, b.ready]);
    await appendCounted(pool, 5000, { keys: 300, offset: 100_000 });
    const [status] = await waitFor(
      async () => {
        const statuses = await getProjectionStatuses(pool, [projection]);
        return statuses[0]?.leaseOwner?.startsWith('worker-') ? statuses : undefined;
      },
      { what: 'a lease holder' },
    );
    const holder = status!.leaseOwner === 'worker-a' ? a : b;
    const other = holder === a ? 'worker-b' : 'worker-a';
    await waitFor(() => caughtUp('counting'), { what: 'catch up', timeoutMs: 60_000 });

    await appendCounted(pool, 3000, { keys: 300, offset: 200_000 });
    const killedAt = Date.now();
    await kill(holder);
    const [after] = await waitFor(
      async () => {
        const statuses = await getProjectionStatuses(pool, [projection]);
        return statuses[0]?.leaseOwner === other ? statuses : undefined;
      },
      { what: 'the other worker to take over', timeoutMs: 20_000, intervalMs: 50 },
    );
    expect(after!.leaseOwner).toBe(other);
    // Lease of 2 s plus the standby's retry interval and a loaded machine's slack.
    expect(Date.now() - killedAt).toBeLessThan(8000);
    await waitFor(() => caughtUp('counting'), { what: 'the survivor to catch up', timeoutMs: 60_000 });
    expect(await doubleApplied()).toBe(0);
    const fold = await foldInSql(pool);
    expect(fold.actual).toEqual(fold.expected);
  });
});
