import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.js';
import { seededRandom } from '../../../test/support/random.js';
import { waitFor } from '../../../test/support/waitFor.js';
import { createPool, type Pool } from '../../db/index.js';
import { appendToStream, type Position, parsePosition, readAll, readHead, START } from './index.js';

// Invariant 1 at the log: a reader that resumes from its checkpoint over and over, while
// writers commit out of order, hold transactions open and roll back, sees every committed
// event exactly once and in position order. The same scenario read by max(global_position)
// loses events, which shows the scenario can catch the bug.

let db: TestDatabase;
let pool: Pool;

beforeAll(async () => {
  db = await createTestDatabase();
  pool = createPool(db.url, { max: 40, applicationName: 'gap-safety' });
});

afterAll(async () => {
  await pool.end();
  await db.drop();
});

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Reader {
  seen: Array<{ id: string; position: string }>;
  stop(): Promise<void>;
}

/** The gap-safe reader: readAll from a checkpoint, each session on a fresh connection. */
function startSafeReader(random: () => number): Reader {
  const seen: Reader['seen'] = [];
  let checkpoint: Position = START;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      // A "restart": a new connection resuming from the stored checkpoint only.
      const client = await pool.connect();
      try {
        const reads = 1 + Math.floor(random() * 5);
        for (let i = 0; i < reads && !stopped; i++) {
          const page = await readAll(client, checkpoint, { limit: 1 + Math.floor(random() * 7) });
          for (const event of page.events) seen.push({ id: event.eventId, position: event.position });
          checkpoint = page.next;
          if (page.events.length === 0) await pause(3);
        }
      } finally {
        client.release();
      }
    }
  })();
  return {
    seen,
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

/** The broken reader: checkpoints max(global_position) seen and reads past it. */
function startMaxPositionReader(): Reader & { checkpoint(): bigint } {
  const seen: Reader['seen'] = [];
  let checkpoint = 0n;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const { rows } = await pool.query<{ event_id: string; gp: string }>(
        `select event_id, global_position::text as gp from tributary.events
         where global_position > $1 order by global_position limit 5`,
        [checkpoint.toString()],
      );
      for (const row of rows) {
        seen.push({ id: row.event_id, position: row.gp });
        checkpoint = BigInt(row.gp);
      }
      if (rows.length === 0) await pause(3);
    }
  })();
  return {
    seen,
    checkpoint: () => checkpoint,
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

/** One writer transaction: append, wait, then commit or roll back. Returns the ids it committed. */
async function writeTransaction(
  streamId: string,
  ids: string[],
  holdMs: number,
  rollback: boolean,
): Promise<string[]> {
  const client = await pool.connect();
  try {
    await client.query('begin');
    await appendToStream(
      client,
      streamId,
      ids.map((id) => ({ id, type: 'Tick', data: { id } })),
    );
    await pause(holdMs);
    await client.query(rollback ? 'rollback' : 'commit');
    return rollback ? [] : ids;
  } catch (error) {
    await client.query('rollback').catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

describe('gap safety', () => {
  it('a resuming reader sees every committed event exactly once, in order; max(global_position) loses some', async () => {
    const seed = Number(process.env.GAP_SEED ?? Date.now() % 1_000_000);
    const random = seededRandom(seed);
    const safe = startSafeReader(seededRandom(seed + 1));
    const naive = startMaxPositionReader();
    const committed: string[] = [];
    const lateIds: string[] = [];
    const rounds = 6;
    const writersPerRound = 14;

    for (let round = 0; round < rounds; round++) {
      const writes: Array<Promise<string[]>> = [];
      for (let w = 0; w < writersPerRound; w++) {
        const ids = Array.from({ length: 1 + Math.floor(random() * 4) }, (_, i) => `r${round}-w${w}-e${i}`);
        // Some streams are shared (appends serialize on them), most are not.
        const stream = random() < 0.3 ? `shared-${w % 3}` : `s-${round}-${w}`;
        const held = random() < 0.12;
        const holdMs = held ? 1000 + Math.floor(random() * 1500) : Math.floor(random() * 60);
        const rollback = random() < 0.2;
        writes.push(
          (async () => {
            await pause(Math.floor(random() * 40));
            return writeTransaction(stream, ids, holdMs, rollback);
          })(),
        );
      }

      // The deterministic case: a transaction takes its global_position first and commits
      // only after a later transaction committed and the max-position reader moved past it.
      const lateId = `r${round}-late`;
      const late = await pool.connect();
      try {
        await late.query('begin');
        await appendToStream(late, `late-${round}`, [{ id: lateId, type: 'Late', data: {} }]);
        const after = await appendToStream(pool, `after-${round}`, [
          { id: `r${round}-after`, type: 'After', data: {} },
        ]);
        const afterGp = parsePosition(after.position).globalPosition;
        await waitFor(() => naive.checkpoint() >= afterGp, { what: 'the max-position reader to pass' });
        await late.query('commit');
      } finally {
        late.release();
      }
      committed.push(lateId, `r${round}-after`);
      lateIds.push(lateId);
      for (const ids of await Promise.all(writes)) committed.push(...ids);
    }

    const expected = new Set(committed);
    const head = await readHead(pool);
    await waitFor(() => safe.seen.some((e) => e.position === head), {
      timeoutMs: 20_000,
      what: `the safe reader to reach the head (seed ${seed})`,
    });
    // Let the broken reader drain too: it has passed the last global_position once caught up.
    const { rows } = await pool.query<{ max: string }>(
      'select max(global_position)::text as max from tributary.events',
    );
    await waitFor(() => naive.checkpoint() >= BigInt(rows[0]!.max), {
      what: 'the max-position reader to drain',
    });
    await safe.stop();
    await naive.stop();

    const safeIds = safe.seen.map((e) => e.id);
    expect(new Set(safeIds).size, `no event twice (seed ${seed})`).toBe(safeIds.length);
    expect(new Set(safeIds), `exactly the committed events (seed ${seed})`).toEqual(expected);
    const positions = safe.seen.map((e) => e.position);
    expect(positions, `position order (seed ${seed})`).toEqual([...positions].sort());
    expect(new Set(positions).size).toBe(positions.length);

    const naiveIds = new Set(naive.seen.map((e) => e.id));
    const lost = committed.filter((id) => !naiveIds.has(id));
    expect(lost, 'the max(global_position) reader loses the late commits').toEqual(
      expect.arrayContaining(lateIds),
    );
  });
});
