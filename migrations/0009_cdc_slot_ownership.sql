-- Which replication slot and publication each source is captured through, and which
-- incarnation of that slot this log created. The row is written before the slot is
-- created, so that a capture can tell its own half-made slot (an interrupted snapshot,
-- which it may drop) from a slot of the same name that another deployment made (which
-- it must never drop or read).

create table tributary.cdc_slots (
  source              text primary key,
  slot_name           text not null,
  publication_name    text not null,
  -- Whether this log created the publication (then `cdc drop` may drop it).
  publication_created boolean not null default false,
  -- The source cluster (pg_control_system().system_identifier; null where it is not
  -- readable) and database the slot was made in.
  source_system_id    text,
  source_database     text not null,
  -- The source's WAL position just before this log asked for the slot, then the slot's
  -- consistent point once it exists. A slot of this name whose position is elsewhere is
  -- another incarnation: not this log's.
  requested_lsn       pg_lsn,
  created_lsn         pg_lsn,
  created_at          timestamptz not null default now()
);

-- The furthest position this log has allowed the slot to be confirmed to: the commit of the
-- last captured transaction, or beyond it when the transactions in between had nothing to
-- capture. Always written before the slot is told, so a slot confirmed past it was read by
-- someone else. Null in checkpoints written before this column existed.
alter table tributary.cdc_checkpoints add column confirmed_lsn pg_lsn;
