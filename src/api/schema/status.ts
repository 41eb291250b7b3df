import type { StatusProvider } from '../status.js';
import type { Builder } from './builder.js';
import { type SchemaOptions, scoped } from './context.js';

/** `projections` and `sources`: checkpoints, state and lag. */
export function statusFields(builder: Builder, options: SchemaOptions): void {
  type Status = Awaited<ReturnType<StatusProvider['projections']>>[number];
  const partitionStatus = builder
    .objectRef<NonNullable<Status['partitions']>[number]>('ProjectionPartitionStatus')
    .implement({
      description: 'One partition of a partitioned projection: its own checkpoint, lag and lease.',
      fields: (t) => ({
        partition: t.exposeInt('partition'),
        state: t.exposeString('state', { description: 'running or failed.' }),
        position: t.exposeString('position', { description: 'Log position after its last applied event.' }),
        lagEvents: t.exposeInt('lagEvents'),
        lagEstimated: t.exposeBoolean('lagEstimated'),
        lagSeconds: t.exposeFloat('lagSeconds'),
        eventsPerSecond: t.exposeFloat('eventsPerSecond'),
        eventsProcessed: t.exposeInt('eventsProcessed'),
        leaseOwner: t.exposeString('leaseOwner', { nullable: true }),
        lastError: t.field({ type: 'JSON', nullable: true, resolve: (p) => publicError(p.lastError) }),
      }),
    });
  const projectionStatus = builder
    .objectRef<Awaited<ReturnType<StatusProvider['projections']>>[number]>('ProjectionStatus')
    .implement({
      fields: (t) => ({
        name: t.exposeString('name'),
        state: t.exposeString('state', { description: 'running, failed or unregistered.' }),
        version: t.exposeInt('version', { nullable: true, description: 'Version the live views hold.' }),
        configuredVersion: t.exposeInt('configuredVersion', { nullable: true }),
        position: t.exposeString('position', { description: 'Log position after the last applied event.' }),
        lagEvents: t.exposeInt('lagEvents', {
          description: 'Events still to apply; beyond 10,000 an estimate from log positions (lagEstimated).',
        }),
        lagEstimated: t.exposeBoolean('lagEstimated'),
        lagSeconds: t.exposeFloat('lagSeconds'),
        eventsPerSecond: t.exposeFloat('eventsPerSecond'),
        eventsProcessed: t.exposeInt('eventsProcessed'),
        deadLetters: t.exposeInt('deadLetters'),
        leaseOwner: t.exposeString('leaseOwner', { nullable: true }),
        lastError: t.field({
          type: 'JSON',
          nullable: true,
          description:
            'The last failure: its message, code and the event it stopped at (stacks stay in the server log).',
          resolve: (p) => publicError(p.lastError),
        }),
        rebuild: t.field({ type: 'JSON', nullable: true, resolve: (p) => p.rebuild ?? null }),
        updatedAt: t.field({ type: 'DateTime', nullable: true, resolve: (p) => p.updatedAt ?? null }),
        partitionCount: t.exposeInt('partitionCount', {
          nullable: true,
          description: 'Partitions the checkpoints are split by in the database (1: not partitioned).',
        }),
        configuredPartitions: t.exposeInt('configuredPartitions'),
        needsRebuild: t.exposeBoolean('needsRebuild', {
          description:
            'The config asks for another version or number of partitions: run `tributary rebuild`.',
        }),
        partitions: t.field({
          type: [partitionStatus],
          nullable: true,
          description: 'Each partition of a partitioned projection; null when it is not partitioned.',
          resolve: (p) => p.partitions ?? null,
        }),
      }),
    });
  const sourceStatus = builder
    .objectRef<Awaited<ReturnType<StatusProvider['sources']>>[number]>('SourceStatus')
    .implement({
      fields: (t) => ({
        source: t.exposeString('source'),
        slot: t.exposeString('slot'),
        streamId: t.exposeString('streamId', { description: 'Log stream the captured changes go to.' }),
        state: t.exposeString('state'),
        transactions: t.exposeInt('transactions'),
        lagBytes: t.field({
          type: 'BigInt',
          nullable: true,
          resolve: (s) => (s.lagBytes === null ? null : String(s.lagBytes)),
        }),
        lagSeconds: t.exposeFloat('lagSeconds', { nullable: true }),
        checkpointTime: t.field({ type: 'DateTime', nullable: true, resolve: (s) => s.checkpointTime }),
        lastError: t.exposeString('lastError', { nullable: true }),
        updatedAt: t.field({ type: 'DateTime', nullable: true, resolve: (s) => s.updatedAt }),
      }),
    });
  builder.queryField('projections', (t) =>
    t.field({
      type: [projectionStatus],
      description: 'Checkpoint, state and lag of every projection.',
      resolve: scoped('read', () => options.status.projections()),
    }),
  );
  builder.queryField('sources', (t) =>
    t.field({
      type: [sourceStatus],
      description: 'State and lag of every change data capture source.',
      resolve: scoped('read', () => options.status.sources()),
    }),
  );
}

/** The facts of a recorded failure a caller may see: never its stack or cause. */
function publicError(error: unknown): Record<string, unknown> | null {
  if (error === null || typeof error !== 'object') return null;
  const shown: Record<string, unknown> = {};
  for (const fact of [
    'message',
    'code',
    'name',
    'at',
    'position',
    'eventId',
    'eventType',
    'streamId',
    'attempts',
  ]) {
    const value = (error as Record<string, unknown>)[fact];
    if (value !== undefined) shown[fact] = value;
  }
  return shown;
}
