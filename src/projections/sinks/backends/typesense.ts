import { BackendRetryError, parseRetryAfter } from '../retry.js';
import type {
  DocumentOp,
  IndexSpec,
  ResolvedField,
  SearchBackend,
  StoredDocument,
  TypesenseBackendConfig,
  WriteResult,
} from '../types.js';
import { VERSION_FIELD } from './meilisearch.js';

interface ImportResult {
  success: boolean;
  error?: string;
  code?: number;
}
interface Collection {
  retrieve(): Promise<{ num_documents: number }>;
  delete(): Promise<unknown>;
  documents(id?: string): {
    import(
      docs: Record<string, unknown>[],
      options: { action: string; return_id?: boolean },
    ): Promise<ImportResult[]>;
    delete(options?: { filter_by: string }): Promise<unknown>;
    retrieve(): Promise<Record<string, unknown>>;
  };
}
interface TypesenseClient {
  collections(name?: string): Collection & { create(schema: Record<string, unknown>): Promise<unknown> };
  aliases(name?: string): {
    upsert(name: string, mapping: { collection_name: string }): Promise<unknown>;
    retrieve(): Promise<{ collection_name?: string }>;
  };
}

function typesenseField(field: ResolvedField): Record<string, unknown> {
  if (field.mapping) return { name: field.name, ...field.mapping };
  const type = field.searchable
    ? field.columnType === 'text[]'
      ? 'string[]'
      : 'string'
    : field.columnType === 'integer'
      ? 'int32'
      : field.columnType === 'bigint'
        ? 'int64'
        : field.columnType === 'double' || field.columnType === 'numeric'
          ? 'float'
          : field.columnType === 'boolean'
            ? 'bool'
            : field.columnType === 'text[]'
              ? 'string[]'
              : field.columnType === 'jsonb'
                ? 'object'
                : 'string';
  return {
    name: field.name,
    type,
    optional: true,
    facet: field.facet,
    index: field.searchable || field.filter || field.facet,
  };
}

/**
 * Typesense through its official client. Like Meilisearch it has no conditional writes:
 * Tributary guarantees order (one writer per sink, each import after the previous one
 * succeeded, in changelog order; Typesense applies a request's documents in order), so the
 * index converges to the view; documents carry `tributary_version` for inspection. Queries
 * go through a collection alias, which a reindex moves atomically.
 */
export function createTypesenseBackend(client: TypesenseClient): SearchBackend {
  const call = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (error) {
      const status = (error as { httpStatus?: number }).httpStatus;
      if (status === undefined || status === 429 || status >= 500) {
        throw new BackendRetryError(
          `typesense ${what}: ${(error as Error).message}`,
          status === 429 ? parseRetryAfter('1') : undefined,
          {
            cause: error,
          },
        );
      }
      throw error;
    }
  };
  return {
    kind: 'typesense',
    enforcesVersions: false,
    async ensureIndex(index, spec: IndexSpec) {
      const exists = await client
        .collections(index)
        .retrieve()
        .then(
          () => true,
          () => false,
        );
      if (exists) return;
      const ordered = [...spec.fields].sort((a, b) => a.weight.localeCompare(b.weight));
      await call('create collection', () =>
        client.collections().create({
          name: index,
          enable_nested_fields: spec.fields.some((f) => f.columnType === 'jsonb'),
          fields: [
            ...((spec.mapping?.fields as unknown[] | undefined) ?? ordered.map(typesenseField)),
            { name: VERSION_FIELD, type: 'int64', optional: true, index: false },
          ],
          ...(spec.mapping
            ? Object.fromEntries(Object.entries(spec.mapping).filter(([k]) => k !== 'fields'))
            : {}),
        }),
      );
    },
    async write(index, ops) {
      const result: WriteResult = { refused: [], stale: 0 };
      let run: DocumentOp[] = [];
      const flush = async () => {
        if (run.length === 0) return;
        const batch = run;
        run = [];
        if (batch[0]!.op === 'upsert') {
          const docs = (batch as Extract<DocumentOp, { op: 'upsert' }>[]).map((op) => ({
            ...op.document,
            id: op.id,
            [VERSION_FIELD]: Number(op.version),
          }));
          const results = await call('import', () =>
            client
              .collections(index)
              .documents()
              .import(docs, { action: 'upsert' })
              .catch((error: { importResults?: ImportResult[] }) => {
                if (error.importResults) return error.importResults;
                throw error;
              }),
          );
          results.forEach((item, i) => {
            if (item.success) return;
            if (item.code === 429 || (item.code ?? 0) >= 500)
              throw new BackendRetryError(`typesense import: ${item.error}`);
            result.refused.push({ op: batch[i]!, reason: item.error ?? 'refused' });
          });
        } else {
          const plain = batch.filter((op) => !op.id.includes('`'));
          if (plain.length > 0) {
            await call('delete', () =>
              client
                .collections(index)
                .documents()
                .delete({ filter_by: `id:[${plain.map((op) => `\`${op.id}\``).join(',')}]` }),
            );
          }
          for (const op of batch.filter((op) => op.id.includes('`'))) {
            await call('delete', () =>
              client
                .collections(index)
                .documents(op.id)
                .delete()
                .catch((error: { httpStatus?: number }) => {
                  if (error.httpStatus !== 404) throw error;
                }),
            );
          }
        }
      };
      for (const op of ops) {
        if (run.length > 0 && run[0]!.op !== op.op) await flush();
        run.push(op);
      }
      await flush();
      return result;
    },
    async swapAlias(alias, index) {
      const current = await client
        .aliases(alias)
        .retrieve()
        .then(
          (found) => found.collection_name,
          () => undefined,
        );
      await call('alias', () => client.aliases().upsert(alias, { collection_name: index }));
      return { writeTo: index, ...(current && current !== index ? { retired: current } : {}) };
    },
    count: async (name) => (await call('count', () => client.collections(name).retrieve())).num_documents,
    async get(name, ids) {
      const found = new Map<string, StoredDocument>();
      for (const id of ids) {
        const doc = await client
          .collections(name)
          .documents(id)
          .retrieve()
          .catch(() => undefined);
        if (!doc) continue;
        const { id: _id, [VERSION_FIELD]: version, ...document } = doc;
        found.set(id, { version: BigInt(Number(version ?? 0)), document });
      }
      return found;
    },
    async drop(index) {
      await client
        .collections(index)
        .delete()
        .catch((error: { httpStatus?: number }) => {
          if (error.httpStatus !== 404) throw error;
        });
    },
    async close() {},
  };
}

export async function typesenseClient(config: TypesenseBackendConfig): Promise<TypesenseClient> {
  const Typesense = (await import('typesense')).default;
  const urls = typeof config.url === 'string' ? [config.url] : [...config.url];
  const nodes = urls.map((url) => {
    const parsed = new URL(url);
    const protocol = parsed.protocol.replace(':', '');
    return {
      host: parsed.hostname,
      port: Number(parsed.port || (protocol === 'https' ? 443 : 80)),
      protocol,
    };
  });
  return new Typesense.Client({
    nodes,
    apiKey: config.apiKey,
    connectionTimeoutSeconds: 30,
    numRetries: 0,
  }) as unknown as TypesenseClient;
}
