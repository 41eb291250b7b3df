import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.js';
import { seededRandom } from '../../../test/support/random.js';
import { assertIndexEqualsView, itemRow, items, writeItems } from '../../../test/support/sinks.js';
import { createViewTable } from '../../../test/support/viewTables.js';
import { waitFor } from '../../../test/support/waitFor.js';
import { createPool, type Pool } from '../../db/index.js';
import { loadSinks } from './index.js';

const WORKER = fileURLToPath(new URL('../../../test/fixtures/sinkWorker.ts', import.meta.url));

let db: TestDatabase;
let pool: Pool;
let child: ChildProcess | undefined;

beforeAll(async () => {
  db = await createTestDatabase();
  pool = createPool(db.url, { max: 4 });
  await createViewTable(pool, items);
});

afterAll(async () => {
  child?.kill('SIGKILL');
  await pool?.end();
  await db?.drop();
});

function startWorker(): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    // The worker itself, not a wrapper: SIGKILL must hit the process that holds the lease.
    const next = spawn(process.execPath, ['--import', 'tsx', WORKER], {
      env: { ...process.env, DATABASE_URL: db.url, TRIBUTARY_LOG_LEVEL: 'error' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    next.stdout?.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('ready')) resolve(next);
    });
    next.once('exit', (code, signal) => {
      if (signal !== 'SIGKILL') reject(new Error(`sink worker exited on its own: ${code} ${signal}`));
    });
  });
}

it('converges to the view document by document after random upserts and deletes and many SIGKILLs', async () => {
  const random = seededRandom(13);
  const KEYS = 40;
  // Some rows before the first start: the sink backfills them, then tails.
  await writeItems(
    pool,
    Array.from({ length: KEYS / 2 }, (_, i) => ({
      op: 'upsert' as const,
      row: itemRow(i + 1, `first ${i + 1}`),
    })),
  );
  let stopping = false;
  let kills = 0;
  const killer = (async () => {
    child = await startWorker();
    while (!stopping) {
      await new Promise((resolve) => setTimeout(resolve, 150 + Math.random() * 600));
      if (stopping) break;
      const victim = child;
      const exited = once(victim, 'exit');
      victim.kill('SIGKILL');
      await exited;
      kills++;
      child = await startWorker();
    }
  })();
  try {
    for (let batch = 0; batch < 300; batch++) {
      const changes = Array.from({ length: 1 + Math.floor(random() * 4) }, () => {
        const id = 1 + Math.floor(random() * KEYS);
        return random() < 0.3
          ? { op: 'delete' as const, row: { id } }
          : { op: 'upsert' as const, row: itemRow(id, `name ${batch} ${Math.floor(random() * 1000)}`) };
      });
      await writeItems(pool, changes);
      if (batch % 25 === 0) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    // Let it be killed a few more times while it catches up.
    await waitFor(() => kills >= 10, { timeoutMs: 60_000, what: 'ten kills' });
  } finally {
    stopping = true;
    await killer;
  }
  let last = '';
  await waitFor(
    async () => {
      const [row] = await loadSinks(pool, ['churn_sink']);
      if (!row?.index_name || row.build_index) return false;
      const state = await assertIndexEqualsView(pool, row.alias);
      last = JSON.stringify({
        view: state.view.length,
        index: state.index.length,
        stale: state.stale.length,
      });
      return JSON.stringify(state.index) === JSON.stringify(state.view) && state.stale.length === 0;
    },
    { timeoutMs: 60_000, intervalMs: 200, what: () => `the index to equal the view: ${last}` },
  );
  const state = await assertIndexEqualsView(pool, 'churn_sink');
  expect(state.index).toEqual(state.view);
  expect(state.stale).toEqual([]);
  expect(state.view.length).toBeGreaterThan(0);
  expect(kills).toBeGreaterThanOrEqual(10);
});
