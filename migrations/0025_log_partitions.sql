-- Partitioned projections read one slice of the log each: the events whose stream falls in
-- their partition, in position order, under the same visibility rule as every reader. A
-- stream falls in one of 64 buckets (the first byte of the MD5 of its id, modulo 64); partition
-- p of N holds the buckets b with b % N = p. src/ingest/log/partitions.ts computes the same
-- bucket in the process, and a test holds the two equal.
--
-- A partition reads its buckets through an index on (bucket, transaction_id, global_position),
-- merged in position order (a Merge Append of index scans), and touches only its own events.
-- That index costs every append (10 to 20 % of their rate), so it is not built here: the first
-- process that runs a partitioned projection builds it, CONCURRENTLY so that appends go on
-- (ensurePartitionIndex), and a log whose projections are not partitioned never pays for it.

create or replace function tributary.partition_bucket(stream_id text) returns integer
language sql immutable strict parallel safe
return get_byte(decode(md5(stream_id), 'hex'), 0) % 64;
