-- EventStoreDB / KurrentDB sources: where the log stands in each source's $all (written in the
-- same transaction as the events it covers) and what the running capture reports (on its own).

create table tributary.esdb_checkpoints (
  source           text primary key,
  -- The $all position of the last event read (captured or skipped); the next read starts after it.
  commit_position  numeric(20) not null,
  prepare_position numeric(20) not null,
  -- That event's id: tells the server that wrote it from another that has something else there.
  last_event_id    text,
  events           bigint not null default 0,
  last_event_time  timestamptz,
  updated_at       timestamptz not null default now()
);

create table tributary.esdb_progress (
  source        text primary key,
  -- starting, catching up, live, reconnecting, standing by, failed, stopped
  state         text not null,
  -- The server's address, without credentials.
  server        text not null,
  caught_up_at  timestamptz,
  last_error    text,
  last_error_at timestamptz,
  updated_at    timestamptz not null default now()
);
