import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { BIN, PACKAGE_ENTRY } from '../../test/support/cli.js';
import { createEmptyDatabase, type TestDatabase } from '../../test/support/database.js';
import { waitFor } from '../../test/support/waitFor.js';
import { migrate } from '../db/index.js';

const ROWS = 3000;

// The sink only when WITH_SINK is set: a first `start` fills the view, the second backfills it.
const CONFIG = `import { defineConfig, defineProjection, defineView } from ${JSON.stringify(PACKAGE_ENTRY)};
const notes = defineView({
  name: 'progress_notes',
  columns: { id: { type: 'integer' }, body: { type: 'text', nullable: false } },
  primaryKey: ['id'],
  search: { fields: ['body'] },
});
export default defineConfig({
  projections: [
    defineProjection({
      name: 'progress_notes',
      version: 1,
      views: [notes],
      filter: { types: ['Noted'] },
      async handle(event, ctx) {
        await ctx.upsert(notes, { id: Number(event.data.id), body: String(event.data.body) });
      },
    }),
  ],
  sinks: process.env.WITH_SINK ? { noteSearch: { view: 'progress_notes', backend: { kind: 'postgres' } } } : {},
  runner: { leaseTimeoutMs: 2000 },
});
`;

let cwd: string;
let database: TestDatabase;
let pool: pg.Pool;

beforeAll(async () => {
  cwd = await mkdtemp(path.join(tmpdir(), 'tributary-sink-progress-'));
  await writeFile(path.join(cwd, 'tributary.config.ts'), CONFIG);
  database = await createEmptyDatabase('cli_sink_progress');
  await migrate(database.url);
  pool = new pg.Pool({ connectionString: database.url, max: 2 });
  await pool.query(
    `select tributary.append_events('notes', 'any', array_agg('n' || i), array_agg('Noted'::text),
       array_agg(json_build_object('id', i, 'body', 'note number ' || i)::text), array_agg('{}'::text), array_agg(null::timestamptz), false)
       from generate_series(1, $1) i`,
    [ROWS],
  );
});

afterAll(async () => {
  await pool?.end();
  await rm(cwd, { recursive: true, force: true });
  await database?.drop();
});

function start(env: Record<string, string>) {
  const child = spawn(process.execPath, [BIN, 'start', '--no-api'], {
    cwd,
    env: { ...process.env, DATABASE_URL: database.url, TRIBUTARY_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  return { child, stderr: () => stderr };
}

async function stop(child: ChildProcess) {
  const exited = child.exitCode === null ? once(child, 'exit') : Promise.resolve([child.exitCode]);
  child.kill('SIGTERM');
  const [code] = await exited;
  expect(code).toBe(0);
}

it('start shows the first backfill of a sink as progress log lines off a terminal, with an ETA, ending all done', async () => {
  const fill = start({});
  try {
    await waitFor(
      async () =>
        Number(
          (
            await pool
              .query('select count(*)::int as n from tributary_views.progress_notes')
              .catch(() => null)
          )?.rows[0].n ?? 0,
        ) === ROWS,
      { what: 'the view', timeoutMs: 60_000 },
    );
  } finally {
    await stop(fill.child);
  }

  const run = start({ WITH_SINK: '1' });
  const progress = () =>
    run
      .stderr()
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => line.msg === 'sink build progress');
  try {
    await waitFor(() => progress().some((line) => line.phase === 'done'), {
      what: () => `the build to be reported done; stderr:\n${run.stderr().slice(-2000)}`,
      timeoutMs: 60_000,
    });
  } finally {
    await stop(run.child);
  }
  const lines = progress();
  expect(lines[0]).toMatchObject({
    sink: 'noteSearch',
    component: 'sinks',
    reason: 'first load',
    phase: 'backfill',
    done: 0,
    total: ROWS,
    percent: 0,
    eta: '--',
  });
  expect(lines.at(-1)).toMatchObject({
    sink: 'noteSearch',
    phase: 'done',
    done: ROWS,
    total: ROWS,
    percent: 100,
    eta: '0s',
  });
  expect(lines.map((line) => line.phase)).toContain('catching up');
  const { rows } = await pool.query(
    'select count(*)::int as n from tributary_search.note_search where not "__deleted"',
  );
  expect(rows[0].n).toBe(ROWS);
});
