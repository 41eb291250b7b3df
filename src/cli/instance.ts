import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { TributaryConfig } from '../config/index.js';
import type { Logger } from '../logger.js';

/**
 * What a running `tributary dev` tells the other commands started from the same
 * directory: where its database is, which config it loaded, and the connection strings
 * it gave the sources (the demo's source points at the embedded database, whose port
 * changes with every start). Written to `.tributary/instance.json` (mode 0600: the URLs
 * can hold passwords) and removed when `dev` stops.
 */
export interface InstanceRecord {
  pid: number;
  startedAt: string;
  /** Absolute path of the config file `dev` loaded (the demo's when there was none). */
  config: string | undefined;
  databaseUrl: string;
  apiUrl: string;
  /** Connection string of each source, by name. */
  sources: Record<string, string>;
}

export const INSTANCE_FILE = path.join('.tributary', 'instance.json');

/** Records the instance; returns what removes the record again (only while it is still ours). */
export async function recordInstance(cwd: string, record: InstanceRecord): Promise<() => Promise<void>> {
  const file = path.join(cwd, INSTANCE_FILE);
  await mkdir(path.dirname(file), { recursive: true });
  const staging = `${file}.${process.pid}.tmp`;
  await writeFile(staging, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
  await rename(staging, file);
  return async () => {
    const current = await readRecord(file);
    if (current?.pid === record.pid) await rm(file, { force: true });
  };
}

/**
 * The record of the `tributary dev` running from `cwd`, if any. A record left by a process
 * that is gone is ignored, with a note.
 */
export async function findInstance(cwd: string, logger: Logger): Promise<InstanceRecord | undefined> {
  const file = path.join(cwd, INSTANCE_FILE);
  const record = await readRecord(file);
  if (record === undefined) return undefined;
  if (!isAlive(record.pid)) {
    logger.warn('ignoring the record of a `tributary dev` that is no longer running', {
      file,
      pid: record.pid,
    });
    return undefined;
  }
  return record;
}

/** The config as the running instance has it: its database and its sources' connection strings. */
export function withInstance(config: TributaryConfig, instance: InstanceRecord): TributaryConfig {
  const sources = config.sources ?? {};
  return {
    ...config,
    database: { ...config.database, url: instance.databaseUrl },
    sources: Object.fromEntries(
      Object.entries(sources).map(([name, source]) => [
        name,
        instance.sources[name] ? { ...source, url: instance.sources[name] } : source,
      ]),
    ),
  };
}

async function readRecord(file: string): Promise<InstanceRecord | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const record = JSON.parse(text) as Partial<InstanceRecord>;
    if (!Number.isInteger(record.pid) || typeof record.databaseUrl !== 'string') return undefined;
    return { sources: {}, apiUrl: '', startedAt: '', config: undefined, ...record } as InstanceRecord;
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
