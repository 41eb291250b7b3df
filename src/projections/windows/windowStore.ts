import type { Queryable } from '../../db/index.js';
import type { JsonValue } from '../../ingest/index.js';
import type { EngineChanges, EngineSnapshot, WindowState } from './engine.js';
import { emptyTriggerState, isEmptyTriggerState, type TriggerState } from './triggerMachine.js';
import type { EngineOutput, PaneTiming } from './types.js';
import { MAX_WATERMARK, MIN_WATERMARK, type WatermarkState } from './watermarks.js';

interface StateRow {
  key: string;
  window_start: string;
  window_end: string;
  total: JsonValue;
  pending: JsonValue;
  pending_count: number;
  element_count: string;
  next_pane_index: number;
  on_time_at: string | null;
  timer_at: string | null;
  last_emitted: JsonValue;
  has_emitted: boolean;
  last_timing: PaneTiming | null;
  trigger_state: TriggerState | null;
  born_late: boolean;
}

/** Reads the watermark of an aggregate, creating its row on first use. */
export async function loadWatermark(db: Queryable, aggregate: string): Promise<WatermarkState> {
  await db.query(
    `insert into tributary.window_watermarks (aggregate, watermark) values ($1, $2) on conflict do nothing`,
    [aggregate, MIN_WATERMARK],
  );
  const { rows } = await db.query<{ watermark: string; sources: WatermarkState['sources'] }>(
    'select watermark::text, sources from tributary.window_watermarks where aggregate = $1',
    [aggregate],
  );
  const row = rows[0]!;
  return { watermark: Number(row.watermark), sources: row.sources };
}

/**
 * Loads every window a step can touch: all windows of `keys`, and every window whose ON_TIME
 * firing or expiry is at or before `watermarkBound`, or whose timer is due at `now`.
 */
export async function loadWindows(
  db: Queryable,
  aggregate: string,
  keys: readonly string[],
  watermarkBound: number,
  now: number,
): Promise<WindowState[]> {
  const { rows } = await db.query<StateRow>(
    `select key, window_start::text, window_end::text, total, pending, pending_count, element_count::text,
            next_pane_index, on_time_at::text, timer_at::text, last_emitted, has_emitted, last_timing,
            trigger_state, born_late
       from tributary.window_state
      where aggregate = $1
        and (key = any ($2::text[]) or on_time_at <= $3 or expires_at <= $3 or timer_at <= $4)`,
    [aggregate, keys, watermarkBound, now],
  );
  return rows.map((row) => ({
    key: row.key,
    window: { start: Number(row.window_start), end: Number(row.window_end) },
    total: row.total,
    pending: row.pending,
    pendingCount: row.pending_count,
    elementCount: Number(row.element_count),
    nextPaneIndex: row.next_pane_index,
    pastEnd: row.on_time_at === null,
    bornLate: row.born_late,
    lastEmitted: row.has_emitted ? row.last_emitted : undefined,
    lastTiming: row.last_timing,
    trigger: row.trigger_state ?? emptyTriggerState(),
    timerAt: row.timer_at === null ? null : Number(row.timer_at),
  }));
}

export async function loadSnapshot(
  db: Queryable,
  aggregate: string,
  keys: readonly string[],
  watermarkBound: (current: WatermarkState) => number,
  now: number,
): Promise<EngineSnapshot> {
  const watermark = await loadWatermark(db, aggregate);
  const windows = await loadWindows(db, aggregate, keys, watermarkBound(watermark), now);
  return { watermark, windows };
}

/** Writes back what a step changed, the panes it fired and the elements it dropped. */
export async function saveStep(
  db: Queryable,
  aggregate: string,
  allowedLatenessMs: number,
  changes: EngineChanges,
  output: EngineOutput,
): Promise<void> {
  await db.query(
    `update tributary.window_watermarks
        set watermark = $2, sources = $3, dropped_count = dropped_count + $4, updated_at = now()
      where aggregate = $1`,
    [
      aggregate,
      changes.watermark.watermark,
      JSON.stringify(changes.watermark.sources),
      output.dropped.length,
    ],
  );
  if (changes.deleted.length > 0) {
    await db.query(
      `delete from tributary.window_state s
        using unnest($2::text[], $3::bigint[], $4::bigint[]) d (key, window_start, window_end)
        where s.aggregate = $1 and s.key = d.key and s.window_start = d.window_start and s.window_end = d.window_end`,
      [
        aggregate,
        changes.deleted.map((d) => d.key),
        changes.deleted.map((d) => d.window.start),
        changes.deleted.map((d) => d.window.end),
      ],
    );
  }
  const up = changes.upserted;
  if (up.length > 0) {
    await db.query(
      `insert into tributary.window_state as s (aggregate, key, window_start, window_end, total, pending, pending_count,
              element_count, next_pane_index, on_time_at, expires_at, timer_at, last_emitted, has_emitted, last_timing,
              trigger_state, born_late)
       select $1, u.* from unnest($2::text[], $3::bigint[], $4::bigint[], $5::jsonb[], $6::jsonb[], $7::int[],
              $8::bigint[], $9::int[], $10::bigint[], $11::bigint[], $12::bigint[], $13::jsonb[], $14::boolean[], $15::text[],
              $16::jsonb[], $17::boolean[]) u
       on conflict (aggregate, key, window_start, window_end) do update set
         total = excluded.total, pending = excluded.pending, pending_count = excluded.pending_count,
         element_count = excluded.element_count, next_pane_index = excluded.next_pane_index,
         on_time_at = excluded.on_time_at, expires_at = excluded.expires_at, timer_at = excluded.timer_at,
         last_emitted = excluded.last_emitted, has_emitted = excluded.has_emitted, last_timing = excluded.last_timing,
         trigger_state = excluded.trigger_state, born_late = excluded.born_late`,
      [
        aggregate,
        up.map((s) => s.key),
        up.map((s) => s.window.start),
        up.map((s) => s.window.end),
        up.map((s) => JSON.stringify(s.total)),
        up.map((s) => JSON.stringify(s.pending)),
        up.map((s) => s.pendingCount),
        up.map((s) => s.elementCount),
        up.map((s) => s.nextPaneIndex),
        up.map((s) => (s.pastEnd ? null : s.window.end)),
        up.map((s) => Math.min(s.window.end + allowedLatenessMs, MAX_WATERMARK)),
        up.map((s) => s.timerAt),
        up.map((s) => (s.lastEmitted === undefined ? null : JSON.stringify(s.lastEmitted))),
        up.map((s) => s.lastEmitted !== undefined),
        up.map((s) => s.lastTiming),
        up.map((s) => (isEmptyTriggerState(s.trigger) ? null : JSON.stringify(s.trigger))),
        up.map((s) => s.bornLate),
      ],
    );
  }
  const panes = output.panes;
  if (panes.length > 0) {
    await db.query(
      `insert into tributary.window_panes (aggregate, key, window_start, window_end, pane_index, timing, is_final, value, retracted,
              fired_at_ms, input_watermark)
       select $1, p.* from unnest($2::text[], $3::bigint[], $4::bigint[], $5::int[], $6::text[], $7::boolean[],
              $8::jsonb[], $9::jsonb[], $10::bigint[], $11::bigint[]) p`,
      [
        aggregate,
        panes.map((p) => p.key),
        panes.map((p) => p.window.start),
        panes.map((p) => p.window.end),
        panes.map((p) => p.index),
        panes.map((p) => p.timing),
        panes.map((p) => p.isFinal),
        panes.map((p) => JSON.stringify(p.value)),
        panes.map((p) => (p.retracted === undefined ? null : JSON.stringify(p.retracted))),
        panes.map((p) => p.firedAt),
        panes.map((p) => p.watermark),
      ],
    );
  }
  const dropped = output.dropped;
  if (dropped.length > 0) {
    await db.query(
      `insert into tributary.window_late_events (aggregate, key, event_time, window_start, window_end, watermark, position, value)
       select $1, d.* from unnest($2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::text[], $8::jsonb[]) d`,
      [
        aggregate,
        dropped.map((d) => d.key),
        dropped.map((d) => d.eventTime),
        dropped.map((d) => d.window.start),
        dropped.map((d) => d.window.end),
        dropped.map((d) => d.watermark),
        dropped.map((d) => d.position),
        dropped.map((d) => JSON.stringify(d.value)),
      ],
    );
  }
}

/** The earliest processing time at which a timer of `aggregate` is due, if any. */
export async function nextTimer(db: Queryable, aggregate: string): Promise<number | null> {
  const { rows } = await db.query<{ at: string | null }>(
    'select min(timer_at)::text as at from tributary.window_state where aggregate = $1 and timer_at is not null',
    [aggregate],
  );
  const at = rows[0]?.at;
  return at == null ? null : Number(at);
}

/** Removes every trace of an aggregate's state (rebuilds and tests start from nothing). */
export async function resetWindowState(db: Queryable, aggregate: string): Promise<void> {
  for (const table of ['window_state', 'window_watermarks', 'window_panes', 'window_late_events']) {
    await db.query(`delete from tributary.${table} where aggregate = $1`, [aggregate]);
  }
}
