import { existsSync } from 'node:fs';
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
  options: { cwd?: string; file?: string; env?: NodeJS.ProcessEnv } = {},
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
      mod = (await import(pathToFileURL(file).href)) as typeof mod;
    } catch (cause) {
      throw new ConfigError(`Cannot load ${file}: ${(cause as Error).message}`, {
        hint: 'Fix the error in the config file; it must `export default defineConfig({...})`.',
        cause,
      });
    }
    const exported = mod.default ?? mod.config;
    if (exported === null || typeof exported !== 'object') {
      throw new ConfigError(`${file} does not export a configuration object.`, {
        hint: "Write `export default defineConfig({ ... })` with defineConfig imported from 'tributary'.",
      });
    }
    config = exported as TributaryConfig;
  }
  return { config: validateConfig(applyEnvironment(config, env), file ?? 'the environment'), file };
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
