import { closePool, createPool, type Pool } from '../db/index.js';
import type { Logger } from '../logger.js';
import { DEFAULT_SEARCH_SCHEMA, type ResolvedSink } from '../projections/index.js';

/** A PostgreSQL search index the API serves as `search<View>`. */
export interface SearchSource {
  sink: ResolvedSink;
  schema: string;
  /** Connections to the database of the search tables. */
  pool: Pool;
  /** Whether the index has the trigram column (pg_trgm was there when it was built). */
  trigram(): Promise<boolean>;
}

/**
 * The search indexes of the PostgreSQL sinks that serve GraphQL, each with a pool on its
 * database (Tributary's own pool when it is the same one).
 */
export function searchSources(
  sinks: readonly ResolvedSink[],
  databaseUrl: string,
  pool: Pool,
  logger: Logger,
): { sources: SearchSource[]; close(): Promise<void> } {
  const pools = new Map<string, Pool>();
  const sources = sinks
    .filter((sink) => sink.backend.kind === 'postgres' && sink.config.graphql !== false)
    .map((sink): SearchSource => {
      const backend = sink.backend as { url?: string; schema?: string };
      const url = backend.url ?? databaseUrl;
      let searchPool = url === databaseUrl ? pool : pools.get(url);
      if (!searchPool) {
        searchPool = createPool(url, { max: 5, applicationName: 'tributary-api-search', logger });
        pools.set(url, searchPool);
      }
      const schema = backend.schema ?? DEFAULT_SEARCH_SCHEMA;
      const target = searchPool;
      return {
        sink,
        schema,
        pool: target,
        async trigram() {
          // Asked each time: a reindex may add or drop the column (the fuzzy option changed).
          const { rows } = await target.query<{ trigram: boolean }>(
            `select exists (select 1 from pg_attribute where attrelid = to_regclass($1) and attname = '__text' and not attisdropped) as trigram`,
            [`"${schema}"."${sink.alias}"`],
          );
          return rows[0]?.trigram === true;
        },
      };
    });
  return {
    sources,
    async close() {
      for (const extra of pools.values()) await closePool(extra);
    },
  };
}
