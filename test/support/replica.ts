import { execFileSync } from 'node:child_process';
import { chmod, cp, mkdir, rm, writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { type EmbeddedPostgres, startEmbeddedPostgres } from '../../src/db/index.js';

/**
 * A hot-standby replica of an embedded server, made the way pg_basebackup would (whose
 * binary the embedded package does not ship): a non-exclusive base backup of the primary's
 * data directory, its backup_label, standby.signal and primary_conninfo, then started from
 * the same binaries. It streams the primary's WAL from then on.
 */
export async function startReplica(primary: EmbeddedPostgres, dir: string): Promise<EmbeddedPostgres> {
  const admin = new pg.Client({ connectionString: primary.adminUrl });
  await admin.connect();
  try {
    await admin.query(`select pg_backup_start('tributary test replica', true)`);
    await mkdir(dir, { recursive: true });
    await cp(primary.dataDir, dir, {
      recursive: true,
      filter: (source) => !/postmaster\.(pid|opts)$/.test(source),
    });
    const { rows } = await admin.query<{ labelfile: string }>('select labelfile from pg_backup_stop(false)');
    await writeFile(path.join(dir, 'backup_label'), rows[0]!.labelfile);
  } finally {
    await admin.end();
  }
  await writeFile(path.join(dir, 'standby.signal'), '');
  await writeFile(
    path.join(dir, 'postgresql.auto.conf'),
    `primary_conninfo = 'host=127.0.0.1 port=${primary.port} user=postgres application_name=test_replica'\n`,
    { flag: 'a' },
  );
  // PostgreSQL insists on a private data directory; as root the server runs as `postgres`,
  // which must own it.
  await chmod(dir, 0o700);
  if (userInfo().uid === 0) execFileSync('chown', ['-R', 'postgres:postgres', dir]);
  return startEmbeddedPostgres({ dataDir: dir, settings: { fsync: 'off', hot_standby: 'on' } });
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}
