import type { Queryable } from '../db/index.js';
import type { Envelope, Position } from '../ingest/index.js';
import type { BatchTransaction, FailurePolicy, Projection, RetryPolicy } from './defineProjection.js';
import type { ViewWriter } from './viewWriter.js';

/** Failed attempts per envelope position, kept by a worker across batches. */
export type FailureMemory = Map<string, { attempts: number; error: unknown }>;

export interface ApplyResult {
  /** Position after the last envelope whose effects stay in this transaction. */
  position: Position;
  applied: number;
  /** Envelopes dead-lettered in this transaction. */
  deadLettered: number;
  /** The stop policy applies to this envelope: commit up to it, then halt. */
  halt?: { envelope: Envelope; error: unknown; attempts: number };
  /** The transaction must roll back (its writes cannot be undone envelope by envelope). */
  rollback?: boolean;
  /** Wait this long before the next batch (a handler failed and will be retried). */
  retryAfterMs?: number;
  /** Earliest timer asked for by the handlers. */
  timer?: Date;
}

export interface ApplyOptions {
  projection: Projection;
  client: Queryable;
  writer: ViewWriter;
  failures: FailureMemory;
  /** The checkpoint the transaction starts from. */
  from: Position;
  now: Date;
  /** Stop taking envelopes once this much time has passed (the batch's time bound). @default no bound */
  deadline?: number;
  /** Where the read stopped when every envelope is applied (may be past the last one). */
  readNext: Position;
  /** Attempts per envelope before the failure policy applies. @default the projection's retry.maxAttempts (3) */
  maxAttempts?: number;
  /** The failure policy. @default the projection's onError ('stop') */
  policy?: FailurePolicy;
}

export function retryDelay(retry: RetryPolicy | undefined, attempts: number): number {
  const initial = retry?.initialDelayMs ?? 200;
  return Math.min(initial * 2 ** Math.max(0, attempts - 1), retry?.maxDelayMs ?? 5000);
}

export function batchTransaction(
  options: Pick<ApplyOptions, 'client' | 'writer' | 'now' | 'from'>,
  onTimer: (at: Date) => void,
): BatchTransaction {
  return {
    client: options.client,
    views: options.writer.ctx,
    now: options.now,
    position: options.from,
    flush: () => options.writer.flush(),
    scheduleTimer: onTimer,
  };
}

/**
 * Runs the projection's `onTimer` inside the caller's transaction (the view writes commit
 * with it, the checkpoint unchanged) and returns when it wants to run next: the earlier of
 * what it returned and what it asked for through `scheduleTimer`.
 */
export async function applyTimer(
  projection: Projection,
  options: Pick<ApplyOptions, 'client' | 'writer' | 'now' | 'from'>,
): Promise<Date | undefined> {
  options.writer.setPosition(options.from);
  let scheduled: Date | undefined;
  const tx = batchTransaction(options, (at) => {
    if (scheduled === undefined || at < scheduled) scheduled = at;
  });
  const next = await projection.onTimer!(options.now, tx);
  return next && scheduled ? (next < scheduled ? next : scheduled) : (next ?? scheduled);
}

/**
 * The one way envelopes reach a projection's handler: the runner, replay, dead-letter
 * retries and the testing kit all call it. Runs the handler over `envelopes` inside the caller's transaction, applying the
 * retry and failure policies. The caller commits the returned position with the
 * view writes (compare-and-set), or rolls back when told to.
 */
export async function applyEnvelopes(
  envelopes: readonly Envelope[],
  options: ApplyOptions,
): Promise<ApplyResult> {
  const { projection, writer, failures } = options;
  const maxAttempts = options.maxAttempts ?? projection.retry?.maxAttempts ?? 3;
  const policy = options.policy ?? projection.onError ?? 'stop';
  const deadline = options.deadline ?? Number.POSITIVE_INFINITY;
  let timer: Date | undefined;
  const tx = batchTransaction(options, (at) => {
    if (timer === undefined || at < timer) timer = at;
  });
  const withTimer = (result: ApplyResult): ApplyResult => (timer ? { ...result, timer } : result);

  if (projection.handleBatch) {
    const first = envelopes[0];
    if (!first) return { position: options.readNext, applied: 0, deadLettered: 0 };
    const known = failures.get(first.position);
    if (known && known.attempts >= maxAttempts && envelopes.length === 1) {
      if (policy === 'stop')
        return { position: options.from, applied: 0, deadLettered: 0, halt: { envelope: first, ...known } };
      await deadLetter(options, first, known.error, known.attempts);
      failures.delete(first.position);
      return { position: first.position, applied: 0, deadLettered: 1 };
    }
    writer.setPosition(envelopes.at(-1)!.position);
    try {
      await projection.handleBatch(envelopes, tx);
    } catch (error) {
      const attempts = (known?.attempts ?? 0) + 1;
      failures.set(first.position, { attempts, error });
      return {
        position: options.from,
        applied: 0,
        deadLettered: 0,
        rollback: true,
        retryAfterMs: attempts >= maxAttempts ? 0 : retryDelay(projection.retry, attempts),
      };
    }
    return withTimer({ position: options.readNext, applied: envelopes.length, deadLettered: 0 });
  }

  const handle = projection.handle!;
  let position = options.from;
  let applied = 0;
  let deadLettered = 0;
  for (let i = 0; i < envelopes.length; i++) {
    const envelope = envelopes[i]!;
    if (i > 0 && Date.now() >= deadline) return withTimer({ position, applied, deadLettered });
    const known = failures.get(envelope.position);
    if (known && known.attempts >= maxAttempts) {
      if (policy === 'stop') {
        return withTimer({ position, applied, deadLettered, halt: { envelope, ...known } });
      }
      await deadLetter(options, envelope, known.error, known.attempts);
      failures.delete(envelope.position);
      deadLettered++;
      position = envelope.position;
      continue;
    }
    writer.setPosition(envelope.position);
    writer.beginEvent();
    try {
      await handle(envelope, writer.ctx);
    } catch (error) {
      const attempts = (known?.attempts ?? 0) + 1;
      failures.set(envelope.position, { attempts, error });
      if (writer.flushedDuringEvent) {
        // Some of this envelope's writes already reached the tables: undo everything.
        return { position: options.from, applied: 0, deadLettered: 0, rollback: true, retryAfterMs: 0 };
      }
      writer.undoEvent();
      if (attempts >= maxAttempts) {
        i--; // the policy applies to this envelope right away
        continue;
      }
      return withTimer({
        position,
        applied,
        deadLettered,
        retryAfterMs: retryDelay(projection.retry, attempts),
      });
    }
    applied++;
    position = envelope.position;
  }
  return withTimer({ position: options.readNext, applied, deadLettered });
}

async function deadLetter(options: ApplyOptions, envelope: Envelope, error: unknown, attempts: number) {
  await options.client.query(
    `insert into tributary.dead_letters (projection, position, envelope, error, attempts)
     values ($1, $2, $3, $4, $5)
     on conflict (projection, position) do update
       set envelope = excluded.envelope, error = excluded.error, attempts = excluded.attempts, created_at = now()`,
    [
      options.projection.name,
      envelope.position,
      JSON.stringify(envelope),
      JSON.stringify(describeError(error)),
      attempts,
    ],
  );
}

export function describeError(error: unknown): { name: string; message: string; stack?: string } {
  if (error instanceof Error) {
    return { name: error.name, message: error.message, ...(error.stack ? { stack: error.stack } : {}) };
  }
  return { name: 'Error', message: String(error) };
}
