import cliProgress from 'cli-progress';
import type { Progress } from '../projections/index.js';

export interface ProgressBarOptions {
  /** @default process.stderr */
  stream?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Milliseconds; a parameter for tests. @default Date.now */
  now?: () => number;
  /** What is counted. @default 'events' */
  unit?: string;
}

export interface ProgressBar {
  update(progress: Pick<Progress, 'done' | 'total'> & Partial<Progress>): void;
  /** Shows the final frame: `events` of `events` done. */
  finish(events: number): void;
  /** Removes the bar as it stands (after a failure). */
  stop(): void;
}

/**
 * A progress bar for long log reads: events done / total, rate and ETA. On a
 * terminal it redraws in place; otherwise it prints a line every few seconds.
 */
export function createProgressBar(label: string, options: ProgressBarOptions = {}): ProgressBar {
  const stream = options.stream ?? process.stderr;
  const now = options.now ?? Date.now;
  const tty = stream.isTTY === true;
  const unit = options.unit ?? 'events';
  const perSecond = unit === 'events' ? 'ev/s' : `${unit}/s`;
  const bar = new cliProgress.SingleBar(
    {
      format: `${label} [{bar}] {value}/{total} ${unit} | {rate} ${perSecond} | ETA {remaining}`,
      stream,
      noTTYOutput: !tty,
      notTTYSchedule: 5000,
      hideCursor: tty,
    },
    cliProgress.Presets.shades_classic,
  );
  const started = now();
  let first: number | undefined;
  let active = false;
  const show = (done: number, total: number) => {
    const elapsed = Math.max(1, now() - started);
    const rate = ((done - (first ?? done)) * 1000) / elapsed;
    const payload = { rate: Math.round(rate), remaining: formatEta(total - done, rate) };
    if (!active) {
      bar.start(total, done, payload);
      active = true;
    }
    bar.setTotal(total);
    bar.update(done, payload);
  };
  return {
    update(progress) {
      first ??= progress.done;
      show(progress.done, Math.max(progress.total, progress.done, 1));
    },
    finish(events) {
      first ??= 0;
      show(events, events);
      this.stop();
    },
    stop() {
      if (active) bar.stop();
      active = false;
    },
  };
}

/**
 * The time left at `rate` events per second, as `42s`, `3m05s` or `2h10m`; `0s` when
 * nothing is left, `--` while the rate is not known yet.
 */
export function formatEta(remainingEvents: number, rate: number): string {
  if (remainingEvents <= 0) return '0s';
  if (!(rate > 0) || !Number.isFinite(rate)) return '--';
  const seconds = Math.ceil(remainingEvents / rate);
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${String(seconds % 60).padStart(2, '0')}s`;
  if (seconds >= 100 * 3600) return '>99h';
  return `${Math.floor(seconds / 3600)}h${String(Math.floor((seconds % 3600) / 60)).padStart(2, '0')}m`;
}
