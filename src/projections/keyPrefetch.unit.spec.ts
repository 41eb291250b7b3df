import { describe, expect, it } from 'vitest';
import type { Envelope, JsonObject } from '../ingest/index.js';
import { defineProjection, defineView } from './index.js';
import { keysToPrefetch, learnFromMisses } from './keyPrefetch.js';

const balances = defineView({
  name: 'balances',
  columns: { account: { type: 'text' }, balance: { type: 'bigint', nullable: false } },
  primaryKey: ['account'],
});
const transfers = defineView({
  name: 'transfers',
  columns: { from: { type: 'text' }, to: { type: 'text' }, count: { type: 'bigint', nullable: false } },
  primaryKey: ['from', 'to'],
});

let sequence = 0;
const envelope = (type: string, data: JsonObject, streamId = 'stream-1'): Envelope => {
  sequence++;
  return {
    position: sequence.toString(16).padStart(16, '0'),
    streamId,
    streamPosition: sequence,
    eventId: `e-${sequence}`,
    type,
    data,
    metadata: {},
    eventTime: new Date(0),
    recordedAt: new Date(0),
  };
};

/** A projection that has learned, from the misses given, where its keys are. */
function learned(misses: Array<[Envelope, Array<{ view: string; key: Record<string, unknown> }>]>) {
  const projection = defineProjection({
    name: `learner_${sequence}`,
    version: 1,
    views: [balances, transfers],
    async handle() {},
  });
  for (const [taught, keys] of misses) learnFromMisses(projection, taught, keys);
  return projection;
}

describe('keysToPrefetch, from the paths learned on misses', () => {
  it('gives the key at the learned path of each later envelope, and none where the value is missing', () => {
    const projection = learned([
      [envelope('Deposited', { account: 'a1', amount: 5 }), [{ view: 'balances', key: { account: 'a1' } }]],
    ]);
    const keys = keysToPrefetch(projection, [
      envelope('Deposited', { account: 'a2', amount: 1 }),
      envelope('Deposited', { amount: 1 }),
      envelope('Withdrawn', { account: 'a3' }),
      envelope('Deposited', { account: 'a4', amount: 1 }),
    ]);
    expect(keys).toEqual(new Map([['balances', [{ account: 'a2' }, { account: 'a4' }]]]));
  });

  it('gives one key per distinct value when a column was found at more than one path', () => {
    // The key's value appeared twice in the envelope that taught it: both paths are kept.
    const projection = learned([
      [
        envelope('Moved', { account: 'a1', owner: { account: 'a1' } }),
        [{ view: 'balances', key: { account: 'a1' } }],
      ],
    ]);
    const keys = keysToPrefetch(projection, [
      envelope('Moved', { account: 'a2', owner: { account: 'a2' } }),
      envelope('Moved', { account: 'a3', owner: { account: 'a4' } }),
      envelope('Moved', { owner: { account: 'a5' } }),
    ]);
    expect(keys.get('balances')).toEqual([
      { account: 'a2' },
      { account: 'a3' },
      { account: 'a4' },
      { account: 'a5' },
    ]);
  });

  it('combines the values of every key column of a composite key', () => {
    const projection = learned([
      [envelope('Sent', { from: 'x', to: 'y' }), [{ view: 'transfers', key: { from: 'x', to: 'y' } }]],
    ]);
    const keys = keysToPrefetch(projection, [
      envelope('Sent', { from: 'p', to: 'q' }),
      envelope('Sent', { from: 'r' }),
    ]);
    expect(keys).toEqual(new Map([['transfers', [{ from: 'p', to: 'q' }]]]));
  });

  it('finds a key in the stream id', () => {
    const projection = learned([
      [envelope('Opened', {}, 'a9'), [{ view: 'balances', key: { account: 'a9' } }]],
    ]);
    expect(keysToPrefetch(projection, [envelope('Opened', {}, 'a7')]).get('balances')).toEqual([
      { account: 'a7' },
    ]);
  });
});
