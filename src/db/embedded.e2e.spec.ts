import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../test/support/waitFor.js';
import { EmbeddedPostgresError } from '../errors.js';
import { type EmbeddedPostgres, startEmbeddedPostgres } from './embedded.js';

const BIN = fileURLToPath(new URL('../../bin/tributary.js', import.meta.url));
let root: string;
let dataDir: string;
const running: EmbeddedPostgres[] = [];

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'tributary-embedded-'));
  await chmod(root, 0o755); // as root, the server runs as `postgres`, which must reach its data directory
  dataDir = path.join(root, 'pgdata');
});

afterAll(async () => {
  for (const server of running) await server.stop().catch(() => {});
  // A failed test can leave a server started by a child process: stop it by its lock file.
  const lock = await readFile(path.join(dataDir, 'postmaster.pid'), 'utf8').catch(() => undefined);
  const pid = Number(lock?.split('\n')[0]);
  if (pid > 0) {
    try {
      process.kill(pid, 'SIGINT');
      await waitFor(() => !existsSync(path.join(dataDir, 'postmaster.pid')), {
        what: 'the leftover server to stop',
      });
    } catch {}
  }
  await rm(root, { recursive: true, force: true });
});

async function start(options: Parameters<typeof startEmbeddedPostgres>[0] = {}) {
  const server = await startEmbeddedPostgres({ dataDir, settings: { fsync: 'off' }, ...options });
  running.push(server);
  return server;
}

async function sql<T extends pg.QueryResultRow>(url: string, text: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => {});
  await client.connect();
  try {
    return (await client.query<T>(text)).rows;
  } finally {
    await client.end();
  }
}

async function accepts(url: string): Promise<boolean> {
  return sql(url, 'select 1').then(
    () => true,
    () => false,
  );
}

/** The PID of a process that has exited, for a lock file left by a dead server. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
    encoding: 'utf8',
  });
  return Number(child.stdout);
}

describe('embedded PostgreSQL', () => {
  it('persists data between runs, and a second start on the same directory attaches', async () => {
    const first = await start();
    expect(first.owned).toBe(true);
    const [settings] = await sql<{ wal_level: string; keep: string }>(
      first.url,
      "select current_setting('wal_level') as wal_level, current_setting('max_slot_wal_keep_size') as keep",
    );
    expect(settings).toEqual({ wal_level: 'logical', keep: '4GB' });
    await sql(first.url, "create table kept (v text); insert into kept values ('still here')");

    const second = await start();
    expect(second.owned).toBe(false);
    expect(second.port).toBe(first.port);
    await second.stop(); // does not stop a server it did not start
    expect(await accepts(first.url)).toBe(true);

    await first.stop();
    expect(await accepts(first.url)).toBe(false);
    expect(existsSync(path.join(dataDir, 'postmaster.pid'))).toBe(false);

    const third = await start();
    expect(await sql(third.url, 'select v from kept')).toEqual([{ v: 'still here' }]);
    await third.stop();
  });

  it('removes the stale lock file of a server that is gone', async () => {
    const pid = deadPid();
    await writeFile(path.join(dataDir, 'postmaster.pid'), `${pid}\n${dataDir}\n1700000000\n54321\n\n\n\n\n`);
    const server = await start();
    expect(server.owned).toBe(true);
    expect(await sql(server.url, 'select v from kept')).toEqual([{ v: 'still here' }]);
    const lock = await readFile(path.join(dataDir, 'postmaster.pid'), 'utf8');
    expect(lock.split('\n')[0]).not.toBe(String(pid));
    await server.stop();
  });

  it('refuses a lock file naming a live process that is not PostgreSQL', async () => {
    await writeFile(path.join(dataDir, 'postmaster.pid'), `${process.pid}\n${dataDir}\n1700000000\n54321\n`);
    try {
      const error = await start().catch((e) => e);
      expect(error).toBeInstanceOf(EmbeddedPostgresError);
      expect(error.message).toMatch(/is alive but is not PostgreSQL/);
      expect(error.hint).toMatch(/delete .*postmaster\.pid/);
    } finally {
      await rm(path.join(dataDir, 'postmaster.pid'), { force: true });
    }
  });

  it('a configured port already in use gives a clear error', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      const error = await start({ port }).catch((e) => e);
      expect(error).toBeInstanceOf(EmbeddedPostgresError);
      expect(error.message).toBe(`Port ${port} on 127.0.0.1 is already in use.`);
      expect(error.hint).toMatch(/TRIBUTARY_PG_PORT/);
      expect(existsSync(path.join(dataDir, 'postmaster.pid'))).toBe(false);
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  it.each(['SIGINT', 'SIGTERM'] as const)('`tributary dev` shuts down cleanly on %s', async (signal) => {
    const cwd = await mkdtemp(path.join(root, 'cwd-'));
    const child: ChildProcess = spawn(process.execPath, [BIN, 'dev'], {
      cwd,
      env: { ...process.env, TRIBUTARY_PGDATA: dataDir, DATABASE_URL: '', TRIBUTARY_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr!.on('data', (chunk) => {
      stderr += chunk;
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const url = await waitFor(() => /Database:\s+(\S+)/.exec(stdout)?.[1], {
        timeoutMs: 60_000,
        what: () => `tributary dev to start (stderr: ${stderr})`,
      });
      expect(await sql(url, 'select count(*)::int as n from tributary.schema_migrations')).not.toEqual([
        { n: 0 },
      ]);
      child.kill(signal);
      expect(await exited).toBe(0);
      expect(stderr).toMatch(/shutting down/);
      expect(await accepts(url)).toBe(false);
      expect(existsSync(path.join(dataDir, 'postmaster.pid'))).toBe(false);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });

  it('a signal while `tributary dev` is still starting also stops the server it started', async () => {
    const cwd = await mkdtemp(path.join(root, 'cwd-'));
    const child = spawn(process.execPath, [BIN, 'dev'], {
      cwd,
      env: { ...process.env, TRIBUTARY_PGDATA: dataDir, DATABASE_URL: '', TRIBUTARY_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const port = await waitFor(
        () =>
          stderr
            .split('\n')
            .filter((line) => line.includes('"msg":"embedded PostgreSQL started"'))
            .map((line) => /"port":(\d+)/.exec(line)?.[1])
            .find((port) => port !== undefined),
        {
          timeoutMs: 60_000,
          what: () => `the embedded server to start (stderr: ${stderr})`,
        },
      );
      child.kill('SIGINT');
      expect(await exited).toBe(0);
      expect(await accepts(`postgres://postgres@127.0.0.1:${port}/postgres`)).toBe(false);
      expect(existsSync(path.join(dataDir, 'postmaster.pid'))).toBe(false);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });

  // As root the server always runs as `postgres`; this runs the whole start as an unprivileged user.
  // It needs a checkout that user can read (a clone inside a private 0700 directory is not).
  const asNobody =
    process.getuid?.() === 0 &&
    existsSync('/usr/sbin/runuser') &&
    spawnSync('/usr/sbin/runuser', ['-u', 'nobody', '--', 'test', '-r', fileURLToPath(import.meta.url)])
      .status === 0;
  it.skipIf(!asNobody)('starts, serves and stops as a normal (non-root) user', async () => {
    const home = await mkdtemp(path.join(root, 'nobody-'));
    await chmod(home, 0o777);
    const tsx = fileURLToPath(new URL('../../node_modules/tsx/dist/esm/api/index.mjs', import.meta.url));
    const db = fileURLToPath(new URL('./index.ts', import.meta.url));
    const script = path.join(home, 'start.mjs');
    await writeFile(
      script,
      `import { register } from ${JSON.stringify(tsx)};
register();
const { startEmbeddedPostgres } = await import(${JSON.stringify(db)});
const server = await startEmbeddedPostgres({ dataDir: ${JSON.stringify(path.join(home, 'pgdata'))} });
console.log(JSON.stringify({ url: server.url, owned: server.owned, uid: process.getuid() }));
await server.stop();
`,
    );
    const run = spawnSync('/usr/sbin/runuser', ['-u', 'nobody', '--', process.execPath, script], {
      cwd: home,
      env: { PATH: process.env.PATH, HOME: home },
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(run.status, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout.trim().split('\n').at(-1)!);
    expect(result).toMatchObject({ owned: true });
    expect(result.uid).not.toBe(0);
  });
});
