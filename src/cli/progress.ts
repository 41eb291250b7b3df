import cliProgress from 'cli-progress';
import type { Progress } from '../projections/index.js';

/**
 * A progress bar for long log reads: events done / total, rate and ETA. On a
 * terminal it redraws in place; otherwise it prints a line every few seconds.
 */
export function createProgressBar(label: string) {
  const started = Date.now();
  const tty = process.stderr.isTTY === true;
  const bar = new cliProgress.SingleBar(
    {
      format: `${label} [{bar}] {value}/{total} events | {rate} ev/s | ETA {eta_formatted}`,
      stream: process.stderr,
      noTTYOutput: !tty,
      notTTYSchedule: 5000,
      etaBuffer: 50,
      hideCursor: tty,
    },
    cliProgress.Presets.shades_classic,
  );
  let startedBar = false;
  return {
    update(progress: Progress) {
      const rate = Math.round((progress.done * 1000) / Math.max(1, Date.now() - started));
      if (!startedBar) {
        bar.start(Math.max(progress.total, 1), progress.done, { rate });
        startedBar = true;
      }
      bar.setTotal(Math.max(progress.total, progress.done, 1));
      bar.update(progress.done, { rate });
    },
    stop() {
      if (startedBar) bar.stop();
    },
  };
}
