import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.js';
import { waitFor } from '../../../test/support/waitFor.js';
import { createPool, type Pool, withTransaction } from '../../db/index.js';
import { appendToStream, copyToStream, openStreamCopy, readStream } from './index.js';
import type { PreparedEvent } from './validation.js';

let db: TestDatabase;
let pool: Pool;

beforeAll(async () => {
  db = await createTestDatabase();
  pool = createPool(db.url, { max: 4 });
});

afterAll(async () => {
  await pool.end();
  await db.drop();
});

const prepared = (id: string, n: number, idGiven = false): PreparedEvent => ({
  id,
  type: 'Copied',
  data: JSON.stringify({ n }),
  metadata: '{}',
  eventTime: null,
  idGiven,
});

describe('copyToStream and openStreamCopy', () => {
  it('continues the stream version and keeps awkward text exactly', async () => {
    await appendToStream(pool, 'copy-1', [{ type: 'First', data: {} }]);
    const awkward = 'tab\there, newline\nthere, back\\slash, \\N, "quotes", é, 🙂';
    const result = await withTransaction(pool, (client) =>
      copyToStream(client, 'copy-1', [
        { id: `id\t${awkward}`, type: 'Type\\with\nbreaks', data: { awkward }, metadata: { m: awkward } },
        { type: 'Second', data: { nested: { list: [1, null, awkward] } }, eventTime: '2020-01-02T03:04:05Z' },
      ]),
    );
    expect(result.nextExpectedVersion).toBe(3);
    const events = await readStream(pool, 'copy-1');
    expect(events.map((e) => e.streamPosition)).toEqual([1, 2, 3]);
    expect(events[1]).toMatchObject({
      eventId: `id\t${awkward}`,
      type: 'Type\\with\nbreaks',
      data: { awkward },
      metadata: { m: awkward },
    });
    expect(events[2]!.data).toEqual({ nested: { list: [1, null, awkward] } });
    expect(events[2]!.eventTime.toISOString()).toBe('2020-01-02T03:04:05.000Z');
    expect(events[2]!.position).toBe(result.position);
    // Without an event time, an event gets the transaction's time, like any append.
    expect(events[1]!.eventTime.getTime()).toBe(events[1]!.recordedAt.getTime());
    // The stream row knows the new version: an append expecting it succeeds.
    await expect(
      appendToStream(pool, 'copy-1', [{ type: 'After', data: {} }], { expectedVersion: 3 }),
    ).resolves.toMatchObject({ nextExpectedVersion: 4 });
  });

  it('streams many writes into one COPY and rolls back whole with its transaction', async () => {
    const client = await pool.connect();
    try {
      await client.query('begin');
      const copy = await openStreamCopy(client, 'copy-2');
      for (let chunk = 0; chunk < 20; chunk++) {
        await copy.write(Array.from({ length: 500 }, (_, i) => prepared(`c-${chunk}-${i}`, chunk * 500 + i)));
      }
      expect(copy.count).toBe(10_000);
      expect((await copy.finish())?.nextExpectedVersion).toBe(10_000);
      await client.query('rollback');
    } finally {
      client.release();
    }
    expect(await readStream(pool, 'copy-2')).toEqual([]);

    await withTransaction(pool, async (tx) => {
      const copy = await openStreamCopy(tx, 'copy-2');
      await copy.write(Array.from({ length: 3000 }, (_, i) => prepared(`c-${i}`, i)));
      await copy.finish();
    });
    const events = await readStream(pool, 'copy-2', { limit: 5000 });
    expect(events.map((e) => e.data.n)).toEqual(Array.from({ length: 3000 }, (_, i) => i));
    expect(events.map((e) => e.streamPosition)).toEqual(Array.from({ length: 3000 }, (_, i) => i + 1));
  });

  it('serializes with other appends to the same stream through the stream row', async () => {
    const holder = await pool.connect();
    try {
      await holder.query('begin');
      const copy = await openStreamCopy(holder, 'copy-3');
      await copy.write([prepared('h-1', 1), prepared('h-2', 2)]);
      let appended = false;
      const other = appendToStream(pool, 'copy-3', [{ type: 'Other', data: {} }]).then((r) => {
        appended = true;
        return r;
      });
      // The append waits on the stream row while the COPY's transaction holds it.
      await waitFor(
        async () =>
          (
            await pool.query(
              `select 1 from pg_stat_activity
                where datname = current_database() and wait_event_type = 'Lock' and query like '%append_events%'`,
            )
          ).rowCount === 1 || undefined,
        { timeoutMs: 10_000, what: 'the append to wait for the stream row' },
      );
      expect(appended).toBe(false);
      await copy.finish();
      await holder.query('commit');
      expect((await other).nextExpectedVersion).toBe(3);
    } finally {
      holder.release();
    }
    expect((await readStream(pool, 'copy-3')).map((e) => e.type)).toEqual(['Copied', 'Copied', 'Other']);
  });

  it('indexes the ids a caller gave: a retried append of one is a duplicate, a copied repeat fails', async () => {
    await withTransaction(pool, (client) =>
      copyToStream(client, 'copy-4', [{ id: 'given-1', type: 'Given', data: {} }]),
    );
    const retried = await appendToStream(pool, 'copy-4', [{ id: 'given-1', type: 'Given', data: {} }]);
    expect(retried.appended).toBe(false);
    await expect(
      withTransaction(pool, (client) =>
        copyToStream(client, 'copy-4', [{ id: 'given-1', type: 'Given', data: {} }]),
      ),
    ).rejects.toMatchObject({ code: '23505' });
    // Ids that were not given (generated, or derived like CDC's) are not indexed for idempotence.
    await withTransaction(pool, async (client) => {
      const copy = await openStreamCopy(client, 'copy-4');
      await copy.write([prepared('derived-1', 1)]);
      await copy.finish();
    });
    const { rows } = await pool.query<{ given: boolean }>(
      `select event_id_given as given from tributary.events where stream_id = 'copy-4' order by stream_position`,
    );
    expect(rows.map((r) => r.given)).toEqual([true, false]);
    expect((await readStream(pool, 'copy-4')).map((e) => e.eventId)).toEqual(['given-1', 'derived-1']);
  });
});
