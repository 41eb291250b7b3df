import { isValidIdentifier } from '../../db/index.js';
import { ConfigError } from '../../errors.js';
import { sourceKind } from '../cdc/resolveSources.js';
import type { CdcSourcesConfig } from '../cdc/types.js';
import type { EventStoreDbFilter, EventStoreDbSettings, EventStoreDbSourceConfig } from './types.js';

/** Checks the EventStoreDB sources of `sources` and fills in their defaults. */
export function resolveEventStoreDbSources(sources: CdcSourcesConfig | undefined): EventStoreDbSettings[] {
  if (sources === undefined || sources === null || typeof sources !== 'object') return [];
  return Object.entries(sources)
    .filter(([name, config]) => sourceKind(name, config) === 'eventstoredb')
    .map(([name, config]) => resolveSource(name, config as EventStoreDbSourceConfig));
}

function resolveSource(name: string, config: EventStoreDbSourceConfig): EventStoreDbSettings {
  const at = `sources.${name}`;
  if (!isValidIdentifier(name)) {
    throw new ConfigError(`Source name '${name}' is not a valid identifier.`, {
      hint: 'Use lower-case letters, digits and underscores.',
    });
  }
  if (typeof config.url !== 'string' || !/^esdb(\+discover)?:\/\/./.test(config.url)) {
    throw new ConfigError(
      `${at}.url must be an EventStoreDB connection string, got ${JSON.stringify(config.url)}.`,
      {
        hint: "Write it as 'esdb://host:2113?tls=false' (or 'esdb+discover://…' for a cluster); KurrentDB servers take the same 'esdb://' form with this client.",
      },
    );
  }
  const streamPrefix = config.streamPrefix ?? 'esdb-';
  if (typeof streamPrefix !== 'string' || streamPrefix.length > 100) {
    throw new ConfigError(`${at}.streamPrefix must be a string of at most 100 characters.`);
  }
  const filter = resolveFilter(config.filter, `${at}.filter`);
  for (const field of ['systemEvents', 'linkEvents'] as const) {
    if (config[field] !== undefined && typeof config[field] !== 'boolean') {
      throw new ConfigError(`${at}.${field} must be true or false.`);
    }
  }
  const from = config.from ?? 'start';
  if (from !== 'start' && from !== 'end') throw new ConfigError(`${at}.from must be 'start' or 'end'.`);
  const batchSize = config.batchSize ?? 1000;
  if (!Number.isSafeInteger(batchSize) || batchSize < 1 || batchSize > 10_000) {
    throw new ConfigError(`${at}.batchSize must be an integer from 1 to 10000.`);
  }
  return {
    kind: 'eventstoredb',
    name,
    url: config.url,
    server: displayServer(config.url),
    streamPrefix,
    filter,
    systemEvents: config.systemEvents ?? false,
    linkEvents: config.linkEvents ?? false,
    from,
    batchSize,
  };
}

function resolveFilter(filter: EventStoreDbSourceConfig['filter'], at: string): EventStoreDbFilter | null {
  if (filter === undefined) return null;
  if (filter === null || typeof filter !== 'object') throw new ConfigError(`${at} must be an object.`);
  const given = Object.entries(filter).filter(([, value]) => value !== undefined);
  if (given.length !== 1) {
    throw new ConfigError(
      `${at} must name exactly one of streamPrefixes, streamRegex, eventTypePrefixes, eventTypeRegex.`,
      {
        hint: 'EventStoreDB filters $all on one expression: combine stream prefixes in one list, or write one regex.',
      },
    );
  }
  const [field, value] = given[0]!;
  const on = field.startsWith('stream') ? 'stream' : 'eventType';
  if (field.endsWith('Prefixes')) {
    if (!Array.isArray(value) || value.length === 0 || value.some((p) => typeof p !== 'string' || p === '')) {
      throw new ConfigError(`${at}.${field} must be a non-empty list of non-empty strings.`);
    }
    return { on, prefixes: value as string[] };
  }
  if (field.endsWith('Regex')) {
    try {
      new RegExp(value as string);
    } catch (error) {
      throw new ConfigError(`${at}.${field} is not a valid regular expression: ${(error as Error).message}`);
    }
    return { on, regex: value as string };
  }
  throw new ConfigError(`${at} has an unknown field '${field}'.`);
}

/** The connection string's hosts, without credentials or options. */
export function displayServer(url: string): string {
  const match = /^(esdb(?:\+discover)?):\/\/(?:[^@/]*@)?([^/?]*)/.exec(url);
  return match ? `${match[1]}://${match[2]}` : 'esdb://?';
}
