import type { Logger } from '../logger.js';
import type { SinkBuildProgress } from '../projections/index.js';
import { createProgressBar, formatEta, type ProgressBar } from './progress.js';

export interface SinkBuildReporterOptions {
  logger: Logger;
  /** Where the bars go; a terminal gets bars, anything else structured log lines. @default process.stderr */
  stream?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Milliseconds between two progress log lines of one build. @default 5000 */
  intervalMs?: number;
  /** Milliseconds; a parameter for tests. @default Date.now */
  now?: () => number;
}

/**
 * Shows the builds of search indexes that `start` and `dev` run, as `rebuild` shows its
 * own: on a terminal a progress bar per build (documents done of the view's rows, rate,
 * ETA); otherwise a `sink build progress` log line when a build starts, every few seconds
 * while it backfills, when it catches up and when it is swapped in, with the same figures.
 */
export function createSinkBuildReporter(
  options: SinkBuildReporterOptions,
): (progress: SinkBuildProgress) => void {
  const stream = options.stream ?? process.stderr;
  const now = options.now ?? Date.now;
  const interval = options.intervalMs ?? 5000;
  const builds = new Map<
    string,
    { index: string; started: number; first: number; lastLine: number; bar?: ProgressBar }
  >();
  return (progress) => {
    let build = builds.get(progress.sink);
    if (!build || build.index !== progress.index) {
      build?.bar?.stop();
      build = {
        index: progress.index,
        started: now(),
        first: progress.done,
        lastLine: Number.NEGATIVE_INFINITY,
      };
      if (stream.isTTY === true) {
        build.bar = createProgressBar(
          `${progress.reason === 'first load' ? 'backfill' : 'reindex'} ${progress.sink}`,
          {
            stream,
            now,
            unit: 'docs',
          },
        );
      }
      builds.set(progress.sink, build);
    }
    if (build.bar) {
      if (progress.phase === 'done') {
        build.bar.finish(progress.total);
        builds.delete(progress.sink);
      } else build.bar.update({ done: progress.done, total: progress.total });
      return;
    }
    const at = now();
    if (progress.phase === 'backfill' && progress.done > build.first && at - build.lastLine < interval)
      return;
    build.lastLine = at;
    const rate = ((progress.done - build.first) * 1000) / Math.max(1, at - build.started);
    options.logger.info('sink build progress', {
      sink: progress.sink,
      index: progress.index,
      reason: progress.reason,
      phase: progress.phase,
      done: progress.done,
      total: progress.total,
      percent: progress.total > 0 ? Math.floor((progress.done * 100) / progress.total) : 100,
      docsPerSecond: Math.round(rate),
      eta: formatEta(progress.total - progress.done, rate),
    });
    if (progress.phase === 'done') builds.delete(progress.sink);
  };
}
