import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ConfigError } from '../errors.js';
import type { TributaryConfig } from './defineConfig.js';
import { validateConfig } from './validateConfig.js';

export const CONFIG_FILES = [
  'tributary.config.ts',
  'tributary.config.mts',
  'tributary.config.js',
  'tributary.config.mjs',
];

export interface LoadedConfig {
  config: TributaryConfig;
  /** Absolute path of the file read, or undefined when none was found. */
  file: string | undefined;
}

/**
 * Reads `tributary.config.ts` (or .mts/.js/.mjs) from `cwd`, or the given file, and
 * applies environment overrides (`DATABASE_URL`, `TRIBUTARY_PGDATA`, `TRIBUTARY_PG_PORT`).
 */
export async function loadConfig(
  options: {
    cwd?: string;
    file?: string;
    env?: NodeJS.ProcessEnv;
    /** How a TypeScript config file is loaded. @default detectTypeScriptLoader() */
    typescript?: TypeScriptLoader;
  } = {},
): Promise<LoadedConfig> {
  const cwd = options.cwd ?? process.cwd();
  const env = options.env ?? process.env;
  let file: string | undefined;
  if (options.file) {
    file = path.resolve(cwd, options.file);
    if (!existsSync(file)) {
      throw new ConfigError(`Config file ${file} does not exist.`, { hint: 'Check the --config path.' });
    }
  } else {
    file = CONFIG_FILES.map((name) => path.join(cwd, name)).find((candidate) => existsSync(candidate));
  }
  let config: TributaryConfig = {};
  if (file) {
    let mod: { default?: unknown; config?: unknown };
    try {
      mod = (await importConfigFile(file, options.typescript)) as typeof mod;
    } catch (cause) {
      if (cause instanceof ConfigError) throw cause;
      throw new ConfigError(`Cannot load ${file}: ${(cause as Error).message}`, {
        hint: 'Fix the error in the config file; it must `export default defineConfig({...})`.',
        cause,
      });
    }
    let exported = mod.default ?? mod.config;
    // A TypeScript config outside an ES-module package is compiled to CommonJS: its exports
    // object arrives as the default export.
    if (isCompiledEsModule(exported)) exported = exported.default ?? exported.config;
    if (exported === null || typeof exported !== 'object') {
      throw new ConfigError(`${file} does not export a configuration object.`, {
        hint: "Write `export default defineConfig({ ... })` with defineConfig imported from 'tributary'.",
      });
    }
    config = exported as TributaryConfig;
  }
  return { config: validateConfig(applyEnvironment(config, env), file ?? 'the environment'), file };
}

function isCompiledEsModule(value: unknown): value is { default?: unknown; config?: unknown } {
  return (
    typeof value === 'object' && value !== null && (value as { __esModule?: unknown }).__esModule === true
  );
}

/**
 * How a `.ts`/`.mts` config file is imported: through tsx when it is installed (an optional
 * peer dependency; it handles everything TypeScript allows, such as `./shop.js` meaning
 * `./shop.ts`), else through Node's own type stripping (on by default from Node 22.18,
 * behind `--experimental-strip-types` before), else not at all.
 */
export type TypeScriptLoader = 'tsx' | 'node' | 'none';

/** tsx's Node API: its ES-module and CommonJS hooks. */
interface Tsx {
  esm: { register(): () => Promise<void> };
  cjs: { register(): () => void };
}

async function findTsx(configFile: string): Promise<Tsx | undefined> {
  const missing = (error: unknown) =>
    (error as { code?: string }).code === 'ERR_MODULE_NOT_FOUND' ||
    (error as { code?: string }).code === 'MODULE_NOT_FOUND';
  try {
    // Where Tributary is installed (tsx is its optional peer dependency)...
    return {
      esm: (await import('tsx/esm/api')) as Tsx['esm'],
      cjs: (await import('tsx/cjs/api')) as Tsx['cjs'],
    };
  } catch (error) {
    if (!missing(error)) throw error;
  }
  try {
    // ...or in the project of the config file.
    const resolve = createRequire(configFile).resolve;
    return {
      esm: (await import(pathToFileURL(resolve('tsx/esm/api')).href)) as Tsx['esm'],
      cjs: (await import(pathToFileURL(resolve('tsx/cjs/api')).href)) as Tsx['cjs'],
    };
  } catch (error) {
    if (!missing(error)) throw error;
    return undefined;
  }
}

/**
 * Imports the config with tsx's hooks on for that import only: Tributary's own modules are
 * loaded already (plain JavaScript), and the config's `import ... from 'tributary'` resolves
 * to those same modules, not to a second copy of the package. (tsx's scoped `tsImport` would
 * load every module the config imports again, Tributary included.)
 */
async function importWithTsx(tsx: Tsx, url: string): Promise<unknown> {
  const unregisterEsm = tsx.esm.register();
  // A TypeScript config in a package without "type": "module" is loaded as CommonJS.
  const unregisterCjs = tsx.cjs.register();
  try {
    return await import(url);
  } finally {
    unregisterCjs();
    await unregisterEsm();
  }
}

/** Whether this Node strips TypeScript types itself (Node 22.18+, or earlier with the flag). */
function nodeStripsTypes(): boolean {
  return Boolean((process.features as { typescript?: string | false }).typescript);
}

async function importConfigFile(file: string, loader?: TypeScriptLoader): Promise<unknown> {
  const url = pathToFileURL(file).href;
  if (!/\.m?ts$/.test(file)) return import(url);
  const tsx = loader === undefined || loader === 'tsx' ? await findTsx(file) : undefined;
  if (tsx) return importWithTsx(tsx, url);
  if (loader === 'node' || (loader === undefined && nodeStripsTypes())) return import(url);
  throw new ConfigError(
    `${file} is TypeScript, and no TypeScript loader is available to load it (Node ${process.versions.node}).`,
    {
      hint: 'Install tsx in your project (`npm install --save-dev tsx`), or use Node 22.18 or later (Node 22.6 to 22.17 with `--experimental-strip-types`), or write the config as tributary.config.js.',
    },
  );
}

export function applyEnvironment(config: TributaryConfig, env: NodeJS.ProcessEnv): TributaryConfig {
  const port = env.TRIBUTARY_PG_PORT;
  if (port !== undefined && !/^\d+$/.test(port)) {
    throw new ConfigError(`TRIBUTARY_PG_PORT must be a port number, got '${port}'.`);
  }
  return {
    ...config,
    database: { ...config.database, ...(env.DATABASE_URL ? { url: env.DATABASE_URL } : {}) },
    embedded: {
      ...config.embedded,
      ...(env.TRIBUTARY_PGDATA ? { dataDir: env.TRIBUTARY_PGDATA } : {}),
      ...(port !== undefined ? { port: Number(port) } : {}),
    },
  };
}
