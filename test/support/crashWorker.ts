import { type ChildProcess, spawn } from 'node:child_process';
import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';
import { createPostgresEventStore, type EventStore } from '../../src/ingest/index.js';
import { createTestDatabase, type TestDatabase } from './database.js';
import { waitFor } from './waitFor.js';

export interface CrashLoop {
  /** Workers killed so far. */
  readonly kills: number;
  /** Stops the loop, kills the running worker and returns how many were killed. */
  stop(): Promise<number>;
}

/**
 * Starts the worker script (`CRASH_DATABASE_URL` set, it prints `ready`) again and again and
 * SIGKILLs each one at a random moment, `killAfterMs.min` plus up to `killAfterMs.spread`
 * after it took the lease: on a slow machine a worker still starting up would otherwise be
 * killed again and again, and nothing would move.
 */
export function killRepeatedly(options: {
  worker: string;
  databaseUrl: string;
  /** When a worker last took or renewed the lease (every commit renews it). */
  leaseWritten: () => Promise<string>;
  killAfterMs: { min: number; spread: number };
}): CrashLoop {
  let child: ChildProcess | undefined;
  let kills = 0;
  let stopping = false;
  const startChild = () =>
    new Promise<ChildProcess>((resolve, reject) => {
      const next = spawn(process.execPath, ['--import', 'tsx', options.worker], {
        env: { ...process.env, CRASH_DATABASE_URL: options.databaseUrl, TRIBUTARY_LOG_LEVEL: 'error' },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      next.stdout?.on('data', (chunk: Buffer) => {
        if (chunk.toString().includes('ready')) resolve(next);
      });
      next.once('exit', (code, signal) => {
        if (signal !== 'SIGKILL') reject(new Error(`worker exited on its own: ${code} ${signal}`));
      });
    });
  const killer = (async () => {
    while (!stopping) {
      const before = await options.leaseWritten();
      child = await startChild();
      await waitFor(async () => stopping || (await options.leaseWritten()) !== before, {
        timeoutMs: 120_000,
        what: 'the new worker to take the lease',
      });
      const { min, spread } = options.killAfterMs;
      await new Promise((resolve) => setTimeout(resolve, min + Math.random() * spread));
      if (stopping) break;
      const victim = child;
      const exited = new Promise((resolve) => victim.once('exit', resolve));
      victim.kill('SIGKILL');
      await exited;
      kills += 1;
    }
  })();
  return {
    get kills() {
      return kills;
    },
    async stop() {
      stopping = true;
      await killer.catch(() => {});
      child?.kill('SIGKILL');
      return kills;
    },
  };
}

/** What a crash spec file works with: its database, a store and a client on it. */
export interface CrashSpec {
  db: TestDatabase;
  store: EventStore;
  client: pg.Client;
}

/** Makes the spec file's database before its tests (`setup` receives it) and drops it after. */
export function crashSpec(setup: (spec: CrashSpec) => unknown): void {
  let spec: Partial<CrashSpec> = {};
  beforeAll(async () => {
    const db = await createTestDatabase();
    spec = { db };
    const store = createPostgresEventStore({ connectionString: db.url });
    spec.store = store;
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    spec.client = client;
    await setup({ db, store, client });
  });
  afterAll(async () => {
    await spec.client?.end();
    await spec.store?.close();
    await spec.db?.drop();
  });
}
