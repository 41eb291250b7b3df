import { TributaryError } from '../../errors.js';

export const EventStoreDbErrorCodes = {
  SourceInvalid: 'ESDB_SOURCE_INVALID',
  CheckpointUnknown: 'ESDB_CHECKPOINT_UNKNOWN',
} as const;

/** The server refuses this source in a way only the user can fix (credentials, rights, the filter). */
export class EventStoreDbSourceError extends TributaryError {
  constructor(
    readonly source: string,
    message: string,
    options?: { hint?: string; cause?: unknown },
  ) {
    super(EventStoreDbErrorCodes.SourceInvalid, `Source '${source}': ${message}`, options);
  }
}

/**
 * The server does not hold the position this log's checkpoint names (it was wiped, restored
 * from an older backup, or is another server): resuming would skip or repeat events, so
 * capture of the source stops instead.
 */
export class EsdbCheckpointError extends TributaryError {
  constructor(
    readonly source: string,
    reason: string,
  ) {
    super(
      EventStoreDbErrorCodes.CheckpointUnknown,
      `Source '${source}': ${reason}. Resuming could skip or repeat events, so capture of this source is stopped.`,
      {
        hint: `If the server is the right one and its history was replaced on purpose, run \`tributary cdc drop ${source} --yes\` and restart: capture starts over from the beginning of $all (events already in the log are skipped by id only where they kept their ids).`,
      },
    );
  }
}
