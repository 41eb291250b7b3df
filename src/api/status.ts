import type { Pool } from '../db/index.js';
import { TributaryError } from '../errors.js';
import type { ProjectionStatus } from '../projections/index.js';

export type { ProjectionStatus };

/** What the API shows of a change data capture source (a subset of the CDC module's status). */
export interface CaptureSourceStatus {
  source: string;
  slot: string;
  streamId: string;
  state: string;
  /** Source transactions captured into the log. */
  transactions: number;
  /** WAL bytes the source wrote that are not in the log yet. */
  lagBytes: number | null;
  lagSeconds: number | null;
  checkpointTime: Date | null;
  lastError: string | null;
  updatedAt: Date | null;
}

/** Where the `projections` and `sources` fields and the lag metrics get their figures. */
export interface StatusProvider {
  projections(): Promise<ProjectionStatus[]>;
  sources(): Promise<CaptureSourceStatus[]>;
}

export const READ_YOUR_WRITES_TIMEOUT = 'READ_YOUR_WRITES_TIMEOUT';

/**
 * Waits until every named projection (every registered one when `names` is undefined) has
 * a checkpoint at or past `position`.
 */
export async function waitForProjections(
  pool: Pool,
  names: readonly string[] | undefined,
  position: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let delay = 5;
  for (;;) {
    const { rows } = await pool.query<{ name: string; position: string }>(
      names
        ? 'select name, position from tributary.projections where name = any ($1::text[])'
        : 'select name, position from tributary.projections',
      names ? [names] : [],
    );
    const behind = rows.filter((row) => row.position < position).map((row) => row.name);
    const missing = names ? names.filter((name) => !rows.some((row) => row.name === name)) : [];
    if (rows.length > 0 && behind.length === 0 && missing.length === 0) return;
    if (Date.now() >= deadline || signal?.aborted) {
      throw new TributaryError(
        READ_YOUR_WRITES_TIMEOUT,
        `Projections had not reached position '${position}' after ${timeoutMs} ms (behind: ${[...behind, ...missing].join(', ') || 'none registered'}).`,
        { hint: 'Retry the query later, or check `projections` for a stopped or failing projection.' },
      );
    }
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 100);
  }
}
