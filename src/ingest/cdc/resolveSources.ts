import { isValidIdentifier } from '../../db/index.js';
import { ConfigError } from '../../errors.js';
import type {
  CdcSourceConfig,
  CdcSourcesConfig,
  OutboxConfig,
  OutboxSettings,
  SourceSettings,
  TableName,
} from './types.js';

/** The kinds of source `sources` may hold; a source without `kind` is a PostgreSQL one. */
export const SOURCE_KINDS = ['postgres', 'eventstoredb'] as const;

/** The kind of a configured source, after checking it is one Tributary knows. */
export function sourceKind(name: string, config: unknown): (typeof SOURCE_KINDS)[number] {
  if (config === null || typeof config !== 'object') {
    throw new ConfigError(`sources.${name} must be an object.`);
  }
  const kind = (config as { kind?: unknown }).kind ?? 'postgres';
  if (!SOURCE_KINDS.includes(kind as never)) {
    throw new ConfigError(`sources.${name}.kind is '${String(kind)}'.`, {
      hint: `Use one of ${SOURCE_KINDS.map((k) => `'${k}'`).join(', ')} (no kind: 'postgres').`,
    });
  }
  return kind as (typeof SOURCE_KINDS)[number];
}

/**
 * Checks the PostgreSQL sources of `sources` (shape and identifiers) and fills in the defaults,
 * but for the slot and publication names: those depend on the log database (see sourceNames.ts).
 * Sources of other kinds are left to their own module.
 */
export function resolveSources(sources: CdcSourcesConfig | undefined): SourceSettings[] {
  if (sources === undefined) return [];
  if (sources === null || typeof sources !== 'object' || Array.isArray(sources)) {
    throw new ConfigError('`sources` must be an object mapping source names to their settings.');
  }
  const slots = new Map<string, string>();
  const postgres = Object.entries(sources).filter(
    ([name, config]) => sourceKind(name, config) === 'postgres',
  );
  return postgres.map(([name, config]) => {
    const source = resolveSource(name, config as CdcSourceConfig);
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
  const outboxEntries =
    config.outbox === undefined ? [] : Array.isArray(config.outbox) ? config.outbox : [config.outbox];
  if (!Array.isArray(config.tables) || (config.tables.length === 0 && outboxEntries.length === 0)) {
    throw new ConfigError(
      `${at}.tables must list at least one schema-qualified table, e.g. 'public.orders' (or declare an outbox).`,
    );
  }
  const seen = new Set<string>();
  const tables = config.tables.map((entry, index): TableName => {
    const table = parseTableName(entry, `${at}.tables[${index}]`);
    if (seen.has(entry)) throw new ConfigError(`${at}.tables lists '${entry}' twice.`);
    seen.add(entry);
    return table;
  });
  const outbox = outboxEntries.map((entry, index) => {
    const resolved = resolveOutbox(
      entry as OutboxConfig,
      `${at}.outbox${Array.isArray(config.outbox) ? `[${index}]` : ''}`,
    );
    const key = `${resolved.schema}.${resolved.table}`;
    if (seen.has(key)) {
      throw new ConfigError(`${at} names '${key}' twice (in tables or outbox).`, {
        hint: 'An outbox table is captured as domain events only: leave it out of `tables`.',
      });
    }
    seen.add(key);
    return resolved;
  });
  const watermarks = config.watermarks ?? 'auto';
  if (watermarks !== 'auto' && watermarks !== 'message' && watermarks !== 'table') {
    throw new ConfigError(
      `${at}.watermarks must be 'auto', 'message' or 'table', got '${String(watermarks)}'.`,
    );
  }
  const signalTable = parseTableName(config.signalTable ?? 'public.tributary_signals', `${at}.signalTable`);
  if (seen.has(`${signalTable.schema}.${signalTable.table}`)) {
    throw new ConfigError(`${at}.signalTable must be a table of its own, not a captured one.`);
  }
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
    outbox,
    watermarks,
    signalTable,
    configuredSlot: config.slot,
    configuredPublication: config.publication,
    snapshot,
    snapshotChunkSize,
    heartbeatIntervalMs,
    retainedWalWarningBytes,
    streamId: `cdc-${name}`,
  };
}

function parseTableName(entry: unknown, at: string): TableName {
  const parts = typeof entry === 'string' ? entry.split('.') : [];
  const [schema, table] = parts;
  if (parts.length !== 2 || !isValidIdentifier(schema!) || !isValidIdentifier(table!)) {
    throw new ConfigError(
      `${at} is '${String(entry)}', not a schema-qualified table of lower-case identifiers.`,
      { hint: "Write tables as 'schema.table', e.g. 'public.orders'." },
    );
  }
  return { schema: schema!, table: table! };
}

function resolveOutbox(config: OutboxConfig, at: string): OutboxSettings {
  if (config === null || typeof config !== 'object') {
    throw new ConfigError(`${at} must be an object: { table, stream, type, data, id }.`);
  }
  const { schema, table } = parseTableName(config.table, `${at}.table`);
  const column = (field: keyof OutboxConfig, required: boolean): string | null => {
    const value = config[field];
    if (value === undefined && !required) return null;
    if (typeof value !== 'string' || !isValidIdentifier(value)) {
      throw new ConfigError(
        `${at}.${field} must name a column of ${schema}.${table}, got ${JSON.stringify(value)}.`,
        {
          hint: 'Use the column name as written in the table (lower-case letters, digits and underscores).',
        },
      );
    }
    return value;
  };
  const streamPrefix = config.streamPrefix ?? '';
  if (typeof streamPrefix !== 'string' || streamPrefix.length > 100) {
    throw new ConfigError(`${at}.streamPrefix must be a string of at most 100 characters.`);
  }
  return {
    schema,
    table,
    columns: {
      stream: column('stream', true)!,
      type: column('type', true)!,
      data: column('data', true)!,
      id: column('id', false),
      metadata: column('metadata', false),
    },
    streamPrefix,
  };
}
