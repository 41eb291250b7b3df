import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import { quoteIdentifier } from '../../src/db/index.js';
import { pollUntil } from '../../src/sleep.js';

export interface TestDatabase {
  /** Connection string of a fresh, migrated database of its own. */
  url: string;
  name: string;
  /** Maintenance-database URL of the same server. */
  adminUrl: string;
  drop(): Promise<void>;
}

/** Runs `fn` on a connection to the test server's maintenance database. */
export async function withAdmin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: inject('adminUrl') });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/**
 * Drops `name`, forcing out whatever is still connected. Connections a test has closed may
 * still be leaving (pg's `pool.end()` resolves before its connections close): they get a few
 * seconds first, so the force ends only connections the test left open, which it names.
 */
async function dropDatabase(name: string): Promise<void> {
  await withAdmin(async (admin) => {
    let left: string[] = [];
    const gone = await pollUntil(
      async () => {
        const { rows } = await admin.query<{ app: string }>(
          'select application_name as app from pg_stat_activity where datname = $1',
          [name],
        );
        left = rows.map((row) => row.app);
        return left.length === 0;
      },
      { deadline: Date.now() + 3000, firstDelayMs: 20, maxDelayMs: 20 },
    );
    if (!gone) {
      console.warn(`dropping ${name} with connections still open: ${left.join(', ') || '(unnamed)'}`);
    }
    await admin.query(`drop database if exists ${quoteIdentifier(name)} with (force)`);
  });
}

/** Connection string of `database` on the test server. */
export function testServerUrl(database: string): string {
  const url = new URL(inject('adminUrl'));
  url.pathname = `/${database}`;
  return url.toString();
}

/** A fresh database copied from the run's migrated template; call once per spec file (in beforeAll). */
export async function createTestDatabase(): Promise<TestDatabase> {
  const template = inject('templateDatabase');
  const name = `t_${randomBytes(6).toString('hex')}`;
  await withAdmin((admin) =>
    admin.query(`create database ${quoteIdentifier(name)} template ${quoteIdentifier(template)}`),
  );
  return {
    url: testServerUrl(name),
    name,
    adminUrl: inject('adminUrl'),
    drop: () => dropDatabase(name),
  };
}

/** An empty, unmigrated database on the test server (for tests of `migrate` and the CLI). */
export async function createEmptyDatabase(prefix: string): Promise<TestDatabase> {
  const name = `${prefix}_${randomBytes(5).toString('hex')}`;
  await withAdmin((admin) => admin.query(`create database ${quoteIdentifier(name)}`));
  return {
    url: testServerUrl(name),
    name,
    adminUrl: inject('adminUrl'),
    drop: () => dropDatabase(name),
  };
}
