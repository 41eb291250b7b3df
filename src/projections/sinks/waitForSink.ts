import type { Queryable } from '../../db/index.js';
import { TributaryError } from '../../errors.js';
import { pollUntil } from '../../sleep.js';
import { lastVisibleChange } from '../changelog/index.js';
import { READ_YOUR_WRITES_TIMEOUT, waitForProjections } from '../status.js';
import { loadSink } from './sinkState.js';
import type { ResolvedSink } from './types.js';

/**
 * Read-your-writes for search: returns once the projections behind the sink's view have
 * passed the log `position` and the sink has applied every change of the view those
 * projections had committed by then, so a search sees the writes up to `position`.
 * Waits at most `timeoutMs` in all, then throws READ_YOUR_WRITES_TIMEOUT saying what holds
 * it back.
 */
export async function waitForSink(
  pool: Queryable,
  sink: ResolvedSink,
  projections: readonly string[] | undefined,
  position: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  await waitForProjections(pool, projections, position, timeoutMs, signal);
  // The view's last change now: it was written by the batch that passed `position`, or later.
  const target = await lastVisibleChange(pool, sink.view.name);
  if (!target) return;
  let row: Awaited<ReturnType<typeof loadSink>>;
  const applied = await pollUntil(
    async () => {
      row = await loadSink(pool, sink.name);
      return Boolean(row?.position && row.position >= target);
    },
    { deadline, maxDelayMs: 50, signal },
  );
  if (applied) return;
  const why = !row?.lease_valid
    ? 'no process runs it (start `tributary start` or `dev` with this sink)'
    : row.paused
      ? `it is paused (\`tributary sinks resume ${sink.name}\`)`
      : row.last_error
        ? `its backend fails: ${row.last_error.message}`
        : 'it is behind';
  throw new TributaryError(
    READ_YOUR_WRITES_TIMEOUT,
    `Search sink '${sink.name}' had not applied the changes of '${sink.view.name}' up to position '${position}' after ${timeoutMs} ms: ${why}.`,
    {
      hint: 'Retry the search later, or search without minPosition; `tributary sinks status` shows its lag and last error.',
    },
  );
}
