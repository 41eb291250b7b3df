import { TributaryError } from '../errors.js';

export const ProjectionErrorCodes = {
  DefinitionChanged: 'PROJECTION_DEFINITION_CHANGED',
  Failed: 'PROJECTION_FAILED',
  Handler: 'PROJECTION_HANDLER_FAILED',
  ReplayNotSafe: 'REPLAY_NOT_SAFE',
  NotPartitionable: 'PROJECTION_NOT_PARTITIONABLE',
} as const;

/** A view definition changed while the projection's version stayed the same. */
export class ProjectionDefinitionChangedError extends TributaryError {
  constructor(
    readonly projection: string,
    readonly version: number,
  ) {
    super(
      ProjectionErrorCodes.DefinitionChanged,
      `The views of projection '${projection}' changed, but its version is still ${version}.`,
      {
        hint: `Bump its version (to ${version + 1}) and run \`tributary rebuild ${projection}\`; or restore the previous view definitions.`,
      },
    );
  }
}

/** A handler threw; carries where, so the error names the event. */
export class ProjectionHandlerError extends TributaryError {
  constructor(
    readonly projection: string,
    readonly position: string,
    readonly eventType: string,
    cause: unknown,
  ) {
    super(
      ProjectionErrorCodes.Handler,
      `Projection '${projection}' failed on a '${eventType}' event at ${position}: ${cause instanceof Error ? cause.message : String(cause)}`,
      {
        cause,
        hint: `Fix the handler and restart, or dead-letter the event (see \`tributary deadletters\`).`,
      },
    );
  }
}

/** The projection is halted (stop policy) or cannot run in this process. */
export class ProjectionFailedError extends TributaryError {
  constructor(message: string, options?: { hint?: string; cause?: unknown }) {
    super(ProjectionErrorCodes.Failed, message, options);
  }
}

/**
 * A replay was asked of a projection that does not declare `replay: 'idempotent'`:
 * re-delivering events its views already hold would apply them twice (a counter that
 * adds would add again).
 */
export class ReplayNotSafeError extends TributaryError {
  constructor(
    readonly projection: string,
    readonly declared: 'unsafe' | undefined,
  ) {
    super(
      ProjectionErrorCodes.ReplayNotSafe,
      declared === 'unsafe'
        ? `Projection '${projection}' declares replay: 'unsafe': replaying would apply events its views already hold a second time.`
        : `Projection '${projection}' does not declare replay: 'idempotent', so replaying could apply events its views already hold a second time (a handler that adds would add again).`,
      {
        hint: `Run \`tributary rebuild ${projection}\` to recompute its views from the log. If its handler gives the same views when an event comes again, declare replay: 'idempotent' in defineProjection, or pass --force.`,
      },
    );
  }
}

/**
 * A projection asks for partitions but does something that cannot be split by key: its
 * partitions would read or write the same state, or its result would depend on the order
 * across partitions (batch handlers, windows, timers, SQL projections, keyed state).
 */
export class NotPartitionableError extends TributaryError {
  constructor(
    readonly projection: string,
    readonly reason: string,
    hint?: string,
  ) {
    super(
      ProjectionErrorCodes.NotPartitionable,
      `Projection '${projection}' cannot be partitioned: ${reason}`,
      {
        hint:
          hint ??
          'Leave out `partitions` (one partition), or write the projection with `handle`, writing only view rows whose keys are determined by the partition key.',
      },
    );
  }
}
