import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.js';
import { waitFor } from '../../../test/support/waitFor.js';
import { createPool, type Pool } from '../../db/index.js';

const FIXTURE = path.resolve('test/fixtures/esdbFakeCapture.ts');
const EVENTS = Number(process.env.ESDB_EVENTS ?? 30_000);
const KILLS = Number(process.env.ESDB_KILLS ?? 8);

let db: TestDatabase;
let pool: Pool;

beforeAll(async () => {
  db = await createTestDatabase();
  pool = createPool(db.url);
});

afterAll(async () => {
  await pool.end();
  await db.drop();
});

function start(): { child: ChildProcess; exited: Promise<void> } {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE], {
    env: {
      ...process.env,
      DATABASE_URL: db.url,
      EVENTS: String(EVENTS),
      TRIBUTARY_LOG_LEVEL: process.env.ESDB_DEBUG ? 'info' : 'warn',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return { child, exited: new Promise((resolve) => child.once('exit', () => resolve())) };
}

const captured = async () =>
  Number(
    (
      await pool.query<{ n: string }>(
        "select coalesce(sum(events), 0) as n from tributary.esdb_checkpoints where source = 'fake'",
      )
    ).rows[0]!.n,
  );

describe('the EventStoreDB capture under SIGKILL (its checkpoint logic, over an in-memory $all)', () => {
  it(`puts each event in the log once, in $all order, across ${KILLS} SIGKILLs during catch-up`, async () => {
    let kills = 0;
    for (let round = 0; round < KILLS; round++) {
      const before = await captured();
      const { child, exited } = start();
      // Killed at a random point of what is left of the catch-up, by events captured rather
      // than by time: a fast run would otherwise finish the catch-up before the last kills.
      const left = Math.max(0, EVENTS * 0.85 - before) / (KILLS - round);
      const at = before + 1 + Math.floor(Math.random() * left);
      await waitFor(async () => (await captured()) >= at, {
        timeoutMs: 60_000,
        intervalMs: 5,
        what: `${at} events captured`,
      });
      child.kill('SIGKILL');
      await exited;
      if ((await captured()) < EVENTS * 0.95) kills++;
    }
    expect(kills).toBeGreaterThanOrEqual(KILLS - 1);
    const { child, exited } = start();
    // System events are filtered out by the server: neither read nor counted.
    const delivered = Array.from({ length: EVENTS }, (_, n) => n).filter((n) => n % 97 !== 96).length;
    await waitFor(async () => (await captured()) >= delivered, {
      timeoutMs: 120_000,
      intervalMs: 200,
      what: 'every event',
    });
    child.kill('SIGTERM');
    await exited;

    const { rows } = await pool.query<{
      event_id: string;
      stream_id: string;
      n: number;
      stream_position: string;
    }>(
      `select event_id, stream_id, (data->>'n')::int as n, stream_position from tributary.events
        where stream_id like 'esdb-%' order by transaction_id, global_position`,
    );
    const expected = Array.from({ length: EVENTS }, (_, n) => n).filter((n) => n % 97 !== 96);
    expect(rows.map((r) => r.n)).toEqual(expected);
    expect(new Set(rows.map((r) => r.event_id)).size).toBe(expected.length);
    // Stream positions count up by one in each stream: nothing doubled or missing there either.
    const byStream = new Map<string, number[]>();
    for (const row of rows)
      byStream.set(row.stream_id, [...(byStream.get(row.stream_id) ?? []), Number(row.stream_position)]);
    for (const positions of byStream.values()) expect(positions).toEqual(positions.map((_, i) => i + 1));
    expect(await captured()).toBe(delivered);
  });
});
