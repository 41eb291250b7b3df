-- Projections: checkpoints, leases, the view changelog and dead letters.

create table tributary.projections (
  name              text primary key,
  version           integer not null,
  -- Hash of the view definitions; a change without a version bump is refused.
  fingerprint       text not null,
  -- Opaque log position after the last applied event (see src/ingest/log/position.ts).
  -- The format sorts as text, so `position >= $1` compares positions.
  position          text not null,
  -- 'running', or 'failed' (halted by the stop policy; last_error says where and why).
  state             text not null default 'running',
  last_error        jsonb,
  -- The process running the projection; another may take it over once the lease expires.
  lease_owner       text,
  lease_expires_at  timestamptz,
  -- Bumped by every write that does not come from the runner (rebuild swap, dead-letter
  -- retry, replay), so a worker knows its cached view rows are stale.
  generation        bigint not null default 0,
  events_processed  bigint not null default 0,
  -- Recent throughput measured by the worker (events per second, smoothed).
  events_per_second double precision not null default 0,
  updated_at        timestamptz not null default now()
);

-- A rebuild in progress: the new version fills shadow tables from the start of the log,
-- checkpointed here so an interrupted rebuild continues where it stopped.
create table tributary.projection_rebuilds (
  name         text primary key,
  version      integer not null,
  fingerprint  text not null,
  -- The views being rebuilt (their shadow tables), so an abandoned rebuild can be cleaned up.
  views        text[] not null,
  position     text not null,
  -- Events to process when the rebuild started (for progress); the head moves on meanwhile.
  total        bigint not null default 0,
  done         bigint not null default 0,
  lease_owner  text,
  lease_expires_at timestamptz,
  started_at   timestamptz not null default now(),
  updated_at   timestamptz not null default now()
);

-- Every view write appends a row here in the same transaction. Read it like the log:
-- ordered by (transaction_id, seq), only below pg_snapshot_xmin(pg_current_snapshot()).
create table tributary.view_changes (
  transaction_id xid8 not null default pg_current_xact_id(),
  seq            bigint generated always as identity,
  view           text not null,
  op             text not null check (op in ('upsert', 'delete', 'reset')),
  key            jsonb not null,
  row            jsonb,
  old            jsonb,
  -- The log position whose handling produced this change.
  log_position   text,
  created_at     timestamptz not null default now(),
  primary key (transaction_id, seq)
);
create index view_changes_view_idx on tributary.view_changes (view, transaction_id, seq);
create index view_changes_created_at_idx on tributary.view_changes (created_at);

create table tributary.dead_letters (
  id          bigint generated always as identity primary key,
  projection  text not null,
  position    text not null,
  envelope    jsonb not null,
  error       jsonb not null,
  attempts    integer not null,
  created_at  timestamptz not null default now(),
  unique (projection, position)
);
