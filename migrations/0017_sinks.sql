-- Sinks: each follows one view's changelog from its own checkpoint and keeps a search index
-- (PostgreSQL full text, Elasticsearch, OpenSearch, Meilisearch, Typesense) in step with it.

create table tributary.sinks (
  name               text primary key,
  view               text not null,
  backend            text not null,
  -- Hash of what shapes the index (fields, options, mapping); a change rebuilds the index.
  fingerprint        text not null,
  -- The name queries use (an alias, or the index itself where the backend swaps indexes).
  alias              text not null,
  -- The index the sink writes, and the changelog cursor applied to it. Null until the first
  -- build swaps in.
  index_name         text,
  position           text,
  -- Changes of transactions visible in this snapshot are already in the index (the snapshot
  -- its backfill read the view in); cleared once the checkpoint is past the snapshot's xmax.
  skip_snapshot      pg_snapshot,
  -- An index being built (first load, reindex): its name, why, the snapshot its backfill
  -- reads, and once backfilled, its own changelog cursor. Never resumed mid-backfill: the
  -- snapshot dies with its process, so an interrupted backfill starts over in a fresh index.
  build_index        text,
  build_fingerprint  text,
  build_reason       text,
  build_position     text,
  build_snapshot     pg_snapshot,
  build_done         bigint not null default 0,
  build_total        bigint not null default 0,
  build_started_at   timestamptz,
  -- Counts the indexes ever built, so each gets a new name.
  builds             integer not null default 0,
  -- A swapped index whose alias move the backend has not confirmed yet.
  pending_swap       boolean not null default false,
  retired_index      text,
  reindex_requested  boolean not null default false,
  paused             boolean not null default false,
  -- Bumped by every change of index or checkpoint that does not come from the lease holder's
  -- own batches (a swap, a reset), so a worker knows to reload.
  generation         bigint not null default 0,
  lease_owner        text,
  lease_expires_at   timestamptz,
  documents_written  bigint not null default 0,
  documents_per_second double precision not null default 0,
  errors             bigint not null default 0,
  last_error         jsonb,
  -- When the last change applied to the live index was written to the changelog.
  applied_change_at  timestamptz,
  updated_at         timestamptz not null default now()
);

-- Documents a backend refused (a mapping conflict, a field too large) or that could not be
-- built (a transform that throws): the sink records them here with the reason and goes on.
create table tributary.sink_dead_letters (
  id           bigint generated always as identity primary key,
  sink         text not null,
  document_id  text not null,
  -- The changelog sequence number the document carried as its version.
  version      bigint not null,
  op           text not null check (op in ('upsert', 'delete')),
  key          jsonb not null,
  document     jsonb,
  reason       text not null,
  created_at   timestamptz not null default now(),
  unique (sink, document_id, version)
);
