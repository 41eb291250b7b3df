-- Windowed aggregations: the trigger algebra and panes that say when they fired.
--
-- Each window keeps its trigger's state machine (finished bits and per-part counts and delays,
-- null when it holds nothing) and whether it came to exist after the watermark had passed its
-- end (its panes are then LATE). Each pane records the processing time at which it fired and the
-- input watermark then, both in milliseconds since the epoch.

alter table tributary.window_state
  add column trigger_state jsonb,
  add column born_late boolean not null default false;

alter table tributary.window_panes
  add column fired_at_ms bigint,
  add column input_watermark bigint;
