-- The append function, faster and with the notification made optional.
--
-- * One statement (insert ... on conflict do update) locks the stream row, creating it
--   if needed, reads its version and reserves the versions of the new events; a wrong
--   expected version raises, which undoes the reservation with the rest of the append.
-- * p_notify: pg_notify inside the transaction serializes the commits of all notifying
--   transactions (PostgreSQL holds a database-wide lock on the notification queue from
--   pre-commit until the commit is flushed). A store appending in autocommit passes
--   false and sends one coalesced notification after its appends commit; an append
--   inside a caller's transaction passes true, so the notification goes out at commit.
--   Notifications only wake subscribers early; they never carry data readers rely on.
--
-- Same semantics as 0001 otherwise: SQLSTATE TRB01 (detail: actual version) on a wrong
-- expected version, TRB02 (detail: JSON of repeated ids) when a batch only partly
-- repeats earlier ids, outcome 'duplicate' with the first result when it repeats all.

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
declare
  v_version  bigint;
  v_count    integer := cardinality(p_event_ids);
  v_existing integer;
begin
  if p_check_ids then
    -- Lock the stream first, so that concurrent appends of the same ids wait for each
    -- other here and the later one finds the earlier one's events.
    insert into tributary.streams (stream_id, version) values (p_stream_id, 0) on conflict do nothing;
    perform 1 from tributary.streams s where s.stream_id = p_stream_id for update;

    -- Idempotence comes before the version check: a retried append was decided against an older version.
    select count(*) into v_existing
    from tributary.events e
    where e.stream_id = p_stream_id and e.event_id = any (p_event_ids);

    if v_existing = v_count then
      return query
        select 'duplicate'::text, e.stream_position, e.transaction_id, e.global_position
        from tributary.events e
        where e.stream_id = p_stream_id and e.event_id = any (p_event_ids)
        order by e.stream_position desc
        limit 1;
      return;
    elsif v_existing > 0 then
      raise exception 'append repeats some event ids of stream % but not all', p_stream_id
        using errcode = 'TRB02',
              detail = (select coalesce(json_agg(e.event_id), '[]')::text
                        from tributary.events e
                        where e.stream_id = p_stream_id and e.event_id = any (p_event_ids));
    end if;
  end if;

  insert into tributary.streams as s (stream_id, version) values (p_stream_id, v_count)
  on conflict (stream_id) do update set version = s.version + v_count, updated_at = now()
  returning s.version - v_count into v_version;

  if p_expected = 'no_stream' then
    if v_version <> 0 then
      raise exception 'wrong expected version' using errcode = 'TRB01', detail = v_version::text;
    end if;
  elsif p_expected = 'stream_exists' then
    if v_version = 0 then
      raise exception 'wrong expected version' using errcode = 'TRB01', detail = v_version::text;
    end if;
  elsif p_expected <> 'any' then
    if v_version <> p_expected::bigint then
      raise exception 'wrong expected version' using errcode = 'TRB01', detail = v_version::text;
    end if;
  end if;

  return query
    with inserted as (
      insert into tributary.events (stream_id, stream_position, event_id, type, data, metadata, event_time)
      select p_stream_id, v_version + t.ord, t.id, t.type, t.data::jsonb, t.meta::jsonb, coalesce(t.at, now())
      from unnest(p_event_ids, p_types, p_data, p_metadata, p_event_times)
             with ordinality as t (id, type, data, meta, at, ord)
      order by t.ord
      returning events.transaction_id, events.global_position
    )
    select 'appended'::text, v_version + v_count, i.transaction_id, i.global_position
    from inserted i
    order by i.global_position desc
    limit 1;

  if p_notify then
    perform pg_notify('tributary_events', '');
  end if;
end;
$$;

-- The 0001 signature stays callable, with the notification at commit as before.
create or replace function tributary.append_events(
  p_stream_id   text,
  p_expected    text,
  p_event_ids   text[],
  p_types       text[],
  p_data        text[],
  p_metadata    text[],
  p_event_times timestamptz[],
  p_check_ids   boolean
) returns table (outcome text, next_version bigint, last_transaction_id xid8, last_global_position bigint)
language sql
as $$
  select * from tributary.append_events(
    p_stream_id, p_expected, p_event_ids, p_types, p_data, p_metadata, p_event_times, p_check_ids, true)
$$;
