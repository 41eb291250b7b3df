import { BackendRetryError } from '../retry.js';
import type {
  DocumentOp,
  IndexSpec,
  MeilisearchBackendConfig,
  SearchBackend,
  StoredDocument,
  WriteResult,
} from '../types.js';

/** The field that holds a document's id (Meilisearch's primary key) and the one holding its version. */
export const MEILI_ID = 'tributary_id';
export const VERSION_FIELD = 'tributary_version';

/**
 * Meilisearch ids allow only letters, digits, '-' and '_' (511 bytes): other ids are
 * written as `b64_` and their base64url form (and so are ids that already start with `b64_`).
 */
export function meiliId(id: string): string {
  return /^[A-Za-z0-9_-]{1,400}$/.test(id) && !id.startsWith('b64_')
    ? id
    : `b64_${Buffer.from(id, 'utf8').toString('base64url')}`;
}

interface Task {
  status: string;
  error: { message?: string; code?: string } | null;
}
interface Enqueued {
  waitTask(options?: { timeout?: number }): Promise<Task>;
}
interface MeiliIndex {
  addDocuments(documents: Record<string, unknown>[], options?: { primaryKey?: string }): Enqueued;
  deleteDocuments(ids: string[]): Enqueued;
  updateSettings(settings: Record<string, unknown>): Enqueued;
  getStats(): Promise<{ numberOfDocuments: number }>;
  getDocuments(params: { ids?: string[]; limit?: number }): Promise<{ results: Record<string, unknown>[] }>;
}
interface MeiliClient {
  index(uid: string): MeiliIndex;
  getIndex(uid: string): Promise<unknown>;
  createIndex(uid: string, options?: { primaryKey?: string }): Enqueued;
  deleteIndexIfExists(uid: string): Promise<boolean>;
  swapIndexes(params: { indexes: [string, string]; rename: boolean }[]): Enqueued;
}

/**
 * Meilisearch through its official client. Meilisearch has no conditional writes: what
 * Tributary guarantees is the order. A sink has one writer at a time (its lease), which
 * enqueues each batch only after the previous one succeeded, in changelog order, and
 * Meilisearch applies an index's tasks in the order they were enqueued; a retry enqueues
 * the same documents again. So the index converges to the view, and a document can only be
 * set back by a writer that lost its lease in the middle of a request (until that document's
 * next change, or a reindex). Documents carry `tributary_version` for inspection.
 */
export function createMeilisearchBackend(client: MeiliClient): SearchBackend {
  const wait = async (what: string, enqueued: Enqueued): Promise<Task> => {
    let task: Task;
    try {
      task = await enqueued.waitTask({ timeout: 120_000 });
    } catch (error) {
      throw new BackendRetryError(`meilisearch ${what}: ${(error as Error).message}`, undefined, {
        cause: error,
      });
    }
    return task;
  };
  const ok = async (what: string, enqueued: Enqueued) => {
    const task = await wait(what, enqueued);
    if (task.status !== 'succeeded')
      throw new Error(
        `meilisearch ${what}: ${task.error?.code ?? task.status}: ${task.error?.message ?? ''}`,
      );
  };
  const document = (op: Extract<DocumentOp, { op: 'upsert' }>) => ({
    ...op.document,
    [MEILI_ID]: meiliId(op.id),
    [VERSION_FIELD]: Number(op.version),
  });
  /** A failed task takes the whole batch down: find the documents it refuses by halves. */
  const upsert = async (index: string, ops: Extract<DocumentOp, { op: 'upsert' }>[], result: WriteResult) => {
    const task = await wait(
      'add documents',
      client.index(index).addDocuments(ops.map(document), { primaryKey: MEILI_ID }),
    );
    if (task.status === 'succeeded') return;
    const reason = `${task.error?.code ?? task.status}: ${task.error?.message ?? ''}`;
    if (ops.length === 1) {
      result.refused.push({ op: ops[0]!, reason });
      return;
    }
    const half = Math.ceil(ops.length / 2);
    await upsert(index, ops.slice(0, half), result);
    await upsert(index, ops.slice(half), result);
  };
  return {
    kind: 'meilisearch',
    enforcesVersions: false,
    async ensureIndex(index, spec: IndexSpec) {
      const exists = await client.getIndex(index).then(
        () => true,
        () => false,
      );
      if (!exists) await ok('create index', client.createIndex(index, { primaryKey: MEILI_ID }));
      const searchable = [...spec.fields]
        .filter((f) => f.searchable)
        .sort((a, b) => a.weight.localeCompare(b.weight));
      await ok(
        'settings',
        client.index(index).updateSettings(
          spec.mapping ?? {
            searchableAttributes: searchable.map((f) => f.name),
            filterableAttributes: spec.fields.filter((f) => f.filter || f.facet).map((f) => f.name),
          },
        ),
      );
    },
    async write(index, ops) {
      const result: WriteResult = { refused: [], stale: 0 };
      // In order: a delete and a later upsert of another document must not swap places.
      let run: DocumentOp[] = [];
      const flush = async () => {
        if (run.length === 0) return;
        if (run[0]!.op === 'upsert')
          await upsert(index, run as Extract<DocumentOp, { op: 'upsert' }>[], result);
        else
          await ok('delete documents', client.index(index).deleteDocuments(run.map((op) => meiliId(op.id))));
        run = [];
      };
      for (const op of ops) {
        if (run.length > 0 && run[0]!.op !== op.op) await flush();
        run.push(op);
      }
      await flush();
      return result;
    },
    async swapAlias(alias, index) {
      const exists = await client.getIndex(alias).then(
        () => true,
        () => false,
      );
      if (!exists) await ok('create index', client.createIndex(alias, { primaryKey: MEILI_ID }));
      await ok('swap indexes', client.swapIndexes([{ indexes: [alias, index], rename: false }]));
      // The alias now holds the new documents; the build's name holds the old ones.
      return { writeTo: alias, retired: index };
    },
    count: async (name) => (await client.index(name).getStats()).numberOfDocuments,
    async get(name, ids) {
      const found = new Map<string, StoredDocument>();
      if (ids.length === 0) return found;
      const byMeiliId = new Map(ids.map((id) => [meiliId(id), id]));
      const { results } = await client
        .index(name)
        .getDocuments({ ids: [...byMeiliId.keys()], limit: ids.length });
      for (const doc of results) {
        const { [MEILI_ID]: id, [VERSION_FIELD]: version, ...document } = doc;
        const original = byMeiliId.get(String(id));
        if (original !== undefined) found.set(original, { version: BigInt(Number(version ?? 0)), document });
      }
      return found;
    },
    async drop(index) {
      await client.deleteIndexIfExists(index);
    },
    async close() {},
  };
}

export async function meilisearchClient(config: MeilisearchBackendConfig): Promise<MeiliClient> {
  const { Meilisearch } = await import('meilisearch');
  return new Meilisearch({
    host: config.url,
    ...(config.apiKey ? { apiKey: config.apiKey } : {}),
  }) as unknown as MeiliClient;
}
