import { StreamOrderConflictError } from '../../errors.js';

/**
 * The rule that keeps each stream in stream order for readers lives in the database
 * (migrations/0022_stream_order.sql): a transaction that began writing before another one
 * appended to the same stream and committed may not append to it. This turns its refusal,
 * whichever writer met it, into the typed error.
 */
export function translateStreamOrder(error: unknown): unknown {
  const pgError = error as { code?: string; constraint?: string; detail?: string };
  if (pgError?.code === '40001' && pgError.constraint === 'streams_keep_order') {
    return new StreamOrderConflictError(pgError.detail, error);
  }
  return error;
}

/**
 * Runs an append that is its own transaction again when the stream-order rule refused it: the
 * new transaction's id is newer than any committed one, so a second attempt only fails if yet
 * another transaction raced it.
 */
export async function retryStreamOrder<T>(append: () => Promise<T>, attempts = 5): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await append();
    } catch (error) {
      if (!(error instanceof StreamOrderConflictError) || attempt >= attempts) throw error;
    }
  }
}
