import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.js';
import { waitFor } from '../../../test/support/waitFor.js';
import { ConcurrencyError, IdempotencyConflictError, ValidationError } from '../../errors.js';
import {
  comparePositions,
  createPostgresEventStore,
  type EventStore,
  parsePosition,
  START,
} from './index.js';

let db: TestDatabase;
let store: EventStore;

beforeAll(async () => {
  db = await createTestDatabase();
  store = createPostgresEventStore({ connectionString: db.url, maxEventBytes: 10_000 });
});

afterAll(async () => {
  await store.close();
  await db.drop();
});

const ev = (type: string, data: Record<string, unknown> = {}, id?: string) =>
  ({ type, data, ...(id ? { id } : {}) }) as { type: string; data: Record<string, never>; id?: string };

describe('append', () => {
  it('appends a batch atomically and returns the next expected version', async () => {
    const result = await store.append('order-1', [ev('Placed', { n: 1 }), ev('Paid', { n: 2 })], {
      expectedVersion: 'no_stream',
    });
    expect(result).toMatchObject({ nextExpectedVersion: 2, appended: true });
    const events = await store.readStream('order-1');
    expect(events.map((e) => [e.type, e.streamPosition, e.data])).toEqual([
      ['Placed', 1, { n: 1 }],
      ['Paid', 2, { n: 2 }],
    ]);
    expect(events[1]!.position).toBe(result.position);
  });

  it('enforces every kind of expected version with the actual version in the error', async () => {
    await store.append('ov', [ev('A')], { expectedVersion: 'no_stream' });
    await expect(store.append('ov', [ev('B')], { expectedVersion: 'no_stream' })).rejects.toMatchObject({
      code: 'WRONG_EXPECTED_VERSION',
      expected: 'no_stream',
      actual: 1,
    });
    await expect(
      store.append('ov-missing', [ev('B')], { expectedVersion: 'stream_exists' }),
    ).rejects.toBeInstanceOf(ConcurrencyError);
    await expect(store.append('ov', [ev('B')], { expectedVersion: 5 })).rejects.toMatchObject({
      expected: 5,
      actual: 1,
    });
    await expect(store.append('ov', [ev('B')], { expectedVersion: 1 })).resolves.toMatchObject({
      nextExpectedVersion: 2,
    });
    await expect(store.append('ov', [ev('C')], { expectedVersion: 'stream_exists' })).resolves.toMatchObject({
      nextExpectedVersion: 3,
    });
    // A refused append writes nothing, not even the stream row.
    expect(await store.readStream('ov-missing')).toEqual([]);
  });

  it('treats a repeated append of the same ids as a no-op returning the first result', async () => {
    const batch = [ev('X', { a: 1 }, 'id-1'), ev('Y', { a: 2 }, 'id-2')];
    const first = await store.append('idem', batch, { expectedVersion: 'no_stream' });
    const again = await store.append('idem', batch, { expectedVersion: 'no_stream' });
    expect(again).toEqual({ ...first, appended: false });
    expect(await store.readStream('idem')).toHaveLength(2);
  });

  it('refuses a batch that only partly repeats earlier ids, writing nothing', async () => {
    await store.append('idem-partial', [ev('X', {}, 'p-1')]);
    const error = await store
      .append('idem-partial', [ev('X', {}, 'p-1'), ev('Y', {}, 'p-2')])
      .catch((e) => e);
    expect(error).toBeInstanceOf(IdempotencyConflictError);
    expect(error).toMatchObject({ repeatedIds: ['p-1'], newIds: ['p-2'] });
    expect(await store.readStream('idem-partial')).toHaveLength(1);
  });

  it.each([
    ['an empty stream id', '', [ev('A')]],
    ['a huge stream id', 'x'.repeat(300), [ev('A')]],
    ['an empty type', 's', [ev('')]],
    ['an array as data', 's', [{ type: 'A', data: [1, 2] }]],
    ['null data', 's', [{ type: 'A', data: null }]],
    ['a Date inside data', 's', [{ type: 'A', data: { at: new Date() } }]],
    ['NaN inside data', 's', [{ type: 'A', data: { n: Number.NaN } }]],
    ['a NUL character', 's', [{ type: 'A', data: { s: 'a\u0000b' } }]],
    ['an oversized event', 's', [{ type: 'A', data: { s: 'x'.repeat(20_000) } }]],
    ['no events', 's', []],
    ['a duplicate id in one batch', 's', [ev('A', {}, 'd'), ev('B', {}, 'd')]],
    ['an invalid event time', 's', [{ type: 'A', data: {}, eventTime: 'yesterday-ish' }]],
  ])('rejects %s with a ValidationError before writing', async (_name, streamId, events) => {
    const before = await store.head();
    await expect(store.append(streamId, events as never)).rejects.toBeInstanceOf(ValidationError);
    expect(await store.head()).toBe(before);
  });

  it('keeps a given event time and defaults it to the append time', async () => {
    await store.append('times', [{ type: 'T', data: {}, eventTime: '2020-01-02T03:04:05.000Z' }, ev('U')]);
    const [given, defaulted] = await store.readStream('times');
    expect(given!.eventTime.toISOString()).toBe('2020-01-02T03:04:05.000Z');
    expect(Math.abs(defaulted!.eventTime.getTime() - Date.now())).toBeLessThan(60_000);
  });
});

describe('reads', () => {
  it('reads a stream backwards from a version with a limit', async () => {
    await store.append('back', [ev('1'), ev('2'), ev('3'), ev('4')]);
    const events = await store.readStream('back', { direction: 'backwards', fromVersion: 3, limit: 2 });
    expect(events.map((e) => e.type)).toEqual(['3', '2']);
    const forwards = await store.readStream('back', { fromVersion: 2, limit: 2 });
    expect(forwards.map((e) => e.type)).toEqual(['2', '3']);
  });

  it('reads all events in position order with filters, and head() is the last visible one', async () => {
    await store.append('cat-a', [ev('Alpha'), ev('Beta')]);
    const last = await store.append('dog-a', [ev('Alpha')]);
    // A transaction open anywhere in the cluster can hold the append back from readers for a moment.
    const all = await waitFor(async () => {
      const page = await store.readAll(START, { limit: 10_000 });
      return page.events.at(-1)?.position === last.position ? page : undefined;
    });
    const positions = all.events.map((e) => e.position);
    expect([...positions].sort(comparePositions)).toEqual(positions);
    expect(await store.head()).toBe(positions.at(-1));

    const alphas = await store.readAll(START, { filter: { types: ['Alpha'] } });
    expect(alphas.events.map((e) => e.streamId)).toEqual(['cat-a', 'dog-a']);
    const cats = await store.readAll(START, { filter: { streamPrefixes: ['cat-'] } });
    expect(cats.events.map((e) => e.type)).toEqual(['Alpha', 'Beta']);
    const prefixed = await store.readAll(START, {
      filter: { typePrefixes: ['Be'], streamPrefixes: ['cat-'] },
    });
    expect(prefixed.events.map((e) => e.type)).toEqual(['Beta']);

    // Paging by `next` visits each event exactly once.
    const seen: string[] = [];
    let from = START;
    for (;;) {
      const page = await store.readAll(from, { limit: 3 });
      seen.push(...page.events.map((e) => e.eventId));
      if (page.next === from) break;
      from = page.next;
    }
    expect(seen).toEqual(all.events.map((e) => e.eventId));
  });

  it('positions are opaque strings that round-trip and reject garbage', async () => {
    const head = await store.head();
    const parts = parsePosition(head);
    expect(parts.globalPosition).toBeGreaterThan(0n);
    expect(() => parsePosition('not-a-position')).toThrow(ValidationError);
    await expect(store.readAll('1; drop table x' as never)).rejects.toBeInstanceOf(ValidationError);
  });
});
