import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';
import { createPool, type Pool } from '../../src/db/index.js';
import { createSourceDatabase, type SourceDatabase } from './cdcSource.js';
import { createTestDatabase, type TestDatabase } from './database.js';
import { waitFor } from './waitFor.js';

/** What a capture spec file works with. */
export interface CaptureSpec {
  /** The log database, and a pool on it. */
  db: TestDatabase;
  pool: Pool;
  /** The source database, and a client on it. */
  src: SourceDatabase;
  source: pg.Client;
  /** A folder for config files. */
  dir: string;
}

/**
 * Makes the spec file's databases before its tests and drops them after: `setup` receives
 * them once they exist; `captures` (those its tests started) are stopped first.
 */
export function captureSpec(
  setup: (spec: CaptureSpec) => unknown,
  captures: readonly { stop(): Promise<void> }[] = [],
): void {
  let spec: CaptureSpec | undefined;
  beforeAll(async () => {
    const db = await createTestDatabase();
    const pool = createPool(db.url);
    const src = await createSourceDatabase();
    const source = new pg.Client({ connectionString: src.url });
    await source.connect();
    const dir = await mkdtemp(path.join(tmpdir(), 'tributary-cdc-'));
    spec = { db, pool, src, source, dir };
    await setup(spec);
  });
  afterAll(async () => {
    for (const capture of captures) await capture.stop();
    if (spec === undefined) return;
    await spec.source.end();
    await spec.pool.end();
    await spec.src.drop();
    await spec.db.drop();
    await rm(spec.dir, { recursive: true, force: true });
  });
}

/** Waits until every source of the capture is streaming. */
export async function streaming(running: { status(): readonly { state: string }[] }): Promise<void> {
  await waitFor(() => running.status().every((s) => s.state === 'streaming'), {
    timeoutMs: 30_000,
    what: () => `streaming (status: ${JSON.stringify(running.status())})`,
  });
}
