import { ConfigError } from '../errors.js';
import type { TributaryConfig } from './defineConfig.js';

/**
 * Checks the sections this folder knows (database, embedded, log) and returns the
 * config unchanged. Other sections are checked by the parts that read them.
 */
export function validateConfig(config: TributaryConfig, source = 'the configuration'): TributaryConfig {
  const fail = (field: string, expected: string, value: unknown): never => {
    throw new ConfigError(`${source}: ${field} must be ${expected}, got ${JSON.stringify(value)}.`, {
      hint: 'Fix the value in tributary.config.ts (or the environment variable that sets it).',
    });
  };
  const section = (name: keyof TributaryConfig) => {
    const value = config[name];
    if (value !== undefined && (value === null || typeof value !== 'object' || Array.isArray(value))) {
      fail(name, 'an object', value);
    }
    return (value ?? {}) as Record<string, unknown>;
  };
  const integer = (field: string, value: unknown, min: number, max: number) => {
    if (
      value !== undefined &&
      (!Number.isSafeInteger(value) || (value as number) < min || (value as number) > max)
    ) {
      fail(field, `an integer from ${min} to ${max}`, value);
    }
  };

  const database = section('database');
  if (database.url !== undefined) {
    if (typeof database.url !== 'string' || !/^postgres(ql)?:\/\//.test(database.url)) {
      fail('database.url', 'a postgres:// connection string', database.url);
    }
  }
  integer('database.poolSize', database.poolSize, 1, 1000);
  if (database.replicas !== undefined) {
    if (
      !Array.isArray(database.replicas) ||
      database.replicas.some((url) => typeof url !== 'string' || !/^postgres(ql)?:\/\//.test(url))
    ) {
      fail('database.replicas', 'a list of postgres:// connection strings', database.replicas);
    }
  }
  integer('database.replicaMaxLagBytes', database.replicaMaxLagBytes, 0, Number.MAX_SAFE_INTEGER);
  integer('database.replicaWaitMs', database.replicaWaitMs, 0, 600_000);

  const embedded = section('embedded');
  if (embedded.dataDir !== undefined && (typeof embedded.dataDir !== 'string' || embedded.dataDir === '')) {
    fail('embedded.dataDir', 'a directory path', embedded.dataDir);
  }
  integer('embedded.port', embedded.port, 0, 65535);

  const log = section('log');
  integer('log.maxEventBytes', log.maxEventBytes, 1, 256 * 1024 * 1024);
  integer('log.maxEventsPerAppend', log.maxEventsPerAppend, 1, 1_000_000);
  return config;
}
