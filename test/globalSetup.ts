import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { migrate, quoteIdentifier, startEmbeddedPostgres } from '../src/db/index.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Maintenance-database URL of the test server. */
    adminUrl: string;
    /** A migrated database that each spec file copies. */
    templateDatabase: string;
    /** Maintenance-database URL of a separate server to capture from (test/sourceServerSetup.ts). */
    sourceAdminUrl?: string;
    /** That server's bin directory (its tests start more servers of the same version). */
    sourceBinDir?: string;
  }
}

/**
 * One PostgreSQL server per test run, chosen in this order:
 * TRIBUTARY_TEST_DATABASE_URL or DATABASE_URL (an existing server; any database on it),
 * a testcontainers container where a container runtime is reachable
 * (TRIBUTARY_TEST_CONTAINERS=1 forces it, =0 disables it), else the embedded server.
 */
export default async function setup(project: TestProject) {
  const teardowns: Array<() => Promise<void>> = [];
  const adminUrl = await startServer(teardowns);

  // A per-run template, so concurrent runs against one server do not collide.
  const templateDatabase = `tributary_tpl_${process.pid}_${Date.now().toString(36)}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`create database ${quoteIdentifier(templateDatabase)}`);
  await admin.end();
  await migrate(withDatabase(adminUrl, templateDatabase));
  teardowns.unshift(async () => {
    const client = new pg.Client({ connectionString: adminUrl });
    await client.connect();
    await client.query(`drop database if exists ${quoteIdentifier(templateDatabase)} with (force)`);
    await client.end();
  });

  project.provide('adminUrl', adminUrl);
  project.provide('templateDatabase', templateDatabase);

  return async () => {
    for (const teardown of teardowns)
      await teardown().catch((error) => console.error('test teardown:', error));
  };
}

async function startServer(teardowns: Array<() => Promise<void>>): Promise<string> {
  const external = process.env.TRIBUTARY_TEST_DATABASE_URL ?? process.env.DATABASE_URL;
  if (external) return withDatabase(external, 'postgres');

  if (
    process.env.TRIBUTARY_TEST_CONTAINERS === '1' ||
    (process.env.TRIBUTARY_TEST_CONTAINERS !== '0' && hasContainerRuntime())
  ) {
    const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
    const container = await new PostgreSqlContainer('postgres:17')
      .withCommand([
        'postgres',
        '-c',
        'wal_level=logical',
        '-c',
        'max_replication_slots=32',
        '-c',
        'fsync=off',
      ])
      .start();
    teardowns.push(async () => {
      await container.stop();
    });
    return withDatabase(container.getConnectionUri(), 'postgres');
  }

  const dataDir = await mkdtemp(path.join(tmpdir(), 'tributary-test-'));
  await chmod(dataDir, 0o755); // as root the server runs as `postgres`, which must reach its data directory
  const server = await startEmbeddedPostgres({
    dataDir: path.join(dataDir, 'pgdata'),
    // A throwaway cluster: durability buys nothing here and costs a lot of time.
    settings: { fsync: 'off', full_page_writes: 'off', synchronous_commit: 'off' },
  });
  teardowns.push(async () => {
    await server.stop();
    await rm(dataDir, { recursive: true, force: true });
  });
  return server.adminUrl;
}

function hasContainerRuntime(): boolean {
  if (process.env.DOCKER_HOST) return true;
  return (
    existsSync('/var/run/docker.sock') ||
    existsSync(path.join(process.env.XDG_RUNTIME_DIR ?? '/nonexistent', 'docker.sock'))
  );
}

export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}
