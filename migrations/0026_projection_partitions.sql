-- Partitioned projections: each of a projection's N partitions has its own checkpoint and
-- lease, and runs in whichever process holds that lease. The projection's row in
-- tributary.projections keeps its version, views and N; the partitions' rows keep where each
-- slice of the log has been applied up to. A projection with one partition (the default) has
-- no rows here and runs from its own row, as before.

alter table tributary.projections add column partitions integer not null default 1;

create table tributary.projection_partitions (
  name              text not null,
  partition         integer not null,
  -- The projection's version these checkpoints belong to (moved by a rebuild's swap).
  version           integer not null,
  -- After the last event of this partition applied; events of other partitions before it
  -- are not this partition's to apply.
  position          text not null,
  state             text not null default 'running',
  last_error        jsonb,
  lease_owner       text,
  lease_expires_at  timestamptz,
  -- Bumped by every write to the views that does not come from this partition's runner.
  generation        bigint not null default 0,
  events_processed  bigint not null default 0,
  events_per_second double precision not null default 0,
  updated_at        timestamptz not null default now(),
  primary key (name, partition)
);

-- The processes able to run each partitioned projection (registered at its version and
-- number of partitions), so each can take a fair share of its partitions: a process renews its
-- row while it lives; a row past expires_at belongs to a process that is gone.
create table tributary.projection_workers (
  name        text not null,
  worker_id   text not null,
  expires_at  timestamptz not null,
  started_at  timestamptz not null default now(),
  primary key (name, worker_id)
);
