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
/**
 * A migration whose first line is this runs outside a transaction, so it may use statements
 * that refuse one (CREATE INDEX CONCURRENTLY on the log, which must not block appends). Such a
 * file should be one statement, or statements each safe to run again: a failure part-way leaves
 * what ran applied, and the next run starts the file over.
 */
export const NO_TRANSACTION_MARKER = '-- tributary: no-transaction';

export interface Migration {
  version: number;
  name: string;
  sql: string;
  checksum: string;
  /** Runs outside a transaction (first line NO_TRANSACTION_MARKER). */
  transaction: boolean;
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
      transaction: sql.split('\n', 1)[0]!.trim() !== NO_TRANSACTION_MARKER,
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
        if (migration.transaction) {
          await client.query('begin');
          await client.query(migration.sql);
        } else {
          // A multi-statement query string runs as one implicit transaction: send each
          // statement alone so that CONCURRENTLY is allowed.
          for (const statement of splitStatements(migration.sql)) await client.query(statement);
          await client.query('begin');
        }
        await client.query(
          'insert into tributary.schema_migrations (version, name, checksum) values ($1, $2, $3)',
          [migration.version, migration.name, migration.checksum],
        );
        await client.query('commit');
      } catch (cause) {
        await client.query('rollback').catch(() => {});
        throw new MigrationError(`Migration ${label} failed: ${(cause as Error).message}`, {
          hint: migration.transaction
            ? 'Nothing of this migration was applied; fix the cause and run `tributary migrate` again.'
            : 'This migration runs outside a transaction: statements before the failing one stay applied (an index built CONCURRENTLY may be left INVALID: drop it). Fix the cause and run `tributary migrate` again; the file runs from its start.',
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

/**
 * The statements of a no-transaction migration: split at semicolons that end a line, outside
 * dollar-quoted bodies (enough for the files Tributary ships; keep such files simple).
 */
export function splitStatements(sql: string): string[] {
  const statements: string[] = [];
  let current: string[] = [];
  let dollar: string | undefined;
  for (const line of sql.split('\n')) {
    current.push(line);
    for (const match of line.matchAll(/\$[a-z_]*\$/gi)) {
      if (dollar === undefined) dollar = match[0];
      else if (match[0] === dollar) dollar = undefined;
    }
    if (dollar === undefined && /;\s*(--.*)?$/.test(line)) {
      const statement = current.join('\n').trim();
      if (statement.replace(/--.*$/gm, '').trim()) statements.push(statement);
      current = [];
    }
  }
  const rest = current.join('\n').trim();
  if (rest.replace(/--.*$/gm, '').trim()) statements.push(rest);
  return statements;
}
