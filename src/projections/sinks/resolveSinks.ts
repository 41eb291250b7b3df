import { createHash } from 'node:crypto';
import { isValidIdentifier } from '../../db/index.js';
import { ConfigError } from '../../errors.js';
import type { AnyView } from '../defineProjection.js';
import type { ResolvedField, ResolvedSink, SearchFieldOptions, SinkConfig, SinksConfig } from './types.js';

const KINDS = ['postgres', 'elasticsearch', 'opensearch', 'meilisearch', 'typesense'] as const;
const WEIGHTS = ['A', 'B', 'C', 'D'] as const;
/** Column names the PostgreSQL search table keeps for itself. */
export const RESERVED_COLUMN_PREFIX = '__';

/**
 * Checks every sink against the views it names and fills in the defaults. Everything a
 * sink needs is refused here, at start, with what to fix: an unknown view, fields that
 * do not exist, a backend without a URL, a name that cannot be an index.
 */
export function resolveSinks(sinks: SinksConfig | undefined, views: readonly AnyView[]): ResolvedSink[] {
  if (sinks === undefined) return [];
  if (sinks === null || typeof sinks !== 'object' || Array.isArray(sinks)) {
    throw new ConfigError('sinks must be an object of sink configs by name.', {
      hint: "Write sinks: { productSearch: { view: 'products', backend: { kind: 'postgres' } } }.",
    });
  }
  const resolved = Object.entries(sinks).map(([name, config]) => resolveSink(name, config, views));
  const graphql = new Map<string, string>();
  for (const sink of resolved) {
    if (sink.backend.kind !== 'postgres' || sink.config.graphql === false) continue;
    const other = graphql.get(sink.view.name);
    if (other) {
      throw new ConfigError(
        `Sinks '${other}' and '${sink.name}' would both serve search on view '${sink.view.name}'.`,
        { hint: `Set graphql: false on one of them.` },
      );
    }
    graphql.set(sink.view.name, sink.name);
  }
  return resolved;
}

function resolveSink(name: string, config: SinkConfig, views: readonly AnyView[]): ResolvedSink {
  const fail = (problem: string, hint: string): never => {
    throw new ConfigError(`Sink '${name}': ${problem}`, { hint });
  };
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(name)) {
    fail(
      'the name must be letters, digits and underscores (at most 63), not starting with a digit.',
      'Rename the sink, e.g. productSearch.',
    );
  }
  if (config === null || typeof config !== 'object')
    fail('its config must be an object.', 'See README, Search.');
  const view = views.find((candidate) => candidate.name === config.view);
  if (!view) {
    return fail(
      `view '${String(config.view)}' is not a view of any configured projection.`,
      views.length
        ? `Use one of: ${views.map((v) => v.name).join(', ')}.`
        : 'Add the projection that writes the view to `projections`.',
    );
  }
  for (const column of Object.keys(view.columns)) {
    if (column.startsWith(RESERVED_COLUMN_PREFIX)) {
      fail(
        `column '${column}' of view '${view.name}' starts with '${RESERVED_COLUMN_PREFIX}', which search tables keep for themselves.`,
        'Rename the column.',
      );
    }
  }
  const backend = config.backend;
  if (!backend || typeof backend !== 'object' || !KINDS.includes(backend.kind)) {
    fail(
      `backend.kind must be one of ${KINDS.join(', ')}, got ${JSON.stringify((backend as { kind?: unknown })?.kind)}.`,
      "Write backend: { kind: 'postgres' } (built in) or an external one with its url.",
    );
  }
  if (backend.kind !== 'postgres') {
    const urls = Array.isArray(backend.url) ? backend.url : [backend.url];
    if (urls.length === 0 || urls.some((url) => typeof url !== 'string' || !/^https?:\/\//.test(url))) {
      fail(
        `backend.url must be an http(s) URL of the ${backend.kind} server, got ${JSON.stringify(backend.url)}.`,
        `Take it from the environment, e.g. url: process.env.${backend.kind.toUpperCase()}_URL, and set that variable.`,
      );
    }
    if (backend.kind === 'typesense' && !backend.apiKey) {
      fail(
        'backend.apiKey is missing (Typesense needs one).',
        'Take it from the environment, e.g. apiKey: process.env.TYPESENSE_API_KEY.',
      );
    }
  } else if (backend.url !== undefined && !/^postgres(ql)?:\/\//.test(backend.url)) {
    fail(
      `backend.url must be a postgres:// connection string, got ${JSON.stringify(backend.url)}.`,
      "Leave it out to use Tributary's own database.",
    );
  }
  // productSearch → product_search: index names are lower case on every backend.
  const alias = backend.index ?? name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
  if (!isValidIdentifier(alias) || alias.length > 50) {
    fail(
      `index name '${alias}' must be lower-case letters, digits and underscores, at most 50 characters.`,
      'Change backend.index (each build adds a suffix to it).',
    );
  }
  if (backend.kind === 'postgres' && backend.schema !== undefined && !isValidIdentifier(backend.schema)) {
    fail(
      `backend.schema '${backend.schema}' is not a valid identifier.`,
      'Use lower-case letters, digits and underscores.',
    );
  }
  if (config.transform !== undefined && typeof config.transform !== 'function') {
    fail('transform must be a function (row) => document.', 'Pass a function, or leave transform out.');
  }
  const language = config.language ?? 'english';
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(language)) {
    fail(
      `language '${language}' is not a text search configuration name.`,
      "Use e.g. 'english', 'simple', 'german'.",
    );
  }
  const fields = resolveFields(name, view, config, fail);
  for (const [option, value, min, max] of [
    ['batchSize', config.batchSize, 1, 100_000],
    ['maxRequestBytes', config.maxRequestBytes, 1024, 1024 * 1024 * 1024],
    ['version', config.version, 1, 1_000_000_000],
  ] as const) {
    if (value !== undefined && (!Number.isSafeInteger(value) || value < min || value > max)) {
      fail(
        `${option} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}.`,
        `Fix ${option}.`,
      );
    }
  }
  const fuzzy = config.fuzzy ?? true;
  const fingerprint = createHash('sha256')
    .update(
      JSON.stringify({
        kind: backend.kind,
        columns: Object.entries(view.columns).map(([column, spec]) => [column, spec.type]),
        key: view.primaryKey,
        fields,
        language,
        fuzzy,
        mapping: config.mapping ?? null,
        settings: (backend as { settings?: unknown }).settings ?? null,
        transform: config.transform !== undefined,
        version: config.version ?? 1,
      }),
    )
    .digest('hex')
    .slice(0, 32);
  return {
    name,
    view,
    config,
    backend,
    alias,
    fields,
    language,
    fuzzy,
    fingerprint,
    batchSize: config.batchSize ?? 500,
    maxRequestBytes: config.maxRequestBytes ?? 5 * 1024 * 1024,
  };
}

function resolveFields(
  name: string,
  view: AnyView,
  config: SinkConfig,
  fail: (problem: string, hint: string) => never,
): ResolvedField[] {
  const given = config.fields ?? (view as { search?: { fields: readonly string[] } }).search?.fields;
  if (given === undefined) {
    return fail(
      `no fields to index: view '${view.name}' declares no search fields and the sink lists none.`,
      `Add search: { fields: [...] } to the view, or fields: [...] to the sink.`,
    );
  }
  const entries: [string, SearchFieldOptions][] = Array.isArray(given)
    ? (given as readonly string[]).map((field) => [field, {}])
    : Object.entries(given as Record<string, SearchFieldOptions>);
  if (entries.length === 0) fail('fields is empty.', 'List at least one field.');
  const resolved: ResolvedField[] = [];
  entries.forEach(([field, options], i) => {
    const column = view.columns[field];
    if (!config.transform && !column) {
      fail(
        `field '${field}' is not a column of view '${view.name}'.`,
        `Use columns of the view (${Object.keys(view.columns).join(', ')}), or give a transform that makes the field.`,
      );
    }
    if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(field) || field.startsWith(RESERVED_COLUMN_PREFIX)) {
      fail(
        `field name '${field}' is not allowed.`,
        "Use letters, digits and underscores, not starting with '__'.",
      );
    }
    const opts = options ?? {};
    if (opts.weight !== undefined && !WEIGHTS.includes(opts.weight)) {
      fail(
        `field '${field}': weight must be 'A', 'B', 'C' or 'D', got ${JSON.stringify(opts.weight)}.`,
        'A is the highest.',
      );
    }
    const textual = column ? column.type === 'text' || column.type === 'text[]' : true;
    resolved.push({
      name: field,
      weight: opts.weight ?? (i === 0 ? 'A' : 'B'),
      searchable: opts.searchable ?? textual,
      facet: opts.facet === true,
      filter: opts.filter === true,
      mapping: opts.mapping,
      columnType: column?.type,
    });
  });
  if (!resolved.some((field) => field.searchable)) {
    fail('no field is searchable.', 'Mark at least one field searchable: true (text fields are by default).');
  }
  void name;
  return resolved;
}
