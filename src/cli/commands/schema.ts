import type { Command } from 'commander';
import { printSchema } from 'graphql';
import { buildSchema, type SchemaOptions } from '../../api/index.js';
import { createLogger } from '../../logger.js';
import { DEFAULT_VIEW_SCHEMA, projectionOfView, validateProjections } from '../../projections/index.js';
import { loadCommandConfig } from '../context.js';

/**
 * What the schema is built with but never calls while it is only printed: the database,
 * the changelog tailer, the log and the status are used by resolvers, at request time.
 */
const NOT_SERVING = {
  pool: {},
  tailer: {},
  store: {},
  status: {},
  reads: {},
} as unknown as Pick<SchemaOptions, 'pool' | 'tailer' | 'store' | 'status' | 'reads'>;

/** Prints the SDL of the API the config serves; it needs no database. */
export async function schemaCommand(command: Command): Promise<void> {
  const { loaded } = await loadCommandConfig(command.optsWithGlobals(), createLogger());
  const { config } = loaded;
  const projections = config.projections ?? [];
  validateProjections(projections);
  const limits = config.api?.limits ?? {};
  const schema = buildSchema({
    ...NOT_SERVING,
    views: projections.flatMap((projection) => projection.views),
    viewSchema: config.runner?.viewSchema ?? DEFAULT_VIEW_SCHEMA,
    projectionsOf: (view) => {
      const projection = projectionOfView(projections, view);
      return projection ? [projection.name] : undefined;
    },
    // Limits shape the answers, not the schema.
    defaultPageSize: limits.defaultPageSize ?? 50,
    maxPageSize: limits.maxPageSize ?? 1000,
    subscriptionBuffer: limits.subscriptionBuffer ?? 10_000,
    readYourWritesTimeoutMs: limits.readYourWritesTimeoutMs ?? 5000,
  });
  process.stdout.write(`${printSchema(schema)}\n`);
}
