import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import { quoteIdentifier } from '../../src/db/index.js';

export interface TestDatabase {
  /** Connection string of a fresh, migrated database of its own. */
  url: string;
  name: string;
  /** Maintenance-database URL of the same server. */
  adminUrl: string;
  drop(): Promise<void>;
}

/** A fresh database copied from the run's migrated template; call once per spec file (in beforeAll). */
export async function createTestDatabase(): Promise<TestDatabase> {
  const adminUrl = inject('adminUrl');
  const template = inject('templateDatabase');
  const name = `t_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`create database ${quoteIdentifier(name)} template ${quoteIdentifier(template)}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    adminUrl,
    async drop() {
      const client = new pg.Client({ connectionString: adminUrl });
      await client.connect();
      try {
        await client.query(`drop database if exists ${quoteIdentifier(name)} with (force)`);
      } finally {
        await client.end();
      }
    },
  };
}
