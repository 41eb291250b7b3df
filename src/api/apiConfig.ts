/** A scope a credential can carry. `admin` implies the other two. */
export type Scope = 'read' | 'append' | 'admin';

export interface ApiKeyConfig {
  /** Shown in logs and metrics instead of the key. */
  name: string;
  /** The key itself, or `sha256:<hex>` of it so the config does not hold the secret. */
  key: string;
  scopes: readonly Scope[];
}

export interface JwtConfig {
  /** HS256 shared secret. One of `secret`, `publicKey` (PEM, SPKI) or `jwksUrl` is required. */
  secret?: string;
  publicKey?: string;
  jwksUrl?: string;
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
  /** Request body bytes. @default 1_000_000 */
  maxBodyBytes?: number;
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
  /** Fallback polling of the changelog when no notification arrives. @default 1000 */
  pollIntervalMs?: number;
  /** Schema of the view tables. @default 'tributary_views' */
  viewSchema?: string;
}
