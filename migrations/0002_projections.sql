-- Projections: checkpoints, leases, the view changelog and dead letters.

create table tributary.projections (
  name              text primary key,
  version           integer not null,
  -- Hash of the view definitions; a change without a version bump is refused.
  fingerprint       text not null,
  -- Opaque log position after the last applied event (see src/ingest/log/position.ts).
  -- The format sorts as text, so `position >= $1` compares positions.
  position          text not null,
  state             text not null default 'running',
  last_error        jsonb,
  lease_owner       text,
  lease_expires_at  timestamptz,
  updated_at        timestamptz not null default now()
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
