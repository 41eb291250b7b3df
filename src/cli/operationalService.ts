import type { AuthConfig } from '../api/index.js';
import { serveOperationalEndpoints } from '../api/index.js';
import type { TributaryConfig } from '../config/index.js';
import { closePool, createPool } from '../db/index.js';
import { ConfigError } from '../errors.js';
import { cdcStatus } from '../ingest/index.js';
import { getProjectionStatuses } from '../projections/index.js';
import type { CommandContext } from './context.js';

/** What the process runs, hence the lag its `/metrics` reports. */
export interface OperationalScope {
  /** The configured projections: `tributary_projection_lag_*`. */
  projections: boolean;
  /** The configured sources: `tributary_cdc_lag_*`. */
  sources: boolean;
}

/**
 * `/healthz`, `/readyz` and `/metrics` for a long-running command without the GraphQL API
 * (`start --no-api`, `cdc run`), on `metrics.port` (9464). Ready once the command has started,
 * while the database answers and nothing has failed for good.
 */
export async function startOperationalServer(
  context: CommandContext,
  scope: OperationalScope,
): Promise<void> {
  const { config } = context.loaded;
  const envPort = process.env.TRIBUTARY_METRICS_PORT;
  if (envPort !== undefined && !/^\d+$/.test(envPort)) {
    throw new ConfigError(`TRIBUTARY_METRICS_PORT must be a port number, got '${envPort}'.`);
  }
  const port = envPort !== undefined ? Number(envPort) : (config.metrics?.port ?? 9464);
  const host = process.env.TRIBUTARY_METRICS_HOST ?? config.metrics?.host ?? '127.0.0.1';
  const access = operationalAccess(config, host);
  const pool = createPool(context.database.url, { max: 2, applicationName: 'tributary-health' });
  const projections = scope.projections ? (config.projections ?? []) : [];
  const sources = scope.sources ? config.sources : undefined;
  const untrackPool = context.metrics.trackPool('health', pool);
  // Lag is read from the database when /metrics is scraped, never from the batch loop.
  const unwatchLag = context.metrics.watchLag({
    projections: async () => (projections.length > 0 ? getProjectionStatuses(pool, projections) : []),
    sources: async () => (sources && Object.keys(sources).length > 0 ? cdcStatus({ sources, db: pool }) : []),
  });
  const untrack = () => {
    unwatchLag();
    untrackPool();
  };
  let started = false;
  let server: Awaited<ReturnType<typeof serveOperationalEndpoints>>;
  try {
    server = await serveOperationalEndpoints({
      metrics: context.metrics,
      ...access,
      port,
      host,
      ready: async () => {
        if (!started || context.lifecycle.stopping || context.lifecycle.failure !== undefined)
          throw new Error('not running');
        await pool.query('select 1');
      },
    });
  } catch (error) {
    untrack();
    await closePool(pool);
    if ((error as { code?: string }).code === 'EADDRINUSE') {
      throw new ConfigError(`Port ${port} on ${host}, for /healthz, /readyz and /metrics, is in use.`, {
        hint: 'Set metrics.port in tributary.config.ts or TRIBUTARY_METRICS_PORT to a free port (0: any free port).',
        cause: error,
      });
    }
    throw error;
  }
  context.lifecycle.add(async () => {
    await server.close();
    untrack();
    await closePool(pool);
  });
  started = true;
  context.logger.info('health and metrics listening', {
    url: server.url,
    endpoints: ['/healthz', '/readyz', '/metrics'],
  });
}

/** Who may read /metrics: as for the API when it has authentication, else anyone, on loopback only. */
function operationalAccess(
  config: TributaryConfig,
  host: string,
): { auth?: AuthConfig; publicEndpoints?: readonly ('healthz' | 'readyz' | 'metrics')[] } {
  const auth = config.api?.auth;
  const publicEndpoints = config.api?.publicEndpoints;
  if (auth?.open || auth?.apiKeys?.length || auth?.jwt) {
    return { auth, ...(publicEndpoints ? { publicEndpoints } : {}) };
  }
  const loopback = host === 'localhost' || host === '::1' || host.startsWith('127.');
  if (loopback || publicEndpoints?.includes('metrics')) return {};
  throw new ConfigError(`/metrics would answer anyone on ${host}: the config has no api.auth.`, {
    hint: "Configure api.auth (an API key with scopes: ['metrics'] for Prometheus), or add 'metrics' to api.publicEndpoints if the network keeps strangers out, or set metrics.host to 127.0.0.1.",
  });
}
