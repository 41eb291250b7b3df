export { copyIn, escapeCopyText } from './copyIn.js';
export { type EmbeddedPostgres, type EmbeddedPostgresOptions, startEmbeddedPostgres } from './embedded.js';
export { assertIdentifier, isValidIdentifier, qualified, quoteIdentifier } from './identifiers.js';
export {
  loadMigrations,
  MIGRATIONS_DIR,
  type MigrateOptions,
  type MigrateResult,
  type Migration,
  migrate,
} from './migrations.js';
export {
  closePool,
  connectGuarded,
  createPool,
  isConnectionError,
  type Pool,
  type PoolClient,
  type PoolOptions,
  type Queryable,
  withTransaction,
} from './pool.js';
export {
  createReadRouter,
  parseLsn,
  primaryOnly,
  type ReadRouter,
  type ReplicaOptions,
  type ReplicaStatus,
  readRouterFor,
} from './replicas.js';
