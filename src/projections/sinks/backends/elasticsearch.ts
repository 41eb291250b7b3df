import type { Logger } from '../../../logger.js';
import { BackendRetryError, parseRetryAfter } from '../retry.js';
import type {
  DocumentOp,
  ElasticsearchBackendConfig,
  IndexSpec,
  ResolvedField,
  SearchBackend,
  StoredDocument,
  WriteResult,
} from '../types.js';

/**
 * The calls Tributary makes, mirrored from the official clients (`@elastic/elasticsearch`
 * returns bodies, `@opensearch-project/opensearch` wraps them in `{ body }`), so one
 * backend serves both.
 */
interface SearchApi {
  exists(index: string): Promise<boolean>;
  create(index: string, body: { settings?: unknown; mappings?: unknown }): Promise<void>;
  bulk(operations: unknown[]): Promise<{ items: Record<string, BulkItem>[] }>;
  aliasTargets(alias: string): Promise<string[]>;
  updateAliases(actions: unknown[]): Promise<void>;
  count(name: string): Promise<number>;
  mget(
    name: string,
    ids: readonly string[],
  ): Promise<{ _id: string; found: boolean; _version?: number; _source?: Record<string, unknown> }[]>;
  delete(index: string): Promise<void>;
  close(): Promise<void>;
}

interface BulkItem {
  _id?: string;
  status: number;
  error?: { type?: string; reason?: string; caused_by?: { reason?: string } };
}

interface ResponseErrorLike {
  meta?: { statusCode?: number; headers?: Record<string, unknown>; body?: unknown };
  statusCode?: number;
  name?: string;
  message?: string;
}

/** Elasticsearch's and OpenSearch's built-in language analyzers go by the same names as PostgreSQL's text search configurations. */
function analyzer(language: string): string {
  return language === 'simple' ? 'simple' : language;
}

/** The mapping of a field from its column type and options (its own `mapping` wins). */
function fieldMapping(field: ResolvedField, language: string): Record<string, unknown> {
  if (field.mapping) return field.mapping;
  const meta = { weight: field.weight };
  if (field.searchable) {
    return {
      type: 'text',
      analyzer: analyzer(language),
      meta,
      ...(field.facet || field.filter ? { fields: { raw: { type: 'keyword', ignore_above: 1024 } } } : {}),
    };
  }
  switch (field.columnType) {
    case 'integer':
      return { type: 'integer' };
    case 'bigint':
      return { type: 'long' };
    case 'numeric':
    case 'double':
      return { type: 'double' };
    case 'boolean':
      return { type: 'boolean' };
    case 'timestamptz':
      return { type: 'date_nanos' };
    case 'jsonb':
      return { type: 'object', enabled: field.filter || field.facet };
    default:
      return { type: 'keyword', ignore_above: 1024 };
  }
}

/** The index's mappings: `mapping` from the sink config as given, else one made from the fields. */
export function elasticMappings(spec: IndexSpec): Record<string, unknown> {
  if (spec.mapping) return spec.mapping;
  return {
    dynamic: true,
    properties: Object.fromEntries(
      spec.fields.map((field) => [field.name, fieldMapping(field, spec.language)]),
    ),
  };
}

function describeItem(item: BulkItem): string {
  const error = item.error;
  if (!error) return `status ${item.status}`;
  return `${error.type ?? 'error'}: ${error.reason ?? ''}${error.caused_by?.reason ? ` (${error.caused_by.reason})` : ''}`;
}

/**
 * Elasticsearch or OpenSearch through its official client. Every write carries the
 * change's sequence number as an external version (`version_type: external`): the server
 * refuses (409) a write whose version is not above the stored document's, or above the
 * tombstone a delete left (kept for `index.gc_deletes`, 60 s by default). Bulk requests are
 * bounded in bytes by the sink; an item the server rejects for load (429) or a failure of
 * the server (5xx) fails the request so the sink retries it whole (versions make that
 * harmless); an item it refuses (a mapping conflict) becomes a dead letter.
 */
export function createElasticBackend(
  kind: 'elasticsearch' | 'opensearch',
  api: SearchApi,
  config: ElasticsearchBackendConfig,
  logger: Logger,
): SearchBackend {
  const call = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (error) {
      const e = error as ResponseErrorLike;
      const status = e.meta?.statusCode ?? e.statusCode;
      if (status === 429 || status === 503 || status === 502 || status === 504) {
        throw new BackendRetryError(
          `${kind} ${what}: HTTP ${status}`,
          parseRetryAfter(e.meta?.headers?.['retry-after']),
          {
            cause: error,
          },
        );
      }
      throw error;
    }
  };
  return {
    kind,
    enforcesVersions: true,
    async ensureIndex(index, spec) {
      if (await call('exists', () => api.exists(index))) return;
      await call('create index', () =>
        api.create(index, {
          settings: { ...(config.settings ?? {}) },
          mappings: elasticMappings(spec),
        }),
      ).catch((error: unknown) => {
        // Created meanwhile by another process.
        if (
          JSON.stringify((error as ResponseErrorLike).meta?.body ?? '').includes(
            'resource_already_exists_exception',
          )
        )
          return;
        throw error;
      });
    },
    async write(index, ops) {
      const operations: unknown[] = [];
      for (const op of ops) {
        const action = { _index: index, _id: op.id, version: Number(op.version), version_type: 'external' };
        if (op.op === 'upsert') operations.push({ index: action }, op.document);
        else operations.push({ delete: action });
      }
      const response = await call('bulk', () => api.bulk(operations));
      const result: WriteResult = { refused: [], stale: 0 };
      let retry: BulkItem | undefined;
      response.items.forEach((entry, i) => {
        const item = Object.values(entry)[0]!;
        const op = ops[i] as DocumentOp;
        if (item.status < 300 || (op.op === 'delete' && item.status === 404)) return;
        if (item.status === 409) result.stale++;
        else if (item.status === 429 || item.status >= 500) retry ??= item;
        else result.refused.push({ op, reason: describeItem(item) });
      });
      if (retry) {
        logger.debug('bulk items to retry', { reason: describeItem(retry) });
        throw new BackendRetryError(
          `${kind} bulk: ${describeItem(retry)}`,
          retry.status === 429 ? 1000 : undefined,
        );
      }
      return result;
    },
    async swapAlias(alias, index) {
      const current = await call('get alias', () => api.aliasTargets(alias));
      const actions = [
        ...current.filter((name) => name !== index).map((name) => ({ remove: { index: name, alias } })),
        { add: { index, alias } },
      ];
      await call('update aliases', () => api.updateAliases(actions));
      const retired = current.find((name) => name !== index);
      return { writeTo: index, ...(retired ? { retired } : {}) };
    },
    count: (name) => call('count', () => api.count(name)),
    async get(name, ids) {
      const found = new Map<string, StoredDocument>();
      if (ids.length === 0) return found;
      for (const doc of await call('mget', () => api.mget(name, ids))) {
        if (doc.found)
          found.set(doc._id, { version: BigInt(doc._version ?? 0), document: doc._source ?? {} });
      }
      return found;
    },
    drop: (index) => call('delete index', () => api.delete(index)),
    close: () => api.close(),
  };
}

const nodesOf = (url: string | readonly string[]) => (typeof url === 'string' ? url : [...url]);

/** The Elasticsearch client, loaded only when a sink uses it (an optional peer dependency). */
export async function elasticsearchApi(config: ElasticsearchBackendConfig): Promise<SearchApi> {
  const { Client } = await import('@elastic/elasticsearch');
  const client = new Client({
    node: nodesOf(config.url) as string,
    ...(config.apiKey ? { auth: { apiKey: config.apiKey } } : {}),
    ...(config.username ? { auth: { username: config.username, password: config.password ?? '' } } : {}),
    maxRetries: 0,
  });
  // biome-ignore lint/suspicious/noExplicitAny: the client's generics are wider than the calls made here
  const c = client as any;
  return {
    exists: async (index) => Boolean(await c.indices.exists({ index })),
    create: async (index, body) => {
      await c.indices.create({ index, ...body });
    },
    bulk: async (operations) => await c.bulk({ operations, refresh: false }),
    aliasTargets: async (alias) => {
      const result = await c.indices.getAlias({ name: alias }, { ignore: [404] });
      return result && typeof result === 'object' && !('error' in result) ? Object.keys(result) : [];
    },
    updateAliases: async (actions) => {
      await c.indices.updateAliases({ actions });
    },
    count: async (name) => (await c.count({ index: name })).count as number,
    mget: async (name, ids) => (await c.mget({ index: name, ids: [...ids] })).docs,
    delete: async (index) => {
      await c.indices.delete({ index, ignore_unavailable: true });
    },
    close: () => client.close(),
  };
}

/** The OpenSearch client, loaded only when a sink uses it (an optional peer dependency). */
export async function opensearchApi(config: ElasticsearchBackendConfig): Promise<SearchApi> {
  const { Client } = await import('@opensearch-project/opensearch');
  const client = new Client({
    node: nodesOf(config.url),
    ...(config.username ? { auth: { username: config.username, password: config.password ?? '' } } : {}),
    ...(config.apiKey ? { headers: { authorization: `ApiKey ${config.apiKey}` } } : {}),
    maxRetries: 0,
  });
  // biome-ignore lint/suspicious/noExplicitAny: the client's generics are wider than the calls made here
  const c = client as any;
  return {
    exists: async (index) => Boolean((await c.indices.exists({ index })).body),
    create: async (index, body) => {
      await c.indices.create({ index, body });
    },
    bulk: async (operations) => (await c.bulk({ body: operations, refresh: false })).body,
    aliasTargets: async (alias) => {
      const result = await c.indices.getAlias({ name: alias }, { ignore: [404] });
      const body = result.body as Record<string, unknown> | undefined;
      return body && typeof body === 'object' && !('error' in body) && result.statusCode !== 404
        ? Object.keys(body)
        : [];
    },
    updateAliases: async (actions) => {
      await c.indices.updateAliases({ body: { actions } });
    },
    count: async (name) => (await c.count({ index: name })).body.count as number,
    mget: async (name, ids) => (await c.mget({ index: name, body: { ids: [...ids] } })).body.docs,
    delete: async (index) => {
      await c.indices.delete({ index, ignore_unavailable: true });
    },
    close: () => client.close(),
  };
}
