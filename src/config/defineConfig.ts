import type { ApiConfig } from '../api/index.js';
import type { CdcSourcesConfig, LimitOptions } from '../ingest/index.js';
import type { Projection, RunnerOptions, SinksConfig } from '../projections/index.js';

export interface DatabaseConfig {
  /** PostgreSQL connection string. `DATABASE_URL` overrides it. Absent: the embedded server. */
  url?: string;
  /** @default 10 */
  poolSize?: number;
  /**
   * Hot-standby replicas of this database (streaming replication). GraphQL queries of views
   * read them; writes, subscriptions and projections use the primary. Read-your-writes
   * (`minPosition`) holds: a replica must have replayed the commit, else the primary answers.
   */
  replicas?: readonly string[];
  /** A replica more than this many bytes of WAL behind is taken out of rotation. @default 16 MiB */
  replicaMaxLagBytes?: number;
  /** How long a read-your-writes query waits for a replica before reading the primary. @default 1000 */
  replicaWaitMs?: number;
}

export interface EmbeddedConfig {
  /** Data directory; kept between runs. `TRIBUTARY_PGDATA` overrides it. @default '.tributary/pgdata' */
  dataDir?: string;
  /** Port on 127.0.0.1, 0 for a free one. `TRIBUTARY_PG_PORT` overrides it. @default 0 */
  port?: number;
}

/**
 * `/healthz`, `/readyz` and `/metrics` of a process that serves no GraphQL API
 * (`tributary start --no-api`, `tributary cdc run`); with the API they are on its port.
 */
export interface MetricsConfig {
  /** 0 for any free port (logged). `TRIBUTARY_METRICS_PORT` overrides it. @default 9464 */
  port?: number;
  /**
   * Address to bind. `TRIBUTARY_METRICS_HOST` overrides it. Beyond loopback, `/metrics` needs
   * `api.auth` (a credential with the `metrics` scope) or `'metrics'` in `api.publicEndpoints`.
   * @default '127.0.0.1'
   */
  host?: string;
}

/** Everything `tributary.config.ts` can say. Sections are added by the parts that read them. */
export interface TributaryConfig {
  database?: DatabaseConfig;
  embedded?: EmbeddedConfig;
  /** Limits applied to every append. */
  log?: LimitOptions;
  /** The projections `tributary start` runs (and `rebuild`, `replay`, `status` know). */
  projections?: readonly Projection[];
  /** How projection workers run: batch bounds, lease timeout, view schema. */
  runner?: RunnerOptions;
  /**
   * Databases whose row changes are captured into the log, by source name (which names
   * the stream `cdc-<name>`, and by default the slot and publication `tributary_<name>`).
   */
  sources?: CdcSourcesConfig;
  /** The GraphQL API (`tributary serve`, `start`, `dev`): port, auth, limits, changelog retention. */
  api?: ApiConfig;
  /**
   * Search indexes kept in step with views, by sink name: PostgreSQL full text (built in),
   * Elasticsearch, OpenSearch, Meilisearch, Typesense. `tributary start` and `dev` run them.
   */
  sinks?: SinksConfig;
  /** Health and metrics of processes without the API. */
  metrics?: MetricsConfig;
}

/** Identity function that gives `tributary.config.ts` its types. */
export function defineConfig<const T extends TributaryConfig>(config: T): T {
  return config;
}
