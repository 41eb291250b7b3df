import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, PACKAGE_ENTRY, runCli } from '../../test/support/cli.js';
import { createEmptyDatabase, type TestDatabase } from '../../test/support/database.js';
import { waitFor } from '../../test/support/waitFor.js';
import { migrate } from '../db/index.js';

let cwd: string;
let database: TestDatabase;
let pool: pg.Pool;

function tributary(args: string[], env: Record<string, string> = {}) {
  return runCli(args, { cwd, env: { DATABASE_URL: database.url, ...env } });
}

const CONFIG = `import { defineConfig, defineProjection, defineView } from ${JSON.stringify(PACKAGE_ENTRY)};
const notes = defineView({
  name: 'cli_notes',
  columns: { id: { type: 'text' }, body: { type: 'text', nullable: false } },
  primaryKey: ['id'],
  search: { fields: ['body'] },
});
export default defineConfig({
  projections: [
    defineProjection({
      name: 'cli_notes',
      version: 1,
      views: [notes],
      filter: { types: ['Noted'] },
      async handle(event, ctx) {
        await ctx.upsert(notes, { id: String(event.data.id), body: String(event.data.body) });
      },
    }),
  ],
  sinks: {
    noteSearch: { view: process.env.SINK_VIEW ?? 'cli_notes', backend: { kind: 'postgres' } },
  },
  runner: { leaseTimeoutMs: 2000 },
});
`;

async function append(from: number, to: number, body: string) {
  const n = Array.from({ length: to - from + 1 }, (_, i) => from + i);
  await pool.query(
    `select tributary.append_events('notes', 'any', $1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], false)`,
    [
      n.map((i) => `n${i}-${body}`),
      n.map(() => 'Noted'),
      n.map((i) => JSON.stringify({ id: i, body: `${body} ${i}` })),
      n.map(() => '{}'),
      n.map(() => null),
    ],
  );
}

const indexed = async (word: string) =>
  Number(
    (
      await pool.query(
        `select count(*)::int as n from tributary_search.note_search where not "__deleted" and "__search" @@ to_tsquery('english', $1)`,
        [word],
      )
    ).rows[0].n,
  );

beforeAll(async () => {
  cwd = await mkdtemp(path.join(tmpdir(), 'tributary-sink-cli-'));
  await writeFile(path.join(cwd, 'tributary.config.ts'), CONFIG);
  database = await createEmptyDatabase('cli_sink');
  await migrate(database.url);
  pool = new pg.Pool({ connectionString: database.url, max: 2 });
  await append(1, 30, 'apple');
});

afterAll(async () => {
  await pool?.end();
  await rm(cwd, { recursive: true, force: true });
  await database?.drop();
});

describe('sinks commands', () => {
  it('refuse a sink on an unknown view at start, saying what to fix', async () => {
    const run = await tributary(['start', '--no-api'], { SINK_VIEW: 'cli_nots' });
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(
      /Sink 'noteSearch': view 'cli_nots' is not a view of any configured projection/,
    );
    expect(run.stderr).toMatch(/cli_notes/);
    expect(run.stderr).not.toMatch(/\n\s+at /);
  });

  it('status, pause, resume and reindex act on the sink that start runs', async () => {
    const start = spawn(process.execPath, [BIN, 'start', '--no-api'], {
      cwd,
      env: { ...process.env, DATABASE_URL: database.url, TRIBUTARY_LOG_LEVEL: 'warn' },
      stdio: 'ignore',
    });
    try {
      await waitFor(async () => (await indexed('apple').catch(() => 0)) === 30, {
        what: 'the backfill',
        timeoutMs: 60_000,
      });
      const status = await tributary(['sinks', 'status']);
      expect(status.code).toBe(0);
      expect(status.stdout).toMatch(/SINK\s+VIEW\s+BACKEND\s+STATE\s+INDEX\s+LAG/);
      expect(status.stdout).toMatch(
        /noteSearch\s+cli_notes\s+postgres\s+running\s+note_search → note_search_b1/,
      );
      const [json] = JSON.parse((await tributary(['sinks', 'status', '--json'])).stdout);
      expect(json).toMatchObject({ name: 'noteSearch', state: 'running', lagChanges: 0, deadLetters: 0 });

      expect((await tributary(['sinks', 'pause', 'noteSearch'])).stdout).toMatch(/Paused noteSearch/);
      await waitFor(
        async () => JSON.parse((await tributary(['sinks', 'status', '--json'])).stdout)[0].state === 'paused',
        {
          what: 'paused',
          timeoutMs: 30_000,
        },
      );
      await append(31, 40, 'banana');
      await waitFor(
        async () =>
          Number((await pool.query('select count(*)::int as n from tributary_views.cli_notes')).rows[0].n) ===
          40,
        { what: 'the view', timeoutMs: 30_000 },
      );
      const paused = JSON.parse((await tributary(['sinks', 'status', '--json'])).stdout)[0];
      expect(paused.lagChanges).toBe(10);
      expect(await indexed('banana')).toBe(0);
      expect((await tributary(['sinks', 'resume', 'noteSearch'])).stdout).toMatch(/Resumed noteSearch/);
      await waitFor(async () => (await indexed('banana')) === 10, {
        what: 'the paused changes',
        timeoutMs: 30_000,
      });

      const reindex = await tributary(['sinks', 'reindex', 'noteSearch']);
      expect(reindex.code, reindex.stderr).toBe(0);
      expect(reindex.stdout).toMatch(/Reindexed noteSearch: note_search → note_search_b2/);
      expect(await indexed('apple')).toBe(30);
      expect(await indexed('banana')).toBe(10);

      const unknown = await tributary(['sinks', 'pause', 'nope']);
      expect(unknown.code).toBe(1);
      expect(unknown.stderr).toMatch(/nope[\s\S]*Known sinks: noteSearch/);
    } finally {
      const exited = start.exitCode === null ? once(start, 'exit') : Promise.resolve([start.exitCode]);
      start.kill('SIGTERM');
      const [code] = await exited;
      expect(code).toBe(0);
    }
  });
});
