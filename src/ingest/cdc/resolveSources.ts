import { isValidIdentifier } from '../../db/index.js';
import { ConfigError } from '../../errors.js';
import type { CdcSourceConfig, CdcSourcesConfig, ResolvedSource, TableName } from './types.js';

/** Checks `sources` from the config (shape and identifiers) and fills in the defaults. */
export function resolveSources(sources: CdcSourcesConfig | undefined): ResolvedSource[] {
  if (sources === undefined) return [];
  if (sources === null || typeof sources !== 'object' || Array.isArray(sources)) {
    throw new ConfigError('`sources` must be an object mapping source names to their settings.');
  }
  const slots = new Map<string, string>();
  return Object.entries(sources).map(([name, config]) => {
    const source = resolveSource(name, config);
    const key = `${source.url} ${source.slot}`;
    const other = slots.get(key);
    if (other !== undefined) {
      throw new ConfigError(`Sources '${other}' and '${name}' use the same slot '${source.slot}'.`, {
        hint: 'Give each source its own `slot` name.',
      });
    }
    slots.set(key, name);
    return source;
  });
}

function resolveSource(name: string, config: CdcSourceConfig): ResolvedSource {
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
  const slot = config.slot ?? `tributary_${name}`;
  const publication = config.publication ?? `tributary_${name}`;
  for (const [field, value] of [
    ['slot', slot],
    ['publication', publication],
  ] as const) {
    if (!isValidIdentifier(value)) {
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
  return {
    name,
    url: config.url,
    tables,
    slot,
    publication,
    snapshot,
    snapshotChunkSize,
    heartbeatIntervalMs,
    streamId: `cdc-${name}`,
  };
}
