import { describe, expect, it } from 'vitest';
import { describeRelation, openTransaction } from './changeEvents.js';
import { type Chunk, createSnapshotWindows, keyOf } from './snapshotWindows.js';

// The stream side of the watermark algorithm, driven message by message as the replication
// stream would: the races it must survive are about the order in which the stream decodes
// transactions and the moment the chunk's read takes its snapshot.

const TABLE = 'public.items';
const relation = describeRelation({
  oid: 1,
  schema: 'public',
  name: 'items',
  columns: [
    { name: 'id', typeOid: 23, isKey: true },
    { name: 'v', typeOid: 25, isKey: false },
  ],
  kinds: [{ kind: 'integer' }, { kind: 'text' }],
  keyIndexes: [0],
});
const txn = (xid: number) =>
  openTransaction('s', { finalLsn: '0/16B3748', commitTime: new Date(0), xid }) as ReturnType<
    typeof openTransaction
  >;

function chunk(rows: Array<[string, string]>, inProgress: number[] = []): Chunk {
  return {
    snapshotId: 7,
    table: TABLE,
    relation,
    rows,
    keyIndexes: [0],
    inProgress: new Set(inProgress),
    lastKey: rows.length === 0 ? null : [rows[rows.length - 1]![0]],
    last: false,
    rowsBefore: 0,
  };
}

/** A source transaction changing `keys` of the table, decoded by the stream. */
function decode(windows: ReturnType<typeof createSnapshotWindows>, xid: number, keys: string[]) {
  windows.begin(xid);
  if (windows.isTracked(TABLE))
    windows.change(
      TABLE,
      xid,
      keys.map((k) => keyOf([k], [0])),
    );
  windows.commit();
}

const keysOf = (output: { events: Array<{ data: string }> } | undefined) =>
  output?.events.map((e) => (JSON.parse(e.data) as { key: { id: number } }).key.id);

describe('snapshot windows', () => {
  it('drops from a chunk the keys the stream changed between its watermarks', () => {
    const windows = createSnapshotWindows();
    const id = 'w1';
    void windows.expect(id, TABLE);
    windows.watermark({ id, kind: 'low' }, txn(100));
    windows.ready(
      id,
      chunk([
        ['1', 'a'],
        ['2', 'b'],
        ['3', 'c'],
      ]),
    );
    decode(windows, 101, ['2']);
    const output = windows.watermark({ id, kind: 'high' }, txn(102));
    expect(keysOf(output)).toEqual([1, 3]);
  });

  it('drops the keys of a transaction decoded before the low watermark but not seen by the read, between two chunks of a followed table', async () => {
    const windows = createSnapshotWindows();
    const unfollow = windows.follow(TABLE);
    // First chunk: done and committed.
    const first = windows.expect('w1', TABLE);
    windows.watermark({ id: 'w1', kind: 'low' }, txn(100));
    windows.ready('w1', chunk([['1', 'a']]));
    const firstOutput = windows.watermark({ id: 'w1', kind: 'high' }, txn(101));
    windows.committed([firstOutput!]);
    expect(await first).toEqual({ applied: true, rowsWritten: 1 });
    // Between chunks: transaction 200 commits and is decoded, but is still in progress in the
    // snapshot the next chunk's read takes (its commit record precedes its visibility).
    decode(windows, 200, ['5']);
    const second = windows.expect('w2', TABLE);
    windows.watermark({ id: 'w2', kind: 'low' }, txn(201));
    windows.ready(
      'w2',
      chunk(
        [
          ['4', 'd'],
          ['5', 'old'],
          ['6', 'f'],
        ],
        [200],
      ),
    );
    const output = windows.watermark({ id: 'w2', kind: 'high' }, txn(202));
    expect(keysOf(output)).toEqual([4, 6]);
    windows.committed([output!]);
    expect(await second).toEqual({ applied: true, rowsWritten: 2 });
    unfollow();
    expect(windows.active).toBe(false);
  });

  it('reads a chunk again when a transaction it did not see was decoded before the table was followed', async () => {
    const windows = createSnapshotWindows();
    // Transaction 300 is decoded while nothing follows the table: its keys are unknown.
    decode(windows, 300, ['5']);
    const unfollow = windows.follow(TABLE);
    const done = windows.expect('w1', TABLE);
    windows.watermark({ id: 'w1', kind: 'low' }, txn(301));
    windows.ready('w1', chunk([['5', 'old']], [300]));
    expect(windows.watermark({ id: 'w1', kind: 'high' }, txn(302))).toBeUndefined();
    expect(await done).toEqual({ applied: false, rowsWritten: 0 });
    // Read again once the transaction is visible: nothing in progress, the row is kept.
    const again = windows.expect('w2', TABLE);
    windows.watermark({ id: 'w2', kind: 'low' }, txn(303));
    windows.ready('w2', chunk([['5', 'new']]));
    const output = windows.watermark({ id: 'w2', kind: 'high' }, txn(304));
    expect(keysOf(output)).toEqual([5]);
    windows.committed([output!]);
    expect(await again).toEqual({ applied: true, rowsWritten: 1 });
    unfollow();
  });

  it('keeps the rows of a chunk whose in-progress transactions commit after its low watermark', () => {
    const windows = createSnapshotWindows();
    const unfollow = windows.follow(TABLE);
    void windows.expect('w1', TABLE);
    windows.watermark({ id: 'w1', kind: 'low' }, txn(400));
    windows.ready(
      'w1',
      chunk(
        [
          ['1', 'a'],
          ['2', 'b'],
        ],
        [401],
      ),
    );
    // Transaction 401 commits after the read, changing another table's row only.
    windows.begin(401);
    windows.commit();
    const output = windows.watermark({ id: 'w1', kind: 'high' }, txn(402));
    expect(keysOf(output)).toEqual([1, 2]);
    unfollow();
  });
});
