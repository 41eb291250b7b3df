import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { startEmbeddedPostgres } from '../src/db/index.js';
import { PG15_BIN } from './sourceVersions.js';

/**
 * Starts a PostgreSQL 15 server, with wal_level=logical, for the CDC tests to capture from
 * while the log stays on the run's main test server: capture must work against source
 * servers of other versions than the one it logs to.
 */
export default async function setup(project: TestProject) {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'tributary-pg15-'));
  await chmod(dataDir, 0o755); // as root the server runs as `postgres`, which must reach its data directory
  const server = await startEmbeddedPostgres({
    dataDir: path.join(dataDir, 'pgdata'),
    binDir: PG15_BIN,
    settings: { fsync: 'off', full_page_writes: 'off', synchronous_commit: 'off' },
  });
  project.provide('sourceAdminUrl', server.adminUrl);
  project.provide('sourceBinDir', PG15_BIN);
  return async () => {
    await server.stop();
    await rm(dataDir, { recursive: true, force: true });
  };
}
