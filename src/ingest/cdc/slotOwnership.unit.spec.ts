import { describe, expect, it } from 'vitest';
import type { Checkpoint } from './checkpoints.js';
import { createSlotCommand, judgeSlot, type SlotClaim } from './slotOwnership.js';
import type { SlotInfo, SourceServer } from './sourceSetup.js';

const server: SourceServer = { version: 170000, systemId: '7311', database: 'shop' };
const slot = (confirmedLsn: string, extra: Partial<SlotInfo> = {}): SlotInfo => ({
  name: 's',
  active: false,
  activePid: null,
  plugin: 'pgoutput',
  database: 'shop',
  confirmedLsn,
  problem: null,
  walStatus: 'reserved',
  lagBytes: 0,
  retainedBytes: 0,
  safeWalSizeBytes: null,
  ...extra,
});
const claim = (extra: Partial<SlotClaim> = {}): SlotClaim => ({
  source: 'shop',
  slotName: 's',
  publicationName: 's',
  publicationCreated: true,
  sourceSystemId: '7311',
  sourceDatabase: 'shop',
  requestedLsn: '0/100',
  createdLsn: '0/180',
  ...extra,
});
const checkpoint = (extra: Partial<Checkpoint> = {}): Checkpoint => ({
  source: 'shop',
  slotName: 's',
  publicationName: 's',
  streamId: 'cdc-shop',
  startLsn: '0/180',
  snapshotRows: 0,
  commitLsn: '0/400',
  endLsn: '0/420',
  commitTime: new Date(),
  transactions: 3,
  confirmedLsn: '0/500',
  ...extra,
});

describe('whose slot it is', () => {
  it('with a checkpoint: this log’s while it is not confirmed past what the log recorded', () => {
    expect(judgeSlot({ slot: slot('0/500'), server, claim: claim(), checkpoint: checkpoint() })).toEqual({
      owned: true,
    });
    expect(judgeSlot({ slot: slot('0/420'), server, claim: claim(), checkpoint: checkpoint() }).owned).toBe(
      true,
    );
    const ahead = judgeSlot({ slot: slot('0/501'), server, claim: claim(), checkpoint: checkpoint() });
    expect(ahead).toMatchObject({
      owned: false,
      reason: expect.stringMatching(/read past .* 0\/501.* 0\/500/),
    });
  });

  it('with a checkpoint of an earlier version (nothing recorded): adopted, unless another database or plugin', () => {
    const legacy = checkpoint({ confirmedLsn: null });
    expect(judgeSlot({ slot: slot('9/0'), server, claim: undefined, checkpoint: legacy }).owned).toBe(true);
    expect(
      judgeSlot({ slot: slot('0/420', { database: 'other' }), server, claim: undefined, checkpoint: legacy })
        .owned,
    ).toBe(false);
    expect(
      judgeSlot({ slot: slot('0/420', { plugin: 'wal2json' }), server, claim: undefined, checkpoint: legacy })
        .owned,
    ).toBe(false);
  });

  it('made on another cluster than the source now is: not this one', () => {
    const verdict = judgeSlot({
      slot: slot('0/420'),
      server: { ...server, systemId: '9999' },
      claim: claim(),
      checkpoint: checkpoint(),
    });
    expect(verdict).toMatchObject({
      owned: false,
      reason: expect.stringMatching(/another PostgreSQL cluster/),
    });
  });

  it('without a checkpoint: this log’s only where it created it, or after it asked when the answer was lost', () => {
    expect(judgeSlot({ slot: slot('0/180'), server, claim: claim(), checkpoint: undefined }).owned).toBe(
      true,
    );
    expect(judgeSlot({ slot: slot('0/900'), server, claim: claim(), checkpoint: undefined }).owned).toBe(
      false,
    );
    const asked = claim({ createdLsn: null });
    expect(judgeSlot({ slot: slot('0/180'), server, claim: asked, checkpoint: undefined }).owned).toBe(true);
    expect(judgeSlot({ slot: slot('0/80'), server, claim: asked, checkpoint: undefined }).owned).toBe(false);
    const never = claim({ createdLsn: null, requestedLsn: null });
    expect(judgeSlot({ slot: slot('0/180'), server, claim: never, checkpoint: undefined })).toMatchObject({
      owned: false,
      reason: expect.stringMatching(/did not create it/),
    });
    expect(judgeSlot({ slot: slot('0/180'), server, claim: undefined, checkpoint: undefined }).owned).toBe(
      false,
    );
  });
});

describe('the slot creation command', () => {
  it('takes the parenthesised options from PostgreSQL 15 on, the bare keywords before', () => {
    expect(createSlotCommand(150000, 's', 'export')).toBe(
      `CREATE_REPLICATION_SLOT "s" LOGICAL pgoutput (SNAPSHOT 'export')`,
    );
    expect(createSlotCommand(180001, 's', 'nothing')).toBe(
      `CREATE_REPLICATION_SLOT "s" LOGICAL pgoutput (SNAPSHOT 'nothing')`,
    );
    expect(createSlotCommand(140011, 's', 'export')).toBe(
      'CREATE_REPLICATION_SLOT "s" LOGICAL pgoutput EXPORT_SNAPSHOT',
    );
    expect(createSlotCommand(130000, 's', 'nothing')).toBe(
      'CREATE_REPLICATION_SLOT "s" LOGICAL pgoutput NOEXPORT_SNAPSHOT',
    );
  });
});
