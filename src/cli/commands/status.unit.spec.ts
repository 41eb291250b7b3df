import { describe, expect, it } from 'vitest';
import type { ProjectionStatus } from '../../projections/index.js';
import { formatStatusTable } from './status.js';

const base: ProjectionStatus = {
  name: 'balances',
  state: 'running',
  version: 1,
  configuredVersion: 1,
  position: '0000000000000010-0000000000000020',
  lagEvents: 7,
  lagEstimated: false,
  lagSeconds: 1,
  eventsPerSecond: 0,
  eventsProcessed: 100,
  leaseOwner: 'a, b',
  lastError: undefined,
  deadLetters: 0,
  rebuild: undefined,
  updatedAt: undefined,
  partitionCount: 2,
  configuredPartitions: 2,
  needsRebuild: false,
  partitions: [0, 1].map((partition) => ({
    partition,
    state: 'running' as const,
    position: `00000000000000${partition}0-0000000000000020`,
    lagEvents: partition === 0 ? 3 : 4,
    lagEstimated: false,
    lagSeconds: 1,
    eventsPerSecond: 0,
    eventsProcessed: 50,
    leaseOwner: partition === 0 ? 'a' : 'b',
    lastError: undefined,
  })),
};

describe('tributary status', () => {
  it('lists the partitions of a partitioned projection under the table, each with its lag and owner', () => {
    const text = formatStatusTable([base]);
    expect(text).toMatch(/balances: 2 partitions/);
    expect(text).toMatch(/PARTITION\s+STATE\s+LAG/);
    expect(text).toMatch(/\n\s+0\s+running\s+3\s+1\s+0\s+a\s+0000000000000000-/);
    expect(text).toMatch(/\n\s+1\s+running\s+4\s+1\s+0\s+b\s+0000000000000010-/);
  });

  it('says needs-rebuild when the number of partitions changed', () => {
    const text = formatStatusTable([
      { ...base, configuredPartitions: 8, needsRebuild: true, partitions: undefined, partitionCount: 2 },
    ]);
    expect(text).toMatch(/running, needs-rebuild/);
    expect(text).toMatch(/1 \(partitions 2, config: 8\)/);
    expect(text).not.toMatch(/PARTITION/);
  });
});
