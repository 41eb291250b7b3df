import { TributaryError } from '../../errors.js';

export const CdcErrorCodes = {
  SourceInvalid: 'CDC_SOURCE_INVALID',
  SlotLost: 'CDC_SLOT_LOST',
  Replication: 'CDC_REPLICATION_FAILED',
} as const;

/** A source's setup is wrong in a way only the user can fix (table, key, wal_level, rights). */
export class CdcSourceError extends TributaryError {
  constructor(
    readonly source: string,
    message: string,
    options?: { hint?: string; cause?: unknown },
  ) {
    super(CdcErrorCodes.SourceInvalid, `Source '${source}': ${message}`, options);
  }
}

/**
 * The slot that held this source's position is gone or invalidated: changes may have been
 * lost, so capture stops instead of quietly starting over from a new, empty slot.
 */
export class SlotLostError extends TributaryError {
  constructor(
    readonly source: string,
    readonly slot: string,
    reason: string,
  ) {
    super(
      CdcErrorCodes.SlotLost,
      `Source '${source}': replication slot '${slot}' ${reason}. Changes made since the last checkpoint may be lost, so capture of this source is stopped.`,
      {
        hint: `Run \`tributary cdc drop ${source} --yes\` and restart to take a new snapshot (the log keeps what was captured; the new snapshot starts with a truncate event per table).`,
      },
    );
  }
}

export const isSlotLostError = (error: unknown): error is SlotLostError => error instanceof SlotLostError;
