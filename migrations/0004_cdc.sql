-- Change data capture: per source, where the log stands (written in the same transaction
-- as the captured changes) and what the running capture reports (written on its own).

create table tributary.cdc_checkpoints (
  source           text primary key,
  slot_name        text not null,
  publication_name text not null,
  stream_id        text not null,
  -- The slot's consistent point: the snapshot holds every transaction committed before it,
  -- the stream every transaction whose commit record starts at or after it.
  start_lsn        pg_lsn not null,
  snapshot_rows    bigint not null default 0,
  -- The last source transaction whose changes are in the log (null before the first).
  commit_lsn       pg_lsn,
  end_lsn          pg_lsn,
  commit_time      timestamptz,
  transactions     bigint not null default 0,
  created_at       timestamptz not null default now(),
  updated_at       timestamptz not null default now()
);

create table tributary.cdc_progress (
  source              text primary key,
  -- starting, snapshotting, streaming, reconnecting, failed, stopped
  state               text not null,
  slot_name           text not null,
  snapshot_table      text,
  snapshot_rows_done  bigint,
  snapshot_rows_total bigint,
  confirmed_lsn       pg_lsn,
  -- Last time the capture had applied everything the source had sent.
  caught_up_at        timestamptz,
  last_error          text,
  last_error_at       timestamptz,
  updated_at          timestamptz not null default now()
);
