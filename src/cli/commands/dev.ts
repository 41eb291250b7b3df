import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { CONFIG_FILES } from '../../config/index.js';
import { ConfigError } from '../../errors.js';
import { type CommandContext, type GlobalOptions, runUntilStopped } from '../context.js';
import { recordInstance } from '../instance.js';
import { configuredSinks } from '../sinksOf.js';
import { startApi } from './serve.js';
import { startProjections, startSinksService, startSources } from './start.js';

/**
 * The demo `tributary dev` runs when the current directory has no tributary.config.ts: the
 * compiled examples/ of this package (dist/examples, next to dist/cli).
 */
const DEMO_DIR = new URL('../../examples/', import.meta.url);

/** What the demo's workload module (examples/workload.ts) exports. */
interface DemoWorkload {
  ensureProducts(databaseUrl: string): Promise<void>;
  startWorkload(options: { apiUrl: string; databaseUrl: string; onError?: (error: unknown) => void }): {
    stop(): Promise<void>;
  };
}

export async function devCommand(
  options: { port?: number; workload: boolean },
  command: Command,
): Promise<void> {
  const globals = command.optsWithGlobals<GlobalOptions>();
  const demo = !globals.config && !CONFIG_FILES.some((file) => existsSync(path.join(process.cwd(), file)));
  const config = demo ? fileURLToPath(new URL('tributary.config.js', DEMO_DIR)) : globals.config;
  if (demo && !existsSync(config!)) {
    throw new ConfigError('No tributary.config.ts here, and the demo is not built.', {
      hint: 'Write a tributary.config.ts, or run `npm run build` in the Tributary checkout.',
    });
  }
  // This command is the instance the others look for; it never attaches to another one.
  await runUntilStopped(
    { ...globals, ...(config ? { config } : {}) },
    (context) => run(context, demo, options),
    { useInstance: false },
  );
}

async function run(context: CommandContext, demo: boolean, options: { port?: number; workload: boolean }) {
  const { logger, database } = context;
  const workload = demo ? ((await import(new URL('workload.js', DEMO_DIR).href)) as DemoWorkload) : undefined;
  if (workload) {
    await workload.ensureProducts(database.url);
    // The demo captures its products table from Tributary's own database.
    const sources = context.loaded.config.sources ?? {};
    context.loaded.config = {
      ...context.loaded.config,
      sources: Object.fromEntries(
        Object.entries(sources).map(([name, source]) => [
          name,
          { ...source, url: source.url || database.url },
        ]),
      ),
    };
  }
  configuredSinks(context.loaded.config);
  await startSources(context);
  await startProjections(context);
  await startSinksService(context);
  let url: string;
  const api = { open: true, ...(demo ? { graphiqlDefaultQuery: DEMO_QUERY } : {}) };
  try {
    ({ url } = await startApi(context, {
      ...api,
      ...(options.port !== undefined ? { port: options.port } : {}),
    }));
  } catch (error) {
    if ((error as { code?: string }).code !== 'EADDRINUSE' || options.port !== undefined) throw error;
    logger.warn('the configured API port is taken; using a free one');
    ({ url } = await startApi(context, { ...api, port: 0 }));
  }
  if (workload && options.workload) {
    let failures = 0;
    const running = workload.startWorkload({
      apiUrl: url,
      databaseUrl: database.url,
      onError: (error) => {
        if (failures++ % 20 === 0) logger.warn('demo workload step failed', { error });
      },
    });
    context.lifecycle.add(() => running.stop());
  }
  const forget = await recordInstance(process.cwd(), {
    pid: process.pid,
    startedAt: new Date().toISOString(),
    config: context.loaded.file,
    databaseUrl: database.url,
    apiUrl: url,
    sources: Object.fromEntries(
      Object.entries(context.loaded.config.sources ?? {}).map(([name, source]) => [name, source.url]),
    ),
  });
  context.lifecycle.add(forget);
  logger.info('tributary dev is running', {
    database: database.kind === 'embedded' ? `${database.url} (embedded)` : 'DATABASE_URL',
    api: url,
  });
  console.log(banner(url, database.url, demo));
}

const DEMO_QUERY = `# The shop demo. Run a query with the play button; the data moves as the workload runs.
# Try the subscription at the bottom too (select it, then run): changes stream in live.

# Product search: the workload renames a product every few seconds ("… (limited edition)");
# run this again and the renamed products are found under their new names.
query ProductSearch {
  searchProducts(query: "limited edition", first: 5) {
    edges { score highlights { field snippet } node { id name price stock } }
  }
}

query LatestOrders {
  orderLines(first: 10, orderBy: [{ field: placed_at, direction: DESC }]) {
    totalCount
    nodes { order_id customer product_name quantity unit_price total status placed_at }
  }
  productSales(orderBy: [{ field: revenue, direction: DESC }]) {
    nodes { product_name orders units revenue }
  }
  projections { name state lagEvents lagSeconds }
}

subscription PlacedOrders {
  orderLinesChanges(where: { status: { eq: "placed" } }) {
    op cursor row { order_id customer product_name total } previous { status }
  }
}
`;

function banner(url: string, databaseUrl: string, demo: boolean): string {
  const lines = [
    '',
    'Tributary dev is running.',
    `  GraphiQL:  ${url}   (open it in a browser)`,
    `  Database:  ${databaseUrl}`,
    '  Auth:      OFF. `tributary dev` serves the API without authentication; never expose it.',
    '',
  ];
  if (demo) {
    lines.push(
      'The shop demo: orders arrive through appendEvents, products change in public.products (captured),',
      'and the `shop` projection joins both. Try in GraphiQL:',
      '',
      '  { orderLines(first: 10, orderBy: [{ field: placed_at, direction: DESC }]) {',
      '      nodes { order_id customer product_name quantity total status } } }',
      '',
      '  { searchProducts(query: "limited edition") {',
      '      edges { score highlights { field snippet } node { id name price } } } }',
      '',
      '  { productSales(orderBy: [{ field: revenue, direction: DESC }]) {',
      '      nodes { product_name orders units revenue } } }',
      '',
      '  subscription { orderLinesChanges(where: { status: { eq: "placed" } }) {',
      '      op cursor row { order_id customer product_name total } previous { status } } }',
      '',
      '  mutation { appendEvents(streamId: "order-mine", expectedVersion: "no_stream", events: [',
      '      { type: "OrderPlaced", data: { orderId: "mine", customer: "you", productId: 2, quantity: 1 } }]) {',
      '      position nextExpectedVersion } }',
      '',
      '  { projections { name state lagEvents lagSeconds } }',
      '',
    );
  }
  lines.push('Press Ctrl-C to stop.', '');
  return lines.join('\n');
}
