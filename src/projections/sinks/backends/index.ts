import type { Pool } from '../../../db/index.js';
import { ConfigError } from '../../../errors.js';
import { type Logger, silentLogger } from '../../../logger.js';
import type { ResolvedSink, SearchBackend } from '../types.js';
import { createElasticBackend, elasticsearchApi, opensearchApi } from './elasticsearch.js';
import { createMeilisearchBackend, meilisearchClient } from './meilisearch.js';
import { createPostgresBackend } from './postgres.js';
import { createTypesenseBackend, typesenseClient } from './typesense.js';

export { createElasticBackend, elasticMappings } from './elasticsearch.js';
export { createMeilisearchBackend, meiliId } from './meilisearch.js';
export {
  createPostgresBackend,
  DEFAULT_SEARCH_SCHEMA,
  searchColumnsSql,
  searchTableStatements,
} from './postgres.js';
export { createTypesenseBackend } from './typesense.js';

const PACKAGES = {
  elasticsearch: '@elastic/elasticsearch',
  opensearch: '@opensearch-project/opensearch',
  meilisearch: 'meilisearch',
  typesense: 'typesense',
} as const;

/**
 * The backend of a sink. The external backends' clients are optional peer dependencies,
 * loaded here only when a sink uses them, so an application installs only what it uses.
 */
export async function createBackend(
  sink: ResolvedSink,
  options: { databaseUrl: string; pool?: Pool; logger?: Logger },
): Promise<SearchBackend> {
  const logger = options.logger ?? silentLogger;
  const backend = sink.backend;
  if (backend.kind === 'postgres') {
    const url = backend.url ?? options.databaseUrl;
    return createPostgresBackend({
      url,
      ...(backend.schema ? { schema: backend.schema } : {}),
      ...(url === options.databaseUrl && options.pool ? { pool: options.pool } : {}),
      inViewDatabase: url === options.databaseUrl,
      logger,
    });
  }
  try {
    switch (backend.kind) {
      case 'elasticsearch':
        return createElasticBackend('elasticsearch', await elasticsearchApi(backend), backend, logger);
      case 'opensearch':
        return createElasticBackend('opensearch', await opensearchApi(backend), backend, logger);
      case 'meilisearch':
        return createMeilisearchBackend(await meilisearchClient(backend));
      case 'typesense':
        return createTypesenseBackend(await typesenseClient(backend));
    }
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new ConfigError(`Sink '${sink.name}' uses ${backend.kind}, whose client is not installed.`, {
        hint: `npm install ${PACKAGES[backend.kind]}`,
        cause: error,
      });
    }
    throw error;
  }
}
