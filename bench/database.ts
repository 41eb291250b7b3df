import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { quoteIdentifier, startEmbeddedPostgres } from '../src/db/index.js';

/**
 * A fresh database for one benchmark: on DATABASE_URL's server when set, else on a new
 * embedded server (fsync off, plus `settings`) in a temporary directory. `close()` drops it
 * (and stops the server).
 */
export async function openBenchDatabase(
  name: string,
  options: { settings?: Record<string, string> } = {},
): Promise<{ url: string; close(): Promise<void> }> {
  const external = process.env.DATABASE_URL;
  const database = `bench_${name}_${Date.now().toString(36)}`;
  let adminUrl: string;
  let stopServer = async () => {};
  if (external) {
    adminUrl = external;
  } else {
    const dir = await mkdtemp(path.join(tmpdir(), `tributary-bench-${name}-`));
    await chmod(dir, 0o755);
    const server = await startEmbeddedPostgres({
      dataDir: path.join(dir, 'pgdata'),
      settings: { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off', ...options.settings },
    });
    adminUrl = server.adminUrl;
    stopServer = async () => {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    };
  }
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`create database ${quoteIdentifier(database)}`);
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = `/${database}`;
  return {
    url: url.toString(),
    async close() {
      const client = new pg.Client({ connectionString: adminUrl });
      await client.connect();
      await client.query(`drop database if exists ${quoteIdentifier(database)} with (force)`);
      await client.end();
      await stopServer();
    },
  };
}
