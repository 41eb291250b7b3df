import type { AnyView } from '../defineProjection.js';

/** The search backends a sink can keep in step with a view. */
export type SinkBackendKind = 'postgres' | 'elasticsearch' | 'opensearch' | 'meilisearch' | 'typesense';

/** PostgreSQL full-text search: a table with a weighted tsvector and a GIN index. */
export interface PostgresBackendConfig {
  kind: 'postgres';
  /** Database holding the search tables. @default Tributary's own database */
  url?: string;
  /** Schema of the search tables. @default 'tributary_search' */
  schema?: string;
  /** Name queries use (a view over the current table). @default the sink's name in snake_case (productSearch → product_search) */
  index?: string;
}

export interface ElasticsearchBackendConfig {
  kind: 'elasticsearch' | 'opensearch';
  /** Node URL(s); take them from the environment. */
  url: string | readonly string[];
  /** Alias queries use; each build is an index of its own behind it. @default the sink's name in snake_case (productSearch → product_search) */
  index?: string;
  apiKey?: string;
  username?: string;
  password?: string;
  /** Index settings of each build (merged over Tributary's), e.g. analyzers, shards. */
  settings?: Record<string, unknown>;
}

export interface MeilisearchBackendConfig {
  kind: 'meilisearch';
  url: string;
  /** Index queries use; a build fills another index and swaps with it. @default the sink's name in snake_case (productSearch → product_search) */
  index?: string;
  apiKey?: string;
}

export interface TypesenseBackendConfig {
  kind: 'typesense';
  /** Node URL(s), e.g. `http://localhost:8108`. */
  url: string | readonly string[];
  /** Alias queries use; each build is a collection of its own behind it. @default the sink's name in snake_case (productSearch → product_search) */
  index?: string;
  apiKey: string;
}

export type SinkBackendConfig =
  | PostgresBackendConfig
  | ElasticsearchBackendConfig
  | MeilisearchBackendConfig
  | TypesenseBackendConfig;

/** What a field of the document is to the index. */
export interface SearchFieldOptions {
  /**
   * Relevance weight of a searchable field, 'A' (highest) to 'D': PostgreSQL's tsvector
   * weights; a boost of 4, 3, 2 or 1 on Elasticsearch and OpenSearch; the order of the
   * searchable attributes on Meilisearch and Typesense. @default 'A' for the first field, 'B' after
   */
  weight?: 'A' | 'B' | 'C' | 'D';
  /** Part of the full text. @default true for text fields, false for others */
  searchable?: boolean;
  /** Usable in facet counts (keyword / filterable / facet on the external backends). @default false */
  facet?: boolean;
  /** Usable in filters on the external backends (the PostgreSQL backend filters on every column). @default false */
  filter?: boolean;
  /**
   * The backend's own description of the field, used as given: an Elasticsearch/OpenSearch
   * property mapping (`{ type: 'keyword' }`), a Typesense field (`{ type: 'string[]', facet: true }`).
   */
  mapping?: Record<string, unknown>;
}

export type SearchDocument = Record<string, unknown>;

export interface SinkConfig {
  /** The view whose rows become documents. */
  view: string;
  backend: SinkBackendConfig;
  /**
   * The document's fields and their options. Without `transform` they are view columns.
   * @default the view's `search.fields`
   */
  fields?: readonly string[] | Readonly<Record<string, SearchFieldOptions>>;
  /**
   * Makes the document from a view row (in canonical form). Return null to keep the row out
   * of the index. Without it, the document is the row's `fields`.
   */
  transform?: (row: Record<string, unknown>) => SearchDocument | null;
  /** Text search language: a PostgreSQL text search configuration, an analyzer on Elasticsearch. @default 'english' */
  language?: string;
  /** PostgreSQL: also match misspelled words with pg_trgm where the server has it. @default true */
  fuzzy?: boolean;
  /** Index-wide overrides: Elasticsearch/OpenSearch `mappings`, Meilisearch settings, Typesense schema fields. */
  mapping?: Record<string, unknown>;
  /** Bump it to rebuild the index when `transform` changed (other changes are detected). @default 1 */
  version?: number;
  /** Changes applied per batch, at most. @default 500 */
  batchSize?: number;
  /** Bytes of one bulk request (and so in flight per sink), at most. @default 5 MiB */
  maxRequestBytes?: number;
  /** PostgreSQL backend: serve the `search<View>` GraphQL field. @default true */
  graphql?: boolean;
  /** Backoff between attempts when the backend fails. */
  retry?: { initialDelayMs?: number; maxDelayMs?: number };
}

/** `sinks` in tributary.config.ts: sink configs by name. */
export type SinksConfig = Readonly<Record<string, SinkConfig>>;

/** A field of the document, with its options filled in. */
export interface ResolvedField {
  name: string;
  weight: 'A' | 'B' | 'C' | 'D';
  searchable: boolean;
  facet: boolean;
  filter: boolean;
  mapping: Record<string, unknown> | undefined;
  /** The view column type, when the field is a column. */
  columnType: string | undefined;
}

/** A sink checked against its view, ready to run. */
export interface ResolvedSink {
  name: string;
  view: AnyView;
  config: SinkConfig;
  backend: SinkBackendConfig;
  /** The name queries use. */
  alias: string;
  fields: readonly ResolvedField[];
  language: string;
  fuzzy: boolean;
  /** Hash of what shapes the index; a change rebuilds it. */
  fingerprint: string;
  batchSize: number;
  maxRequestBytes: number;
}

/** What an index is built from. */
export interface IndexSpec {
  view: AnyView;
  fields: readonly ResolvedField[];
  language: string;
  fuzzy: boolean;
  mapping: Record<string, unknown> | undefined;
}

/** One write to an index, with its version (the changelog sequence number). */
export type DocumentOp =
  | {
      op: 'upsert';
      id: string;
      version: bigint;
      key: Record<string, unknown>;
      /** The view row, canonical (the PostgreSQL backend stores it for hits and filters). */
      row: Record<string, unknown>;
      document: SearchDocument;
    }
  | { op: 'delete'; id: string; version: bigint; key: Record<string, unknown> };

export interface WriteResult {
  /** Writes the backend refused for good, with its reason. */
  refused: { op: DocumentOp; reason: string }[];
  /** Writes ignored because the index already held that version or a newer one. */
  stale: number;
}

export interface StoredDocument {
  version: bigint;
  document: SearchDocument;
}

/**
 * What a search backend offers a sink. Writes are idempotent and versioned: a write whose
 * version is not above the stored one (or the tombstone a delete left) changes nothing,
 * where the backend can enforce it. A write that fails as a whole throws (the sink retries
 * it); a document the backend refuses comes back in `refused`.
 */
export interface SearchBackend {
  readonly kind: SinkBackendKind;
  /** True when the backend itself rejects a write older than the stored version. */
  readonly enforcesVersions: boolean;
  /** Creates the index (or table, collection) when it does not exist. */
  ensureIndex(index: string, spec: IndexSpec): Promise<void>;
  write(index: string, ops: readonly DocumentOp[]): Promise<WriteResult>;
  /**
   * Points `alias` at `index` in one atomic step. Returns where writes go from now on and
   * which index is left over to drop (Meilisearch swaps the two indexes' contents).
   */
  swapAlias(
    alias: string,
    index: string,
    previous: string | undefined,
  ): Promise<{ writeTo: string; retired?: string }>;
  /** Documents in an index or alias (tombstones not counted). */
  count(name: string): Promise<number>;
  /** Stored documents by id, with their versions (where the backend keeps one). */
  get(name: string, ids: readonly string[]): Promise<Map<string, StoredDocument>>;
  drop(index: string): Promise<void>;
  close(): Promise<void>;
  /**
   * Only on PostgreSQL in the database of the views: the statement that upserts, with the
   * same version check as `write`, the documents `source` selects (a from-item aliased `d`
   * with the view's columns, `"__document"` and `"__version"`). A backfill then builds the
   * documents in SQL instead of reading the rows into the process and sending them back.
   */
  upsertFromSql?(index: string, source: string): string;
}
