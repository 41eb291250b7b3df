import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { MigrationError } from '../errors.js';
import { type Logger, silentLogger } from '../logger.js';

/** Tributary's own migrations, shipped with the package. */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

const FILE_NAME = /^(\d{4})_([a-z0-9_]+)\.sql$/;
/** Arbitrary but fixed: every Tributary process migrating the same database takes this lock. */
const ADVISORY_LOCK_KEY = 7_140_011_900;

export interface Migration {
  version: number;
  name: string;
  sql: string;
  checksum: string;
}

export interface MigrateOptions {
  /** @default MIGRATIONS_DIR */
  dir?: string;
  logger?: Logger;
}

export interface MigrateResult {
  applied: Migration[];
  alreadyApplied: number;
}

export async function loadMigrations(dir: string = MIGRATIONS_DIR): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((file) => file.endsWith('.sql')).sort();
  const migrations: Migration[] = [];
  for (const file of files) {
    const match = FILE_NAME.exec(file);
    if (!match) {
      throw new MigrationError(`Migration file '${file}' does not follow the NNNN_name.sql pattern.`, {
        hint: 'Rename it, e.g. 0007_add_index.sql (lower case, digits and underscores).',
      });
    }
    const sql = await readFile(path.join(dir, file), 'utf8');
    const version = Number(match[1]);
    if (migrations.some((m) => m.version === version)) {
      throw new MigrationError(`Two migration files share version ${match[1]}.`, {
        hint: 'Renumber one of them.',
      });
    }
    migrations.push({
      version,
      name: match[2]!,
      sql,
      checksum: createHash('sha256').update(sql).digest('hex'),
    });
  }
  return migrations;
}

/**
 * Applies pending migrations, each in its own transaction. An advisory lock
 * serializes concurrent runs; an applied file whose content changed is refused.
 */
export async function migrate(
  connectionString: string,
  options: MigrateOptions = {},
): Promise<MigrateResult> {
  const logger = options.logger ?? silentLogger;
  const migrations = await loadMigrations(options.dir);
  const client = new pg.Client({ connectionString, application_name: 'tributary-migrate' });
  client.on('error', () => {});
  await client.connect();
  try {
    await client.query('select pg_advisory_lock($1)', [ADVISORY_LOCK_KEY]);
    await client.query('create schema if not exists tributary');
    await client.query(`create table if not exists tributary.schema_migrations (
      version integer primary key,
      name text not null,
      checksum text not null,
      applied_at timestamptz not null default now()
    )`);
    const { rows } = await client.query<{ version: number; name: string; checksum: string }>(
      'select version, name, checksum from tributary.schema_migrations order by version',
    );
    const applied = new Map(rows.map((row) => [row.version, row]));
    for (const [version, row] of applied) {
      const file = migrations.find((m) => m.version === version);
      if (file && file.checksum !== row.checksum) {
        throw new MigrationError(
          `Migration ${String(version).padStart(4, '0')}_${row.name} was edited after it was applied to this database.`,
          {
            hint: 'Never edit an applied migration: restore the original file and add a new migration with the change.',
          },
        );
      }
    }
    const done: Migration[] = [];
    for (const migration of migrations) {
      if (applied.has(migration.version)) continue;
      const label = `${String(migration.version).padStart(4, '0')}_${migration.name}`;
      try {
        await client.query('begin');
        await client.query(migration.sql);
        await client.query(
          'insert into tributary.schema_migrations (version, name, checksum) values ($1, $2, $3)',
          [migration.version, migration.name, migration.checksum],
        );
        await client.query('commit');
      } catch (cause) {
        await client.query('rollback').catch(() => {});
        throw new MigrationError(`Migration ${label} failed: ${(cause as Error).message}`, {
          hint: 'Nothing of this migration was applied; fix the cause and run `tributary migrate` again.',
          cause,
        });
      }
      logger.info('migration applied', { migration: label });
      done.push(migration);
    }
    return { applied: done, alreadyApplied: applied.size };
  } finally {
    await client.query('select pg_advisory_unlock($1)', [ADVISORY_LOCK_KEY]).catch(() => {});
    await client.end().catch(() => {});
  }
}
