-- Windowed aggregations: per-window state with its timers, the watermark, the pane log and
-- dropped late elements. All of it is written in the projection's batch transaction, together
-- with the checkpoint, so a crash never loses or repeats a firing.
--
-- Times are milliseconds since the epoch (event time for windows and watermarks, processing
-- time for timers). `aggregate` is the windowed aggregate's name.

create table tributary.window_watermarks (
  aggregate      text primary key,
  watermark      bigint not null,
  -- Per watermark source: {"<source>": {"maxEventTime": ms, "lastSeenAt": ms}}.
  sources        jsonb not null default '{}',
  dropped_count  bigint not null default 0,
  updated_at     timestamptz not null default now()
);

create table tributary.window_state (
  aggregate        text not null,
  key              text not null,
  window_start     bigint not null,
  window_end       bigint not null,
  total            jsonb not null,
  pending          jsonb not null,
  pending_count    integer not null,
  element_count    bigint not null,
  next_pane_index  integer not null,
  -- Event time of the ON_TIME firing; null once the watermark has passed the end of the window.
  on_time_at       bigint,
  -- Event time at which the window expires (end + allowed lateness).
  expires_at       bigint not null,
  -- Processing time of the scheduled early or late firing, if any: the window's timer.
  timer_at         bigint,
  last_emitted     jsonb,
  has_emitted      boolean not null default false,
  last_timing      text,
  primary key (aggregate, key, window_start, window_end)
);
create index window_state_on_time_idx on tributary.window_state (aggregate, on_time_at) where on_time_at is not null;
create index window_state_expires_idx on tributary.window_state (aggregate, expires_at);
create index window_state_timer_idx on tributary.window_state (aggregate, timer_at) where timer_at is not null;

-- Every pane ever fired, in firing order. The unique key makes a repeated firing impossible.
create table tributary.window_panes (
  seq           bigint generated always as identity primary key,
  aggregate     text not null,
  key           text not null,
  window_start  bigint not null,
  window_end    bigint not null,
  pane_index    integer not null,
  timing        text not null check (timing in ('EARLY', 'ON_TIME', 'LATE')),
  is_final      boolean not null,
  value         jsonb,
  retracted     jsonb,
  fired_at      timestamptz not null default now(),
  unique (aggregate, key, window_start, window_end, pane_index)
);

-- Elements that arrived after their window expired, kept so that users can see what was dropped.
create table tributary.window_late_events (
  id            bigint generated always as identity primary key,
  aggregate     text not null,
  key           text not null,
  event_time    bigint not null,
  window_start  bigint not null,
  window_end    bigint not null,
  watermark     bigint not null,
  position      text,
  value         jsonb,
  recorded_at   timestamptz not null default now()
);
create index window_late_events_aggregate_idx on tributary.window_late_events (aggregate, id);
