import type { Command } from 'commander';
import { createApi } from '../../api/index.js';
import { ConfigError } from '../../errors.js';
import { type CommandContext, openContext } from '../context.js';

export interface ApiOverrides {
  port?: number;
  host?: string;
  /** Serve without authentication (every scope for everyone). */
  open?: boolean;
  /** What GraphiQL shows when it opens. */
  graphiqlDefaultQuery?: string;
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
  const auth = overrides.open ? { ...api.auth, open: true } : api.auth;
  if (!auth?.open && !auth?.apiKeys?.length && !auth?.jwt) {
    throw new ConfigError('The API has no way to authenticate callers.', {
      hint: 'Configure api.auth.apiKeys or api.auth.jwt in tributary.config.ts, or set api.auth.open = true to serve without authentication (`tributary start --no-api` runs without the API).',
    });
  }
  const server = await createApi({
    connectionString: context.database.url,
    projections: config.projections ?? [],
    ...(config.sources ? { sources: config.sources } : {}),
    ...(config.log ? { log: config.log } : {}),
    config: { ...api, auth, ...(config.runner?.viewSchema ? { viewSchema: config.runner.viewSchema } : {}) },
    logger: context.logger.child({ component: 'api' }),
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

export function registerServe(program: Command) {
  program
    .command('serve')
    .description(
      'Serve the GraphQL API only (queries, subscriptions over SSE and WebSocket, appendEvents, /healthz, /readyz, /metrics); projections run elsewhere (`tributary start`).',
    )
    .option('-p, --port <port>', 'port to listen on (default: api.port, TRIBUTARY_API_PORT or 4000)', (v) =>
      Number(v),
    )
    .option('--host <host>', 'address to bind (default: api.host, TRIBUTARY_API_HOST or 127.0.0.1)')
    .action(async (options: { port?: number; host?: string }, command: Command) => {
      const context = await openContext(command.optsWithGlobals(), { handleSignals: true });
      if (context.lifecycle.stopping) return context.lifecycle.stopped;
      try {
        const { url } = await startApi(context, options);
        console.log(`GraphQL API: ${url}`);
      } catch (error) {
        await context.lifecycle.shutdown('startup failed');
        throw error;
      }
      await context.lifecycle.stopped;
    });
}
