import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../errors.js';
import { defineConfig, loadConfig } from './index.js';

const configModule = fileURLToPath(new URL('./index.ts', import.meta.url));
let dir: string;
let n = 0;

async function project(files: Record<string, string>): Promise<string> {
  const cwd = path.join(dir, `p${n++}`);
  await mkdir(cwd);
  for (const [name, text] of Object.entries(files)) await writeFile(path.join(cwd, name), text);
  return cwd;
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'tributary-config-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const typedConfig = `import { defineConfig } from ${JSON.stringify(configModule)};
const port: number = 5999;
export default defineConfig({
  database: { url: 'postgres://app@db.example:5432/app', poolSize: 4 },
  embedded: { dataDir: 'data/pg', port },
  log: { maxEventBytes: 2048 },
});
`;

describe('loadConfig', () => {
  it('reads tributary.config.ts written with defineConfig', async () => {
    const cwd = await project({ 'tributary.config.ts': typedConfig });
    const { config, file } = await loadConfig({ cwd, env: {} });
    expect(file).toBe(path.join(cwd, 'tributary.config.ts'));
    expect(config).toEqual({
      database: { url: 'postgres://app@db.example:5432/app', poolSize: 4 },
      embedded: { dataDir: 'data/pg', port: 5999 },
      log: { maxEventBytes: 2048 },
    });
  });

  it('lets DATABASE_URL, TRIBUTARY_PGDATA and TRIBUTARY_PG_PORT override the file', async () => {
    const cwd = await project({ 'tributary.config.ts': typedConfig });
    const { config } = await loadConfig({
      cwd,
      env: {
        DATABASE_URL: 'postgres://other@elsewhere/db',
        TRIBUTARY_PGDATA: '/tmp/x',
        TRIBUTARY_PG_PORT: '0',
      },
    });
    expect(config.database).toEqual({ url: 'postgres://other@elsewhere/db', poolSize: 4 });
    expect(config.embedded).toEqual({ dataDir: '/tmp/x', port: 0 });
  });

  it('reads a .js config, a file given explicitly, and works with no file at all', async () => {
    const cwd = await project({
      'tributary.config.js': 'export default { embedded: { port: 7000 } };',
      'other.config.mjs': 'export default { embedded: { port: 7001 } };',
    });
    expect((await loadConfig({ cwd, env: {} })).config.embedded).toEqual({ port: 7000 });
    expect((await loadConfig({ cwd, env: {}, file: 'other.config.mjs' })).config.embedded).toEqual({
      port: 7001,
    });
    const empty = await project({});
    expect(await loadConfig({ cwd: empty, env: { DATABASE_URL: 'postgres://x@y/z' } })).toEqual({
      config: { database: { url: 'postgres://x@y/z' }, embedded: {} },
      file: undefined,
    });
  });

  it.each([
    ['a missing --config file', {}, { file: 'nope.ts' }, /does not exist/],
    ['a syntax error', { 'tributary.config.ts': 'export default {' }, {}, /Cannot load/],
    [
      'no default export',
      { 'tributary.config.js': 'export const x = 1;' },
      {},
      /does not export a configuration/,
    ],
    [
      'a bad port',
      { 'tributary.config.js': 'export default { embedded: { port: 70000 } };' },
      {},
      /embedded.port/,
    ],
    [
      'a bad URL',
      { 'tributary.config.js': "export default { database: { url: 'mysql://x' } };" },
      {},
      /database.url/,
    ],
    [
      'a bad limit',
      { 'tributary.config.js': 'export default { log: { maxEventBytes: -1 } };' },
      {},
      /maxEventBytes/,
    ],
  ])('refuses %s with a ConfigError', async (_name, files, options, message) => {
    const cwd = await project(files as Record<string, string>);
    const error = await loadConfig({ cwd, env: {}, ...options }).catch((e) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toMatch(message);
    expect(error.hint).toBeTruthy();
  });

  it('refuses a TypeScript config when no TypeScript loader is available, saying what to install', async () => {
    const cwd = await project({ 'tributary.config.ts': typedConfig });
    const error = await loadConfig({ cwd, env: {}, typescript: 'none' }).catch((e) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toMatch(
      /tributary\.config\.ts is TypeScript, and no TypeScript loader is available/,
    );
    expect(error.hint).toMatch(/npm install --save-dev tsx[\s\S]*Node 22\.18[\s\S]*tributary\.config\.js/);
    // JavaScript needs no loader.
    const js = await project({ 'tributary.config.mjs': 'export default { embedded: { port: 7002 } };' });
    expect((await loadConfig({ cwd: js, env: {}, typescript: 'none' })).config.embedded).toEqual({
      port: 7002,
    });
  });

  it('reads a TypeScript config outside an ES-module package (compiled to CommonJS by tsx)', async () => {
    const cwd = await project({
      'package.json': '{}',
      'tributary.config.ts': 'const port: number = 7003;\nexport default { embedded: { port } };\n',
    });
    expect((await loadConfig({ cwd, env: {}, typescript: 'tsx' })).config.embedded).toEqual({ port: 7003 });
  });

  const stripsTypes = Boolean((process.features as { typescript?: unknown }).typescript);
  it.skipIf(!stripsTypes)('reads a TypeScript config through Node type stripping without tsx', async () => {
    const cwd = await project({
      'tributary.config.mts': 'const port: number = 7004;\nexport default { embedded: { port } };\n',
    });
    expect((await loadConfig({ cwd, env: {}, typescript: 'node' })).config.embedded).toEqual({ port: 7004 });
  });

  it('refuses a TRIBUTARY_PG_PORT that is not a number', async () => {
    const cwd = await project({});
    await expect(loadConfig({ cwd, env: { TRIBUTARY_PG_PORT: 'abc' } })).rejects.toBeInstanceOf(ConfigError);
  });

  it('defineConfig returns its argument, typed', () => {
    const config = { embedded: { port: 1 } };
    expect(defineConfig(config)).toBe(config);
  });
});
