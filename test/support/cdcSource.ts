import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import { quoteIdentifier } from '../../src/db/index.js';
import { type Envelope, type JsonObject, readStream } from '../../src/ingest/index.js';

/**
 * Maintenance-database URL of the server the CDC tests capture from: the test server
 * itself, or, in the `pg15-source` test project, a PostgreSQL 15 server of its own
 * (test/sourceServerSetup.ts) while the log stays on the test server.
 */
export function sourceAdminUrl(): string {
  return inject('sourceAdminUrl') ?? inject('adminUrl');
}

/** The `bin` directory of the source server when it is not the embedded one (else undefined). */
export function sourceBinDir(): string | undefined {
  return inject('sourceBinDir');
}

/** Connection string of `database` on the source server. */
export function sourceServerUrl(database: string): string {
  const url = new URL(sourceAdminUrl());
  url.pathname = `/${database}`;
  return url.toString();
}

/** Runs `fn` on a connection to the source server's maintenance database. */
export async function withSourceAdmin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: sourceAdminUrl() });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export interface SourceDatabase {
  url: string;
  name: string;
  /** A unique suffix for slot and publication names. */
  tag: string;
  drop(): Promise<void>;
}

/** A separate database on the source server to capture from; drop() removes its slots first. */
export async function createSourceDatabase(): Promise<SourceDatabase> {
  const tag = randomBytes(4).toString('hex');
  const name = `src_${tag}`;
  await withSourceAdmin((admin) => admin.query(`create database ${quoteIdentifier(name)}`));
  return {
    url: sourceServerUrl(name),
    name,
    tag,
    drop: () =>
      withSourceAdmin(async (client) => {
        for (let attempt = 0; attempt < 50; attempt++) {
          await client.query(
            `select pg_terminate_backend(active_pid) from pg_replication_slots where database = $1 and active_pid is not null`,
            [name],
          );
          const { rows } = await client.query<{ slot_name: string }>(
            'select slot_name from pg_replication_slots where database = $1 and not active',
            [name],
          );
          for (const row of rows)
            await client.query('select pg_drop_replication_slot($1)', [row.slot_name]).catch(() => {});
          const { rowCount } = await client.query('select 1 from pg_replication_slots where database = $1', [
            name,
          ]);
          if (!rowCount) break;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        await client.query(`drop database if exists ${quoteIdentifier(name)} with (force)`);
      }),
  };
}

/** Every event of a stream, in stream order. */
export async function readWholeStream(db: pg.Pool | pg.Client, streamId: string): Promise<Envelope[]> {
  const out: Envelope[] = [];
  while (true) {
    const page = await readStream(db, streamId, { fromVersion: out.length + 1, limit: 5000 });
    out.push(...page);
    if (page.length < 5000) return out;
  }
}

/** Folds captured changes into table → (key JSON → row), as a projection would. */
export function foldChanges(events: readonly Envelope[]): Map<string, Map<string, JsonObject>> {
  const tables = new Map<string, Map<string, JsonObject>>();
  for (const event of events) {
    const parts = event.type.split('.');
    const op = parts.pop()!;
    const table = parts.join('.');
    let rows = tables.get(table);
    if (rows === undefined) {
      rows = new Map();
      tables.set(table, rows);
    }
    const data = event.data as {
      key: JsonObject | null;
      before: JsonObject | null;
      after: JsonObject | null;
    };
    if (op === 'truncate') {
      rows.clear();
      continue;
    }
    if (op === 'delete') {
      rows.delete(JSON.stringify(data.key));
      continue;
    }
    if (op === 'update' && data.before !== null) {
      // A key change: the row moves.
      const oldKey = Object.fromEntries(Object.keys(data.key ?? {}).map((k) => [k, data.before![k] ?? null]));
      if (JSON.stringify(oldKey) !== JSON.stringify(data.key)) rows.delete(JSON.stringify(oldKey));
    }
    const previous = rows.get(JSON.stringify(data.key)) ?? {};
    rows.set(JSON.stringify(data.key), { ...previous, ...data.after });
  }
  return tables;
}

/** One transaction: a random insert, update or delete on `items`, plus `audit(seq)` naming it. */
export async function randomWrite(client: pg.Client, seq: number, maxId: number): Promise<void> {
  const id = 1 + Math.floor(Math.random() * maxId);
  const op = Math.random();
  await client.query('begin');
  if (op < 0.4) {
    await client.query('insert into items values ($1, $2) on conflict (id) do update set v = excluded.v', [
      id,
      `i${seq}`,
    ]);
  } else if (op < 0.8) {
    await client.query('update items set v = $2 where id = $1', [id, `u${seq}`]);
  } else {
    await client.query('delete from items where id = $1', [id]);
  }
  await client.query('insert into audit values ($1)', [seq]);
  await client.query('commit');
}
