-- The log: one total order over application events and captured changes.
--
-- Positions are (transaction_id, global_position). Readers only return rows whose
-- transaction is below pg_snapshot_xmin(pg_current_snapshot()): every transaction
-- that could still commit a row ordered before them has finished. Reading by
-- max(global_position) instead would skip rows of transactions that commit late.

create table tributary.streams (
  stream_id  text primary key,
  -- Number of events in the stream; 0 only while the first append is in flight.
  version    bigint not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table tributary.events (
  transaction_id  xid8 not null default pg_current_xact_id(),
  global_position bigint generated always as identity,
  stream_id       text not null,
  stream_position bigint not null,
  event_id        text not null,
  type            text not null,
  data            jsonb not null,
  metadata        jsonb not null,
  event_time      timestamptz not null,
  recorded_at     timestamptz not null default now(),
  primary key (transaction_id, global_position)
);

create unique index events_stream_position_key on tributary.events (stream_id, stream_position);
create unique index events_stream_event_id_key on tributary.events (stream_id, event_id);

-- Appends a batch to one stream atomically.
--   p_expected: 'any', 'no_stream', 'stream_exists' or a decimal version.
-- Raises SQLSTATE TRB01 (detail: actual version) on a wrong expected version and
-- TRB02 (detail: JSON of repeated ids) when a batch only partly repeats earlier ids.
-- A batch whose ids are all already in the stream is a no-op returning the result
-- of the append that wrote them (outcome 'duplicate').
create function tributary.append_events(
  p_stream_id   text,
  p_expected    text,
  p_event_ids   text[],
  p_types       text[],
  p_data        text[],
  p_metadata    text[],
  p_event_times timestamptz[],
  p_check_ids   boolean
) returns table (outcome text, next_version bigint, last_transaction_id xid8, last_global_position bigint)
language plpgsql
as $$
declare
  v_version  bigint;
  v_count    integer := cardinality(p_event_ids);
  v_existing integer;
begin
  -- Lock the stream row (creating it if needed): appends to one stream are serialized here.
  select s.version into v_version from tributary.streams s where s.stream_id = p_stream_id for update;
  if not found then
    insert into tributary.streams (stream_id, version) values (p_stream_id, 0) on conflict do nothing;
    select s.version into v_version from tributary.streams s where s.stream_id = p_stream_id for update;
  end if;

  -- Idempotence comes before the version check: a retried append was decided against an older version.
  if p_check_ids then
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

  update tributary.streams s set version = v_version + v_count, updated_at = now() where s.stream_id = p_stream_id;
  -- Delivered at commit; subscribers wake up and read (the payload carries nothing they rely on).
  perform pg_notify('tributary_events', '');
end;
$$;
