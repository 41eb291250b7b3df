import { TributaryError } from '../../errors.js';

export const CdcErrorCodes = {
  SourceInvalid: 'CDC_SOURCE_INVALID',
  SlotLost: 'CDC_SLOT_LOST',
  SlotMismatch: 'CDC_SLOT_MISMATCH',
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

/**
 * The slot of that name is not the one this log created: another deployment (or client)
 * made it, read it, or replaced it. Reading it would skip changes, dropping it would take
 * someone else's, so capture of the source stops and the slot is left alone.
 */
export class SlotMismatchError extends TributaryError {
  constructor(
    readonly source: string,
    readonly slot: string,
    reason: string,
    hint: string,
  ) {
    super(CdcErrorCodes.SlotMismatch, `Source '${source}': replication slot '${slot}' ${reason}`, { hint });
  }
}

export const isSlotLostError = (error: unknown): error is SlotLostError => error instanceof SlotLostError;

/**
 * Errors that retrying cannot fix: the source's setup, a lost slot, someone else's slot, or
 * a role the source refuses. Capture stops on them (the CLI exits non-zero); anything else
 * (a dropped connection, a server restarting) is retried with backoff.
 */
export function isPermanentCaptureError(error: unknown): boolean {
  return (
    error instanceof CdcSourceError || error instanceof SlotLostError || error instanceof SlotMismatchError
  );
}
