import type { Pool } from '../../db/index.js';
import type { Logger } from '../../logger.js';
import { type Checkpoint, recordConfirmable } from './checkpoints.js';
import { compareLsn, type Lsn } from './lsn.js';
import type { ReplicationStream } from './replicationStream.js';

export interface SlotConfirmation {
  /** The position the log has recorded: the furthest the slot may be told. */
  readonly recorded: Lsn;
  /** The position the slot was last told. */
  readonly confirmed: Lsn;
  /** A log transaction committed everything up to `endLsn`, with the checkpoint: tell the slot now. */
  committed(endLsn: Lsn): void;
  /**
   * The stream has passed `lsn` with nothing to capture (a transaction already in the log or
   * with no captured change, or an idle keepalive). The slot may move there once the log has
   * recorded it, provided nothing is in flight.
   */
  passed(lsn: Lsn): void;
  /** A keepalive asked for a reply: say where the slot stands. */
  reply(): void;
  /** Stops the status loop and tells the slot where it stands one last time. */
  stop(): void;
}

/**
 * What LSN the slot is confirmed at, and when. This is where data loss would come from, so
 * the rule lives here alone: the slot is never told more than the log has recorded.
 *
 * Three positions move forward: what the slot has been told (`confirmed`); what it may be
 * told once the log records it (`confirmable`: the position after transactions that had
 * nothing to capture, or of an idle keepalive); and what the log has recorded (`recorded`:
 * a commit's end with its checkpoint, or a confirmable position written on its own at most
 * once a second). A slot found confirmed further on a later start was read by someone else.
 * Every 100 ms the loop records what is confirmable and sends the recorded position, repeated
 * every 10 s even when it has not moved.
 */
export function createSlotConfirmation(options: {
  stream: Pick<ReplicationStream, 'sendStatus' | 'fail'>;
  pool: Pool;
  source: string;
  checkpoint: Checkpoint;
  /** Where the stream resumed: everything before it is in the log. */
  resumeFrom: Lsn;
  /** True when no source transaction and no log transaction is in flight. */
  idle: () => boolean;
  logger: Logger;
}): SlotConfirmation {
  const { stream, pool, source, resumeFrom, idle, logger } = options;
  let confirmed: Lsn = resumeFrom;
  const known = options.checkpoint.confirmedLsn;
  let recorded: Lsn = known !== null && compareLsn(known, resumeFrom) > 0 ? known : resumeFrom;
  let confirmable: Lsn = recorded;
  let recording = false;
  let lastRecordAt = 0;
  let lastStatusAt = 0;

  const sendStatus = (lsn: Lsn, force = false) => {
    const now = Date.now();
    if (!force && compareLsn(lsn, confirmed) <= 0 && now - lastStatusAt < 10_000) return;
    if (!stream.sendStatus(lsn, now)) return;
    confirmed = lsn;
    lastStatusAt = now;
  };
  const record = (target: Lsn) => {
    recording = true;
    lastRecordAt = Date.now();
    recordConfirmable(pool, source, target).then(
      () => {
        recording = false;
        if (compareLsn(target, recorded) > 0) recorded = target;
      },
      (error: unknown) => {
        recording = false; // the log is unreachable: the next tick tries again
        logger.debug('could not record the confirmable position', { error });
      },
    );
  };
  const timer = setInterval(() => {
    try {
      if (compareLsn(confirmable, recorded) > 0 && !recording && Date.now() - lastRecordAt >= 1000) {
        record(confirmable);
      }
      sendStatus(recorded);
    } catch (error) {
      stream.fail(error);
    }
  }, 100);

  return {
    get recorded() {
      return recorded;
    },
    get confirmed() {
      return confirmed;
    },
    committed(endLsn) {
      confirmable = endLsn;
      if (compareLsn(confirmable, recorded) > 0) recorded = confirmable; // recorded with the checkpoint
      sendStatus(recorded, true);
    },
    passed(lsn) {
      if (idle() && compareLsn(lsn, confirmable) > 0) confirmable = lsn;
    },
    reply() {
      sendStatus(recorded, true);
    },
    stop() {
      clearInterval(timer);
      try {
        sendStatus(recorded);
      } catch {
        // the connection is already gone
      }
    },
  };
}
