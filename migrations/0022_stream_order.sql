-- Readers take the log in (transaction_id, global_position) order. A transaction's id is
-- assigned at its first write, not when it takes a stream's lock, so a transaction that began
-- writing earlier (a multi-stream append, CDC's log transaction, an append inside an
-- application's own transaction after other writes) could append to a stream after a
-- transaction with a later id had appended to it and committed. Readers would then see that
-- stream's events out of stream order: version 2 before version 1.
--
-- Two parts keep each stream in stream order:
--
-- 1. Every stream remembers the transaction that last moved its version. A transaction may
--    move it only if its own id is not older; otherwise it is refused with SQLSTATE 40001
--    (serialization_failure; constraint 'streams_keep_order', detail the stream id), and
--    running it again, with a new and therefore newer id, succeeds. One trigger keeps the rule
--    for every writer: the append functions, multi-stream appends and COPY appends all move
--    the version on this row while holding its lock.
--
-- 2. The append functions take a transaction-scoped advisory lock on the stream before they
--    write anything. Taking it assigns no transaction id, so an append that is its
--    transaction's first write gets its id only once every earlier append to the stream has
--    committed: its id is newer, and the rule never refuses it.

alter table tributary.streams add column last_transaction_id xid8;

create function tributary.keep_stream_order() returns trigger
language plpgsql
as $$
declare
  v_xid  xid8;
  v_last xid8;
begin
  if tg_op = 'INSERT' then
    -- Before the row exists the transaction may not have an id yet (assigning one here would
    -- do it before the conflict check, and so before the lock); the next append finds it
    -- through the event that holds the stream's version.
    new.last_transaction_id := pg_current_xact_id_if_assigned();
    return new;
  end if;
  if new.version = old.version then
    return new;
  end if;
  v_xid := pg_current_xact_id();
  v_last := old.last_transaction_id;
  if v_last is null then
    -- The event that holds the stream's current version (a COPY append writes its own
    -- events before it moves the version, so the stream's newest event may be this one's).
    select e.transaction_id into v_last
      from tributary.events e
     where e.stream_id = old.stream_id and e.stream_position = old.version;
  end if;
  if v_last > v_xid then
    raise exception 'stream % was appended to by a transaction that began writing after this one', old.stream_id
      using errcode = '40001',
            constraint = 'streams_keep_order',
            detail = old.stream_id,
            hint = 'Run the transaction again: its events would otherwise be read before events already in the stream.';
  end if;
  new.last_transaction_id := v_xid;
  return new;
end;
$$;

create trigger streams_keep_order
  before insert or update of version on tributary.streams
  for each row execute function tributary.keep_stream_order();

-- The append functions, renamed, behind wrappers that take the stream's advisory lock first.
-- The lock's first key marks Tributary's stream locks (0x54524200, "TRB"), the second is the
-- stream id's hash; two streams that share a hash only wait for each other.

alter function tributary.append_events_json(text, text, jsonb, boolean, boolean)
  rename to append_events_json_locked;

create function tributary.append_events_json(
  p_stream_id text,
  p_expected  text,
  p_events    jsonb,
  p_check_ids boolean,
  p_notify    boolean
) returns table (outcome text, next_version bigint, last_transaction_id xid8, last_global_position bigint)
language plpgsql
as $$
begin
  perform pg_advisory_xact_lock(1414676992, hashtext(p_stream_id));
  return query select * from tributary.append_events_json_locked(p_stream_id, p_expected, p_events, p_check_ids, p_notify);
end;
$$;

alter function tributary.append_events(text, text, text[], text[], text[], text[], timestamptz[], boolean, boolean)
  rename to append_events_locked;

create function tributary.append_events(
  p_stream_id   text,
  p_expected    text,
  p_event_ids   text[],
  p_types       text[],
  p_data        text[],
  p_metadata    text[],
  p_event_times timestamptz[],
  p_check_ids   boolean,
  p_notify      boolean
) returns table (outcome text, next_version bigint, last_transaction_id xid8, last_global_position bigint)
language plpgsql
as $$
begin
  perform pg_advisory_xact_lock(1414676992, hashtext(p_stream_id));
  return query select * from tributary.append_events_locked(
    p_stream_id, p_expected, p_event_ids, p_types, p_data, p_metadata, p_event_times, p_check_ids, p_notify);
end;
$$;
