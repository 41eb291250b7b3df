-- GraphQL API: wake subscription tailers when changelog rows commit, and remember how far
-- the changelog has been pruned so that an expired cursor is refused instead of skipping changes.

create function tributary.notify_view_changes() returns trigger
language plpgsql as $$
begin
  -- Delivered at commit; identical payloads within a transaction are folded into one.
  perform pg_notify('tributary_view_changes', '');
  return null;
end;
$$;

create trigger view_changes_notify
  after insert on tributary.view_changes
  for each statement execute function tributary.notify_view_changes();

create table tributary.view_changes_pruned (
  -- Exactly one row.
  id              boolean primary key default true check (id),
  -- Cursor (log position format) of the last pruned change; cursors before it have expired.
  pruned_through  text not null,
  pruned_at       timestamptz not null default now()
);
