import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { MigrationError } from '../errors.js';
import { quoteIdentifier } from './identifiers.js';
import { loadMigrations, migrate } from './migrations.js';

const adminUrl = inject('adminUrl');
const created: string[] = [];
let dir: string;

/** An empty database (not the migrated template). */
async function emptyDatabase(): Promise<string> {
  const name = `m_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`create database ${quoteIdentifier(name)}`);
  await admin.end();
  created.push(name);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

async function query<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

async function migrationsDir(files: Record<string, string>): Promise<string> {
  const target = await mkdtemp(path.join(dir, 'm-'));
  for (const [name, sql] of Object.entries(files)) await writeFile(path.join(target, name), sql);
  return target;
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'tributary-migrations-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  for (const name of created)
    await admin.query(`drop database if exists ${quoteIdentifier(name)} with (force)`);
  await admin.end();
});

describe('migrate', () => {
  it("applies Tributary's migrations once; a second run has nothing to do", async () => {
    const url = await emptyDatabase();
    const shipped = await loadMigrations();
    const first = await migrate(url);
    expect(first.applied.map((m) => m.version)).toEqual(shipped.map((m) => m.version));
    const second = await migrate(url);
    expect(second).toEqual({ applied: [], alreadyApplied: shipped.length });
    const rows = await query<{ version: number; checksum: string }>(
      url,
      'select version, checksum from tributary.schema_migrations order by version',
    );
    expect(rows).toEqual(shipped.map((m) => ({ version: m.version, checksum: m.checksum })));
  });

  it('is safe when several processes migrate the same database at once', async () => {
    const url = await emptyDatabase();
    // A slow migration keeps the race window wide open: without the lock, two runs apply it.
    const migrations = await migrationsDir({
      '0001_counter.sql':
        'create schema if not exists tributary; create table tributary.applied_runs (n int);',
      '0002_slow.sql': 'select pg_sleep(0.3); insert into tributary.applied_runs values (2);',
      '0003_more.sql': 'insert into tributary.applied_runs values (3);',
    });
    const results = await Promise.all(Array.from({ length: 4 }, () => migrate(url, { dir: migrations })));
    expect(results.flatMap((r) => r.applied.map((m) => m.version)).sort()).toEqual([1, 2, 3]);
    expect(await query<{ n: number }>(url, 'select n from tributary.applied_runs order by n')).toEqual([
      { n: 2 },
      { n: 3 },
    ]);
  });

  it('refuses an applied migration whose file was edited afterwards, applying nothing', async () => {
    const url = await emptyDatabase();
    const migrations = await migrationsDir({ '0001_table.sql': 'create table public.t (a int);' });
    await migrate(url, { dir: migrations });
    await writeFile(path.join(migrations, '0001_table.sql'), 'create table public.t (a int, b int);');
    await writeFile(path.join(migrations, '0002_next.sql'), 'create table public.u (a int);');
    const error = await migrate(url, { dir: migrations }).catch((e) => e);
    expect(error).toBeInstanceOf(MigrationError);
    expect(error.message).toMatch(/0001_table was edited after it was applied/);
    expect(error.describe()).toMatch(/add a new migration/);
    expect(await query(url, "select 1 from pg_tables where tablename = 'u'")).toHaveLength(0);
  });

  it('a failing migration leaves nothing of itself applied, and the next run retries it', async () => {
    const url = await emptyDatabase();
    const migrations = await migrationsDir({
      '0001_ok.sql': 'create table public.ok (a int);',
      '0002_bad.sql': 'create table public.half (a int); insert into public.half values (1); select 1 / 0;',
    });
    const error = await migrate(url, { dir: migrations }).catch((e) => e);
    expect(error).toBeInstanceOf(MigrationError);
    expect(error.message).toMatch(/0002_bad failed: division by zero/);
    expect(await query(url, "select 1 from pg_tables where tablename = 'half'")).toHaveLength(0);
    expect(await query(url, 'select version from tributary.schema_migrations')).toEqual([{ version: 1 }]);

    await writeFile(path.join(migrations, '0002_bad.sql'), 'create table public.half (a int);');
    const retried = await migrate(url, { dir: migrations });
    expect(retried.applied.map((m) => m.name)).toEqual(['bad']);
  });

  it('runs a file marked no-transaction outside a transaction, so CREATE INDEX CONCURRENTLY works', async () => {
    const url = await emptyDatabase();
    const migrations = await migrationsDir({
      '0001_table.sql': 'create table public.t (a int, b text);',
      '0002_index.sql': `-- tributary: no-transaction
-- A function body with semicolons stays one statement.
create function public.twice(x int) returns int language plpgsql immutable as $$
begin
  return x * 2;
end;
$$;
create index concurrently t_twice_idx on public.t (public.twice(a));
`,
    });
    const shipped = await loadMigrations(migrations);
    expect(shipped.map((m) => m.transaction)).toEqual([true, false]);
    await migrate(url, { dir: migrations });
    const indexes = await query<{ indisvalid: boolean }>(
      url,
      "select i.indisvalid from pg_index i join pg_class c on c.oid = i.indexrelid where c.relname = 't_twice_idx'",
    );
    expect(indexes).toEqual([{ indisvalid: true }]);
    expect(await query(url, 'select version from tributary.schema_migrations order by version')).toEqual([
      { version: 1 },
      { version: 2 },
    ]);
    // The same statement in an ordinary (transactional) migration is refused by PostgreSQL.
    const plain = await migrationsDir({
      '0001_index.sql': 'create table public.u (a int); create index concurrently u_idx on public.u (a);',
    });
    await expect(migrate(await emptyDatabase(), { dir: plain })).rejects.toThrow(
      /cannot run inside a transaction block/,
    );
  });

  it('rejects badly named or duplicate migration files with a clear error', async () => {
    await expect(loadMigrations(await migrationsDir({ 'add-table.sql': 'select 1;' }))).rejects.toThrow(
      /does not follow the NNNN_name.sql pattern/,
    );
    await expect(
      loadMigrations(await migrationsDir({ '0001_a.sql': 'select 1;', '0001_b.sql': 'select 1;' })),
    ).rejects.toBeInstanceOf(MigrationError);
  });
});
