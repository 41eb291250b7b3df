-- The append function with the batch as one jsonb array, for large batches (CDC appends
-- thousands of captured rows per statement).
--
-- p_events: [{"id": text, "type": text, "data": object, "metadata": object, "at": ISO time or null}, …]
-- in stream order. One jsonb parameter costs the client one string, where six text[]
-- parameters cost an escaped copy of every element and the server a second parse of each
-- data and metadata text; data and metadata are taken out of the array as jsonb as they are.
--
-- Same semantics as append_events (0003): SQLSTATE TRB01 (detail: actual version) on a wrong
-- expected version, TRB02 (detail: JSON of repeated ids) when a batch only partly repeats
-- earlier ids, outcome 'duplicate' with the first result when it repeats all. p_check_ids
-- false skips that probe: the caller guarantees it never repeats an id, and a repeat then
-- raises a unique violation instead of being a no-op.

create function tributary.append_events_json(
  p_stream_id text,
  p_expected  text,
  p_events    jsonb,
  p_check_ids boolean,
  p_notify    boolean
) returns table (outcome text, next_version bigint, last_transaction_id xid8, last_global_position bigint)
language plpgsql
as $$
declare
  v_version  bigint;
  v_count    integer := jsonb_array_length(p_events);
  v_ids      text[];
  v_existing integer;
begin
  if p_check_ids then
    -- Lock the stream first, so that concurrent appends of the same ids wait for each
    -- other here and the later one finds the earlier one's events.
    insert into tributary.streams (stream_id, version) values (p_stream_id, 0) on conflict do nothing;
    perform 1 from tributary.streams s where s.stream_id = p_stream_id for update;

    select array_agg(x.e ->> 'id') into v_ids from jsonb_array_elements(p_events) as x (e);

    -- Idempotence comes before the version check: a retried append was decided against an older version.
    select count(*) into v_existing
    from tributary.events e
    where e.stream_id = p_stream_id and e.event_id = any (v_ids);

    if v_existing = v_count then
      return query
        select 'duplicate'::text, e.stream_position, e.transaction_id, e.global_position
        from tributary.events e
        where e.stream_id = p_stream_id and e.event_id = any (v_ids)
        order by e.stream_position desc
        limit 1;
      return;
    elsif v_existing > 0 then
      raise exception 'append repeats some event ids of stream % but not all', p_stream_id
        using errcode = 'TRB02',
              detail = (select coalesce(json_agg(e.event_id), '[]')::text
                        from tributary.events e
                        where e.stream_id = p_stream_id and e.event_id = any (v_ids));
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
      select p_stream_id, v_version + t.ord, t.e ->> 'id', t.e ->> 'type', t.e -> 'data', t.e -> 'metadata',
             coalesce((t.e ->> 'at')::timestamptz, now())
      from jsonb_array_elements(p_events) with ordinality as t (e, ord)
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
