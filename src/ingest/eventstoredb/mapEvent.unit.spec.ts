import { describe, expect, it } from 'vitest';
import { fakeEvent } from '../../../test/support/fakeEsdbFeed.js';
import { mapEvent, serverFilter } from './mapEvent.js';
import { resolveEventStoreDbSources } from './resolveEventStoreDbSources.js';
import type { EventStoreDbSourceConfig } from './types.js';

const settings = (config: Partial<EventStoreDbSourceConfig> = {}) =>
  resolveEventStoreDbSources({
    shop: { kind: 'eventstoredb', url: 'esdb://admin:changeit@localhost:2113?tls=false', ...config },
  })[0]!;

describe('mapEvent', () => {
  it('carries the id, type, data and metadata across, under the stream prefix, with the original position and time', () => {
    const mapped = mapEvent(settings(), fakeEvent(7));
    expect(mapped.kind).toBe('event');
    if (mapped.kind !== 'event') return;
    expect(mapped.event).toMatchObject({
      streamId: 'esdb-order-7',
      id: '00000000-0000-4000-8000-000000000007',
      idGiven: true,
      type: 'OrderPaid',
      eventTime: new Date(Date.UTC(2026, 0, 1) + 7000),
    });
    expect(JSON.parse(mapped.event.data)).toEqual({ n: 7 });
    expect(JSON.parse(mapped.event.metadata)).toEqual({
      correlationId: 'c-7',
      source: 'shop',
      esdb: {
        stream: 'order-7',
        eventId: '00000000-0000-4000-8000-000000000007',
        revision: '0',
        commit: '1700',
        prepare: '1700',
        created: '2026-01-01T00:00:07.000Z',
        contentType: 'application/json',
      },
    });
  });

  it('wraps data that is not a JSON object, and keeps binary metadata', () => {
    const data = (event: Parameters<typeof mapEvent>[1]) => {
      const mapped = mapEvent(settings({ streamPrefix: '' }), event);
      return mapped.kind === 'event' ? JSON.parse(mapped.event.data) : mapped.kind;
    };
    expect(data(fakeEvent(1, { data: [1, 2] }))).toEqual({ value: [1, 2] });
    expect(data(fakeEvent(1, { data: 'not json {' }))).toEqual({ text: 'not json {' });
    expect(data(fakeEvent(1, { isJson: false, data: new Uint8Array([1, 2, 255]) }))).toEqual({
      base64: 'AQL/',
    });
    const mapped = mapEvent(settings(), fakeEvent(1, { metadata: new Uint8Array([0]) }));
    expect(mapped.kind === 'event' && JSON.parse(mapped.event.metadata).esdb.metadataBase64).toBe('AA==');
  });

  it('skips system and link events unless asked, and keeps what cannot be a log event as rejected', () => {
    expect(mapEvent(settings(), fakeEvent(1, { type: '$statsCollected' })).kind).toBe('skip');
    expect(mapEvent(settings(), fakeEvent(1, { type: '$>', data: '3@order-1' })).kind).toBe('skip');
    expect(mapEvent(settings({ systemEvents: true }), fakeEvent(1, { type: '$statsCollected' })).kind).toBe(
      'event',
    );
    const link = mapEvent(
      settings({ linkEvents: true }),
      fakeEvent(1, { type: '$>', isJson: false, data: Buffer.from('3@order-1') }),
    );
    expect(link.kind).toBe('event');
    const rejected = mapEvent(settings(), fakeEvent(1, { streamId: 'x'.repeat(300) }));
    expect(rejected.kind).toBe('rejected');
    if (rejected.kind !== 'rejected') return;
    expect(rejected.event.streamId).toBe('tributary-rejected-shop');
    expect(rejected.reason).toMatch(/the stream id is 305 characters long/);
  });

  it('turns a deletion or truncation of a stream into a marker event in that stream', () => {
    const soft = mapEvent(
      settings(),
      fakeEvent(1, { streamId: '$$order-4', type: '$metadata', data: { $tb: 9.223372036854776e18 } }),
    );
    expect(soft).toMatchObject({
      kind: 'marker',
      ifKnown: false,
      event: { streamId: 'esdb-order-4', type: '$streamDeleted' },
    });
    expect(soft.kind === 'marker' && JSON.parse(soft.event.data)).toEqual({ stream: 'order-4', hard: false });
    const truncated = mapEvent(
      settings(),
      fakeEvent(1, { streamId: '$$order-4', type: '$metadata', data: { $tb: 12 } }),
    );
    expect(truncated.kind === 'marker' && JSON.parse(truncated.event.data)).toEqual({
      stream: 'order-4',
      truncateBefore: 12,
    });
    const hard = mapEvent(settings(), fakeEvent(1, { streamId: 'order-4', type: '$streamDeleted' }));
    expect(hard.kind === 'marker' && [hard.event.type, JSON.parse(hard.event.data)]).toEqual([
      '$streamDeleted',
      { stream: 'order-4', hard: true },
    ]);
    // Other stream settings are system events; deletions of streams outside a stream filter are skipped.
    expect(
      mapEvent(settings(), fakeEvent(1, { streamId: '$$order-4', type: '$metadata', data: { $maxAge: 60 } }))
        .kind,
    ).toBe('skip');
    const filtered = settings({ filter: { streamPrefixes: ['invoice-'] } });
    expect(
      mapEvent(filtered, fakeEvent(1, { streamId: '$$order-4', type: '$metadata', data: { $tb: 3 } })).kind,
    ).toBe('skip');
    const byType = settings({ filter: { eventTypePrefixes: ['Order'] } });
    expect(mapEvent(byType, fakeEvent(1, { streamId: 'order-4', type: '$streamDeleted' }))).toMatchObject({
      kind: 'marker',
      ifKnown: true,
    });
  });

  it('widens the server filter so that deletions of the selected streams come through', () => {
    expect(serverFilter(settings())).toEqual({
      on: 'eventType',
      regex: '^(?:[^$]|\\$metadata$|\\$streamDeleted$)',
    });
    expect(new RegExp(serverFilter(settings())!.regex!).test('$statsCollected')).toBe(false);
    expect(new RegExp(serverFilter(settings())!.regex!).test('$metadata')).toBe(true);
    expect(serverFilter(settings({ systemEvents: true }))).toBeNull();
    expect(serverFilter(settings({ filter: { streamPrefixes: ['order-'] } }))).toEqual({
      on: 'stream',
      prefixes: ['order-', '$$order-'],
    });
    expect(serverFilter(settings({ filter: { eventTypeRegex: '^Order' } }))).toEqual({
      on: 'eventType',
      regex: '(?:^Order)|^\\$metadata$|^\\$streamDeleted$',
    });
  });

  it('refuses a config it cannot use, saying what to write', () => {
    expect(() => settings({ url: 'kurrentdb://localhost:2113' })).toThrow(/EventStoreDB connection string/);
    expect(() => settings({ filter: { streamPrefixes: ['a'], eventTypeRegex: 'b' } })).toThrow(/exactly one/);
    expect(() => settings({ filter: { streamRegex: '(' } })).toThrow(/not a valid regular expression/);
    expect(settings().server).toBe('esdb://localhost:2113');
  });
});
