import { startEmbeddedPostgres } from '../db/index.js';
import type { Logger } from '../logger.js';
import type { TributaryConfig } from './defineConfig.js';

export interface ResolvedDatabase {
  url: string;
  /** 'embedded' when Tributary started (or attached to) its own server. */
  kind: 'external' | 'embedded';
  /** Stops the embedded server if this process started it; no-op otherwise. */
  stop(): Promise<void>;
}

/** The configured database, or the embedded one when no URL is configured. */
export async function resolveDatabase(config: TributaryConfig, logger: Logger): Promise<ResolvedDatabase> {
  if (config.database?.url) {
    return { url: config.database.url, kind: 'external', stop: async () => {} };
  }
  const server = await startEmbeddedPostgres({ ...config.embedded, logger });
  return { url: server.url, kind: 'embedded', stop: () => server.stop() };
}
