import type { Command } from 'commander';
import { type AuthConfig, createApi } from '../../api/index.js';
import type { TributaryConfig } from '../../config/index.js';
import { ConfigError } from '../../errors.js';
import { type CommandContext, runUntilStopped } from '../context.js';
import { configuredSinks } from '../sinksOf.js';

export interface ApiOverrides {
  port?: number;
  host?: string;
  /** Serve without authentication (every scope for everyone). */
  open?: boolean;
  /** What GraphiQL shows when it opens. */
  graphiqlDefaultQuery?: string;
}

/** How the API authenticates callers; a ConfigError when the config gives it no way to. */
export function apiAuth(config: TributaryConfig, overrides: Pick<ApiOverrides, 'open'> = {}): AuthConfig {
  const auth = overrides.open ? { ...config.api?.auth, open: true } : config.api?.auth;
  if (!auth?.open && !auth?.apiKeys?.length && !auth?.jwt) {
    throw new ConfigError('The API has no way to authenticate callers.', {
      hint: 'Configure api.auth.apiKeys or api.auth.jwt in tributary.config.ts, or set api.auth.open = true to serve without authentication (`tributary start --no-api` runs without the API).',
    });
  }
  return auth;
}

/** Starts the GraphQL API of the configured projections' views; stops with the lifecycle. */
export async function startApi(
  context: CommandContext,
  overrides: ApiOverrides = {},
): Promise<{ url: string }> {
  const { config } = context.loaded;
  const api = config.api ?? {};
  const envPort = process.env.TRIBUTARY_API_PORT;
  if (envPort !== undefined && !/^\d+$/.test(envPort)) {
    throw new ConfigError(`TRIBUTARY_API_PORT must be a port number, got '${envPort}'.`);
  }
  const port = overrides.port ?? (envPort !== undefined ? Number(envPort) : (api.port ?? 4000));
  const host = overrides.host ?? process.env.TRIBUTARY_API_HOST ?? api.host ?? '127.0.0.1';
  const auth = apiAuth(config, overrides);
  const server = await createApi({
    connectionString: context.database.url,
    projections: config.projections ?? [],
    sinks: configuredSinks(config),
    ...(config.sources ? { sources: config.sources } : {}),
    ...(config.log ? { log: config.log } : {}),
    ...(config.database?.replicas?.length
      ? {
          replicas: {
            urls: config.database.replicas,
            ...(config.database.replicaMaxLagBytes !== undefined
              ? { maxLagBytes: config.database.replicaMaxLagBytes }
              : {}),
            ...(config.database.replicaWaitMs !== undefined ? { waitMs: config.database.replicaWaitMs } : {}),
          },
        }
      : {}),
    config: { ...api, auth, ...(config.runner?.viewSchema ? { viewSchema: config.runner.viewSchema } : {}) },
    logger: context.logger.child({ component: 'api' }),
    metrics: context.metrics,
    ...(overrides.graphiqlDefaultQuery ? { graphiqlDefaultQuery: overrides.graphiqlDefaultQuery } : {}),
  });
  let url: string;
  try {
    ({ url } = await server.listen(port, host));
  } catch (error) {
    await server.close();
    throw error;
  }
  context.lifecycle.add(() => server.close());
  context.logger.info('GraphQL API listening', { url, open: auth?.open === true });
  if (auth?.open) {
    context.logger.warn('the API runs OPEN: no authentication, every caller may read, append and administer');
  }
  return { url };
}

export async function serveCommand(
  options: { port?: number; host?: string },
  command: Command,
): Promise<void> {
  await runUntilStopped(command.optsWithGlobals(), async (context) => {
    const { url } = await startApi(context, options);
    console.log(`GraphQL API: ${url}`);
  });
}
