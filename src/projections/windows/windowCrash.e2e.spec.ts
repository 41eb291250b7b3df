import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { expect, it } from 'vitest';
import {
  crashScript,
  crashSessions,
  crashTumbling,
  START_CLOCK,
} from '../../../test/fixtures/windowCrash.js';
import { crashSpec, killRepeatedly } from '../../../test/support/crashWorker.js';
import type { TestDatabase } from '../../../test/support/database.js';
import { waitFor } from '../../../test/support/waitFor.js';
import type { EventStore } from '../../ingest/index.js';
import { testStream } from '../../testing/index.js';
import type { WindowedAggregate } from './index.js';

const WORKER = fileURLToPath(new URL('../../../test/fixtures/windowCrashWorker.ts', import.meta.url));

let db: TestDatabase;
let store: EventStore;
let client: pg.Client;

crashSpec(async (spec) => {
  ({ db, store, client } = spec);
  await client.query('create table window_crash_clock (now bigint not null, seen bigint)');
  await client.query('insert into window_crash_clock (now) values ($1)', [START_CLOCK]);
});

const aggregates = [crashTumbling, crashSessions];

/**
 * Both projections have applied everything up to `position` (what an append returned).
 * Not `store.head()`: that only covers events below the snapshot's xmin, which the worker's
 * own open batch can hold back, so it may not include an append that just committed.
 */
/** When a worker last took or renewed the lease (every commit renews it). */
async function leaseWritten(): Promise<string> {
  const { rows } = await client.query<{ at: string | null }>(
    'select max(lease_expires_at)::text as at from tributary.projections where name = any ($1)',
    [aggregates.map((a) => a.name)],
  );
  return rows[0]?.at ?? '';
}

async function caughtUpTo(position: string): Promise<boolean> {
  const { rows } = await client.query<{ n: number }>(
    `select count(*)::int as n from tributary.projections where name = any ($1) and position >= $2`,
    [aggregates.map((a) => a.name), position],
  );
  return rows[0]!.n === aggregates.length;
}

async function timersDue(at: number): Promise<number> {
  const { rows } = await client.query<{ n: number }>(
    `select count(*)::int as n from tributary.window_state where aggregate = any ($1) and timer_at <= $2`,
    [aggregates.map((a) => a.stateKey), at],
  );
  return rows[0]!.n;
}

async function firedPanes(aggregate: WindowedAggregate) {
  const { rows } = await client.query(
    `select key, window_start::text, window_end::text, pane_index, timing, is_final, value, retracted,
            input_watermark::text
       from tributary.window_panes where aggregate = $1 order by seq`,
    [aggregate.stateKey],
  );
  return rows;
}

it('panes after SIGKILLs at random moments equal an uninterrupted run, each fired once', async () => {
  const script = crashScript(40, 20);
  let kills = 0;
  const crashes = killRepeatedly({
    worker: WORKER,
    databaseUrl: db.url,
    leaseWritten,
    killAfterMs: { min: 200, spread: 800 },
  });

  try {
    let clock = START_CLOCK;
    for (const phase of script) {
      const half = Math.ceil(phase.events.length / 2);
      await store.append('readings', phase.events.slice(0, half));
      const { position } = await store.append('readings', phase.events.slice(half));
      await waitFor(() => caughtUpTo(position), { timeoutMs: 60_000, what: 'the projections to catch up' });
      clock = phase.clock;
      await client.query('update window_crash_clock set now = $1', [clock]);
      await waitFor(
        async () => {
          const { rows } = await client.query<{ seen: string }>('select seen::text from window_crash_clock');
          return Number(rows[0]!.seen) === clock && (await timersDue(clock)) === 0;
        },
        { timeoutMs: 60_000, what: `the worker to see the clock at ${clock} and fire its timers` },
      );
    }
    // On a quiet machine the script can end before three kills: the loop goes on killing
    // restarted workers until it has, and the panes must still end exact.
    await waitFor(() => crashes.kills >= 3, { timeoutMs: 120_000, what: 'three workers to be killed' });
  } finally {
    kills = await crashes.stop();
  }
  expect(kills).toBeGreaterThanOrEqual(3);

  for (const aggregate of aggregates) {
    let stream = testStream(aggregate, {
      connectionString: db.url,
      watermark: 'strategy',
      startProcessingTime: START_CLOCK,
    });
    for (const phase of script) {
      stream = stream
        .addElements(
          ...phase.events.map((e) => ({ time: Date.parse(String(e.eventTime)), data: e.data, type: e.type })),
        )
        .advanceProcessingTimeTo(phase.clock);
    }
    // The worker's clock jumps from phase to phase while the test stream's moves continuously,
    // so a timer fires later in the worker's run: everything but the firing time must agree.
    const expected = (await stream.run()).map(({ firedAt: _firedAt, ...pane }) => pane);
    expect(expected.length).toBeGreaterThan(50);
    const actual = (await firedPanes(aggregate)).map((row) => ({
      key: row.key,
      window: { start: Number(row.window_start), end: Number(row.window_end) },
      value: row.value,
      timing: row.timing,
      index: row.pane_index,
      isFinal: row.is_final,
      ...(row.retracted === null ? {} : { retracted: row.retracted }),
      watermark: Number(row.input_watermark),
    }));
    expect(actual).toEqual(expected);

    // The panes view holds the same panes, once each.
    const { rows: view } = await client.query(
      `select key, (extract(epoch from window_start) * 1000)::bigint::text as start, pane_index, timing, value
         from tributary_views.${aggregate.panesView.name} order by key, window_start, window_end, pane_index`,
    );
    const fromLog = [...expected]
      .sort(
        (a, b) =>
          (a.key < b.key ? -1 : a.key > b.key ? 1 : 0) ||
          a.window.start - b.window.start ||
          a.window.end - b.window.end ||
          a.index - b.index,
      )
      .map((p) => ({
        key: p.key,
        start: String(p.window.start),
        pane_index: p.index,
        timing: p.timing,
        value: p.value,
      }));
    expect(view).toEqual(fromLog);
  }
}, 600_000);
