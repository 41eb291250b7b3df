-- tributary: no-transaction
--
-- Partitioned projections read one slice of the log each: the events whose stream falls in
-- their partition, in position order, under the same visibility rule as every reader. A
-- stream falls in one of 64 buckets (the first byte of the MD5 of its id, modulo 64); partition
-- p of N holds the buckets b with b % N = p. src/ingest/log/partitions.ts computes the same
-- bucket in the process, and a test holds the two equal.
--
-- The index orders each bucket by position, so a partition reads its buckets merged in
-- position order (a Merge Append of index scans) and touches only its own events. It is built
-- CONCURRENTLY, outside a transaction, so that appends go on while a large log is indexed.

create or replace function tributary.partition_bucket(stream_id text) returns integer
language sql immutable strict parallel safe
return get_byte(decode(md5(stream_id), 'hex'), 0) % 64;

-- A failed earlier run may have left the index INVALID: start it over.
drop index concurrently if exists tributary.events_partition_idx;

create index concurrently events_partition_idx
  on tributary.events (tributary.partition_bucket(stream_id), transaction_id, global_position);
