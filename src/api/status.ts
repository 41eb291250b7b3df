import type { Pool } from '../db/index.js';
import { TributaryError } from '../errors.js';
import { isPosition, readAll } from '../ingest/index.js';

export interface ProjectionStatus {
  name: string;
  version: number;
  state: string;
  /** Log position after the last applied event. */
  position: string;
  /** Seconds since the oldest event the projection has not applied yet was recorded; 0 when caught up. */
  lagSeconds: number | null;
  lastError: unknown;
  updatedAt: Date | null;
}

export interface SourceStatus {
  name: string;
  state: string;
  /** WAL bytes captured by the source but not yet in the log. */
  lagBytes: string | null;
  lagSeconds: number | null;
  lastError: unknown;
}

/** Where the `projections` and `sources` fields and the lag metrics get their figures. */
export interface StatusProvider {
  projections(): Promise<ProjectionStatus[]>;
  sources(): Promise<SourceStatus[]>;
}

/** Projection checkpoints from `tributary.projections`, lag measured against the log. */
export async function readProjectionStatus(pool: Pool): Promise<ProjectionStatus[]> {
  const { rows } = await pool.query<{
    name: string;
    version: number;
    state: string;
    position: string;
    last_error: unknown;
    updated_at: Date;
  }>(
    'select name, version, state, position, last_error, updated_at from tributary.projections order by name',
  );
  return Promise.all(
    rows.map(async (row) => {
      let lagSeconds: number | null = null;
      if (isPosition(row.position)) {
        const { events } = await readAll(pool, row.position, { limit: 1 });
        lagSeconds = events[0] ? Math.max(0, (Date.now() - events[0].recordedAt.getTime()) / 1000) : 0;
      }
      return {
        name: row.name,
        version: row.version,
        state: row.state,
        position: row.position,
        lagSeconds,
        lastError: row.last_error,
        updatedAt: row.updated_at,
      };
    }),
  );
}

export const READ_YOUR_WRITES_TIMEOUT = 'READ_YOUR_WRITES_TIMEOUT';

/**
 * Waits until every named projection (every known one when `names` is undefined) has a
 * checkpoint at or past `position`.
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
