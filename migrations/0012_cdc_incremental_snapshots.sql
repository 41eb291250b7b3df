-- Incremental snapshots of captured tables, taken while the stream runs (the watermark
-- algorithm of Netflix's DBLog), and the tables each source's log already holds the rows of.

-- The tables whose existing rows are in the log: those of the initial snapshot, and those an
-- incremental snapshot was asked for. A configured table missing here was added to `tables`
-- later: capture back-fills it with an incremental snapshot.
create table tributary.cdc_tables (
  source     text not null,
  table_name text not null,
  added_at   timestamptz not null default now(),
  primary key (source, table_name)
);

-- One row per table and request. Progress (the key of the last row read, rows done, done)
-- is written in the same log transaction as the snapshot rows it covers, so a crash never
-- loses or repeats a row, and a restart resumes after the last committed chunk.
create table tributary.cdc_snapshots (
  id           bigserial primary key,
  source       text not null,
  table_name   text not null,
  -- requested, running, done, cancelled, failed
  state        text not null default 'requested',
  -- added (a table added to `tables`) or requested (`tributary cdc snapshot`)
  reason       text not null,
  -- The key columns' values of the last row read, as PostgreSQL's text forms (null: from the start).
  last_key     text[],
  chunks       bigint not null default 0,
  rows_read    bigint not null default 0,
  -- Rows appended: rows read minus those a streamed change of the same key made stale.
  rows_written bigint not null default 0,
  rows_total   bigint,
  last_error   text,
  requested_at timestamptz not null default now(),
  started_at   timestamptz,
  finished_at  timestamptz,
  updated_at   timestamptz not null default now()
);

create index cdc_snapshots_open on tributary.cdc_snapshots (source, id)
  where state in ('requested', 'running');
