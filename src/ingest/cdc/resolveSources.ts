import { isValidIdentifier } from '../../db/index.js';
import { ConfigError } from '../../errors.js';
import type { CdcSourceConfig, CdcSourcesConfig, SourceSettings, TableName } from './types.js';

/**
 * Checks `sources` from the config (shape and identifiers) and fills in the defaults, but
 * for the slot and publication names: those depend on the log database (see sourceNames.ts).
 */
export function resolveSources(sources: CdcSourcesConfig | undefined): SourceSettings[] {
  if (sources === undefined) return [];
  if (sources === null || typeof sources !== 'object' || Array.isArray(sources)) {
    throw new ConfigError('`sources` must be an object mapping source names to their settings.');
  }
  const slots = new Map<string, string>();
  return Object.entries(sources).map(([name, config]) => {
    const source = resolveSource(name, config);
    // Default names embed the source name, so only configured ones can collide.
    if (source.configuredSlot === undefined) return source;
    const key = `${source.url} ${source.configuredSlot}`;
    const other = slots.get(key);
    if (other !== undefined) {
      throw new ConfigError(
        `Sources '${other}' and '${name}' use the same slot '${source.configuredSlot}'.`,
        { hint: 'Give each source its own `slot` name, or leave `slot` out to get a unique default.' },
      );
    }
    slots.set(key, name);
    return source;
  });
}

function resolveSource(name: string, config: CdcSourceConfig): SourceSettings {
  const at = `sources.${name}`;
  if (!isValidIdentifier(name)) {
    throw new ConfigError(`Source name '${name}' is not a valid identifier.`, {
      hint: 'Use lower-case letters, digits and underscores (it names the slot, publication and stream).',
    });
  }
  if (config === null || typeof config !== 'object') {
    throw new ConfigError(`${at} must be an object with url and tables.`);
  }
  if (typeof config.url !== 'string' || config.url.length === 0) {
    throw new ConfigError(`${at}.url must be a PostgreSQL connection string.`);
  }
  if (!Array.isArray(config.tables) || config.tables.length === 0) {
    throw new ConfigError(
      `${at}.tables must list at least one schema-qualified table, e.g. 'public.orders'.`,
    );
  }
  const seen = new Set<string>();
  const tables = config.tables.map((entry, index): TableName => {
    const parts = typeof entry === 'string' ? entry.split('.') : [];
    const [schema, table] = parts;
    if (parts.length !== 2 || !isValidIdentifier(schema!) || !isValidIdentifier(table!)) {
      throw new ConfigError(
        `${at}.tables[${index}] is '${String(entry)}', not a schema-qualified table of lower-case identifiers.`,
        { hint: "Write tables as 'schema.table', e.g. 'public.orders'." },
      );
    }
    if (seen.has(entry)) throw new ConfigError(`${at}.tables lists '${entry}' twice.`);
    seen.add(entry);
    return { schema: schema!, table: table! };
  });
  for (const [field, value] of [
    ['slot', config.slot],
    ['publication', config.publication],
  ] as const) {
    if (value !== undefined && !isValidIdentifier(value)) {
      throw new ConfigError(`${at}.${field} '${value}' is not a valid identifier.`, {
        hint: 'Use lower-case letters, digits and underscores, at most 63 characters.',
      });
    }
  }
  const snapshot = config.snapshot ?? 'initial';
  if (snapshot !== 'initial' && snapshot !== 'never') {
    throw new ConfigError(`${at}.snapshot must be 'initial' or 'never', got '${String(snapshot)}'.`);
  }
  const snapshotChunkSize = config.snapshotChunkSize ?? 5000;
  if (!Number.isSafeInteger(snapshotChunkSize) || snapshotChunkSize < 1 || snapshotChunkSize > 10_000) {
    throw new ConfigError(`${at}.snapshotChunkSize must be an integer from 1 to 10000.`);
  }
  const heartbeatIntervalMs = config.heartbeatIntervalMs ?? 0;
  if (!Number.isSafeInteger(heartbeatIntervalMs) || heartbeatIntervalMs < 0) {
    throw new ConfigError(`${at}.heartbeatIntervalMs must be a non-negative integer (0 turns it off).`);
  }
  const retainedWalWarningBytes = config.retainedWalWarningBytes ?? 256 * 1024 * 1024;
  if (!Number.isSafeInteger(retainedWalWarningBytes) || retainedWalWarningBytes < 0) {
    throw new ConfigError(
      `${at}.retainedWalWarningBytes must be a non-negative integer of bytes (0 turns the warning off).`,
    );
  }
  return {
    name,
    url: config.url,
    tables,
    configuredSlot: config.slot,
    configuredPublication: config.publication,
    snapshot,
    snapshotChunkSize,
    heartbeatIntervalMs,
    retainedWalWarningBytes,
    streamId: `cdc-${name}`,
  };
}
