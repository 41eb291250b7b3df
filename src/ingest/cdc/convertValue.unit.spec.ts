import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../errors.js';
import { BUILTIN_KINDS, convertValue, parseArray, TEXT, valueToJson } from './convertValue.js';
import { decodePgoutput, UNCHANGED_TOAST } from './pgoutputDecoder.js';
import { resolveSources } from './resolveSources.js';

const kind = (oid: number) => BUILTIN_KINDS.get(oid)!;

describe('convertValue', () => {
  it('keeps exact numbers as strings and converts the rest by type', () => {
    expect(convertValue('9223372036854775807', kind(20))).toBe('9223372036854775807');
    expect(convertValue('-0.000000000000000000001', kind(1700))).toBe('-0.000000000000000000001');
    expect(convertValue('NaN', kind(1700))).toBe('NaN');
    expect(convertValue('42', kind(23))).toBe(42);
    expect(convertValue('Infinity', kind(701))).toBe('Infinity');
    expect(convertValue('f', kind(16))).toBe(false);
    expect(convertValue('{"a": 1}', kind(3802))).toEqual({ a: 1 });
    expect(convertValue('\\x00ff', kind(17))).toBe('AP8=');
  });

  it('writes timestamps as ISO strings with their microseconds', () => {
    expect(convertValue('2024-01-02 03:04:05.000006+00', kind(1184))).toBe('2024-01-02T03:04:05.000006Z');
    expect(convertValue('2024-01-02 03:04:05+05:30', kind(1184))).toBe('2024-01-02T03:04:05+05:30');
    expect(convertValue('2024-01-02 03:04:05', kind(1114))).toBe('2024-01-02T03:04:05');
    expect(convertValue('infinity', kind(1184))).toBe('infinity');
    expect(convertValue('0044-03-15 12:00:00 BC', kind(1114))).toBe('0044-03-15 12:00:00 BC');
  });

  it('writes the same JSON straight from the text as converting first does', () => {
    const cases: Array<[string, number]> = [
      ['9223372036854775807', 20],
      ['-12.50', 1700],
      ['-42', 23],
      ['t', 16],
      ['false', 16],
      ['1.5e+300', 701],
      ['NaN', 701],
      ['a "quoted" \\ tab\there\nline', 25],
      ['{"b": [1, {"c": null}], "a": "x"}', 3802],
      ['[1, 2]', 114],
      ['2024-01-02 03:04:05.000006+00', 1184],
      ['\\x00ff', 17],
      ['{1,NULL,3}', 1007],
      ['{"a b",NULL}', 1009],
    ];
    for (const [text, oid] of cases) {
      expect(JSON.parse(valueToJson(text, kind(oid))), `${text} as ${oid}`).toEqual(
        convertValue(text, kind(oid)),
      );
    }
    // jsonb cannot hold \u0000: such a json value is carried as its text rather than fail the capture.
    expect(JSON.parse(valueToJson('{"a": "x\\u0000y"}', kind(114)))).toBe('{"a": "x\\u0000y"}');
  });

  it('parses array literals: quoting, escapes, NULL, nesting, empty', () => {
    expect(parseArray('{}', TEXT)).toEqual([]);
    expect(parseArray('{a,"b c","d\\"e","NULL",NULL}', TEXT)).toEqual(['a', 'b c', 'd"e', 'NULL', null]);
    expect(parseArray('{{1,2},{3,4}}', kind(23))).toEqual([
      [1, 2],
      [3, 4],
    ]);
    expect(parseArray('[0:1]={7,8}', kind(23))).toEqual([7, 8]);
    expect(parseArray('{"(1,2),(3,4)";"(5,6),(7,8)"}', TEXT, ';')).toEqual(['(1,2),(3,4)', '(5,6),(7,8)']);
    expect(convertValue('{9007199254740993}', kind(1016))).toEqual(['9007199254740993']);
  });
});

describe('decodePgoutput', () => {
  it('tells NULL, text and unchanged TOAST values apart', () => {
    const text = Buffer.from('hi');
    const message = Buffer.concat([
      Buffer.from('I'),
      Buffer.from([0, 0, 0x40, 0]), // relation oid 16384
      Buffer.from('N'),
      Buffer.from([0, 3]),
      Buffer.from('n'),
      Buffer.from('t'),
      Buffer.from([0, 0, 0, text.length]),
      text,
      Buffer.from('u'),
    ]);
    expect(decodePgoutput(message)).toEqual({
      tag: 'insert',
      relationOid: 16384,
      after: [null, 'hi', UNCHANGED_TOAST],
    });
  });
});

describe('resolveSources', () => {
  const base = { url: 'postgres://x/y', tables: ['public.orders'] };

  it('fills the defaults', () => {
    expect(resolveSources({ shop: base })).toEqual([
      {
        name: 'shop',
        url: 'postgres://x/y',
        tables: [{ schema: 'public', table: 'orders' }],
        outbox: [],
        watermarks: 'auto',
        signalTable: { schema: 'public', table: 'tributary_signals' },
        configuredSlot: undefined,
        configuredPublication: undefined,
        snapshot: 'initial',
        snapshotChunkSize: 5000,
        heartbeatIntervalMs: 0,
        retainedWalWarningBytes: 256 * 1024 * 1024,
        streamId: 'cdc-shop',
      },
    ]);
  });

  it('refuses tables that are not schema-qualified identifiers, with a hint', () => {
    expect(() => resolveSources({ shop: { ...base, tables: ['orders'] } })).toThrow(ConfigError);
    expect(() => resolveSources({ shop: { ...base, tables: ['public.orders; drop table x'] } })).toThrow(
      /not a schema-qualified table/,
    );
    expect(() => resolveSources({ 'bad-name': base })).toThrow(/not a valid identifier/);
    expect(() => resolveSources({ shop: { ...base, snapshot: 'sometimes' as 'never' } })).toThrow(/initial/);
    expect(() => resolveSources({ a: { ...base, slot: 'one' }, b: { ...base, slot: 'one' } })).toThrow(
      /same slot/,
    );
    expect(() => resolveSources({ shop: { ...base, retainedWalWarningBytes: -1 } })).toThrow(/retainedWal/);
    expect(() => resolveSources({ shop: { ...base, kind: 'mysql' as 'postgres' } })).toThrow(
      /kind is 'mysql'/,
    );
    expect(() => resolveSources({ shop: { ...base, watermarks: 'wal' as 'table' } })).toThrow(/watermarks/);
  });

  it('reads outbox tables, alone or beside captured tables, and refuses one that is also captured', () => {
    const outbox = { table: 'public.outbox', stream: 'aggregate_id', type: 'event_type', data: 'payload' };
    const [source] = resolveSources({ shop: { ...base, tables: [], outbox: { ...outbox, id: 'id' } } });
    expect(source!.outbox).toEqual([
      {
        schema: 'public',
        table: 'outbox',
        columns: { stream: 'aggregate_id', type: 'event_type', data: 'payload', id: 'id', metadata: null },
        streamPrefix: '',
      },
    ]);
    expect(() => resolveSources({ shop: { ...base, tables: ['public.outbox'], outbox } })).toThrow(
      /names 'public.outbox' twice/,
    );
    expect(() => resolveSources({ shop: { ...base, outbox: { ...outbox, data: 'Payload!' } } })).toThrow(
      /outbox\.data must name a column/,
    );
    expect(() => resolveSources({ shop: { ...base, tables: [] } })).toThrow(/or declare an outbox/);
  });
});
