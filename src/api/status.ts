import type { Pool } from '../db/index.js';
import { type CdcSourcesConfig, cdcStatus } from '../ingest/index.js';
import { getProjectionStatuses, type Projection, type ProjectionStatus } from '../projections/index.js';

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

/** Projections from their checkpoints, sources from the CDC status, unless `given` says otherwise. */
export function statusProvider(options: {
  pool: Pool;
  projections: readonly Projection[];
  sources: CdcSourcesConfig | undefined;
  given: Partial<StatusProvider> | undefined;
}): StatusProvider {
  const { pool, projections, sources, given } = options;
  return {
    projections: given?.projections ?? (() => getProjectionStatuses(pool, projections)),
    sources: given?.sources ?? (async () => (sources ? cdcStatus({ sources, db: pool }) : [])),
  };
}
