/** A scope a credential can carry. `admin` implies the others; `metrics` reads /metrics (and /readyz when not public). */
export type Scope = 'read' | 'append' | 'metrics' | 'admin';

export interface ApiKeyConfig {
  /** Shown in logs and metrics instead of the key. */
  name: string;
  /** The key itself, or `sha256:<hex>` of it so the config does not hold the secret. */
  key: string;
  scopes: readonly Scope[];
}

export interface JwtConfig {
  /** HS shared secret, at least 32 bytes. One of `secret`, `publicKey` (PEM) or `jwksUrl` is required. */
  secret?: string;
  /** A PEM public key: RSA, RSA-PSS, EC (P-256/384/521) or Ed25519/Ed448. */
  publicKey?: string;
  jwksUrl?: string;
  /**
   * Accepted `alg` values. @default every algorithm the key type can verify (HS256/384/512 for
   * a secret; RS*, PS* for RSA; the curve's ES* for EC; EdDSA for Ed25519); never `none`.
   */
  algorithms?: readonly string[];
  /** Tokens must carry `exp`; with this they must also carry `iat` no older than it. */
  maxTokenAgeSeconds?: number;
  /** Leeway for `exp`, `nbf` and `iat`. @default 5 */
  clockToleranceSeconds?: number;
  issuer?: string;
  audience?: string;
  /** Claim holding the scopes (space-separated string or array). @default 'scope' */
  scopesClaim?: string;
}

export interface AuthConfig {
  apiKeys?: readonly ApiKeyConfig[];
  jwt?: JwtConfig;
  /** Serve without authentication (everyone has every scope). `tributary dev` sets it. @default false */
  open?: boolean;
}

export interface ApiLimitsConfig {
  /** @default 12 */
  maxDepth?: number;
  /** @default 30 */
  maxAliases?: number;
  /** Estimated cost: every field 1, times the page size of the connections above it. @default 50000 */
  maxComplexity?: number;
  /** Fields in one document once its fragments are expanded. @default 2000 */
  maxFields?: number;
  /** Request body bytes, whether sent with Content-Length or chunked. @default 1_000_000 */
  maxBodyBytes?: number;
  /** Nesting of the JSON `variables` of a request. @default 64 */
  maxVariablesDepth?: number;
  /** Tokens in one document. @default 5000 */
  maxTokens?: number;
  /** @default 50 */
  defaultPageSize?: number;
  /** @default 1000 */
  maxPageSize?: number;
  /** Live changes queued for one slow subscriber before it is cut off with its last cursor. @default 10000 */
  subscriptionBuffer?: number;
  /** How long a read-your-writes query waits for projections. @default 5000 */
  readYourWritesTimeoutMs?: number;
  /** Open connections (HTTP and WebSocket) in all. @default 10000 */
  maxConnections?: number;
  /** Open connections from one client address; 0 for no limit (behind a proxy every client shares its address). @default 500 */
  maxConnectionsPerAddress?: number;
  /** Time for a client to send its request headers. @default 10000 */
  headersTimeoutMs?: number;
  /** Time for a client to send its whole request. @default 30000 */
  requestTimeoutMs?: number;
  /** Time for a WebSocket client to send `connection_init` (with its credentials). @default 3000 */
  connectionInitTimeoutMs?: number;
  /** A WebSocket with no running subscription is closed after this. @default 60000 */
  idleTimeoutMs?: number;
}

/** The `api` section of tributary.config.ts. */
export interface ApiConfig {
  /** @default 4000 (`TRIBUTARY_API_PORT` overrides it) */
  port?: number;
  /** @default '127.0.0.1' (`TRIBUTARY_API_HOST` overrides it) */
  host?: string;
  /** @default '/graphql' */
  path?: string;
  /** @default false when NODE_ENV is 'production', else true */
  graphiql?: boolean;
  /** @default false when NODE_ENV is 'production', else true */
  introspection?: boolean;
  auth?: AuthConfig;
  limits?: ApiLimitsConfig;
  /** Changelog entries older than this are pruned; resuming from before them fails with CURSOR_EXPIRED. @default 7 days */
  changelogRetentionMs?: number;
  /**
   * Changes a sink has not applied yet are kept past the retention, up to this age; older
   * ones are pruned all the same, and such a sink rebuilds its index from the view. @default 30 days
   */
  changelogSinkHoldMs?: number;
  /** Fallback polling of the changelog when no notification arrives. @default 1000 */
  pollIntervalMs?: number;
  /** Schema of the view tables. @default 'tributary_views' */
  viewSchema?: string;
  /**
   * Distinct query statements run as named prepared statements, parsed and planned once per
   * database connection instead of on every request. 0 sends every statement unnamed: needed
   * behind a pooler that does not keep prepared statements across transactions (PgBouncer in
   * transaction mode before 1.21). @default 100
   */
  preparedStatements?: number;
  /**
   * Endpoints that answer without credentials; the others need a credential with the
   * `metrics` (or `admin`) scope. `/healthz` says only "ok". @default ['healthz', 'readyz']
   */
  publicEndpoints?: readonly ('healthz' | 'readyz' | 'metrics')[];
}
