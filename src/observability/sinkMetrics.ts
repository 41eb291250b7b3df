import { Counter, Gauge, type Registry } from 'prom-client';
import type { Metrics } from './metrics.js';

/** How far a sink is behind the changelog of its view. */
export interface SinkLag {
  /** Changelog entries not yet acknowledged by the backend. */
  events: number;
  /** Age of the oldest entry not yet acknowledged (0 when none). */
  seconds: number;
}

export interface SinkMetricsOptions {
  /** The sink's name: the `sink` label. */
  sink: string;
  /** Read the lag at each scrape (instead of, or besides, `setLag`). */
  lag?: () => SinkLag | Promise<SinkLag>;
}

export interface SinkMetrics {
  /** Sets the lag, e.g. after each acknowledged batch. */
  setLag(lag: SinkLag): void;
  /** Counts documents the backend acknowledged. */
  written(documents: number): void;
  /** Counts a failed push (it will be retried). */
  failed(): void;
  /** Stops reporting this sink. */
  remove(): void;
}

interface SinkState {
  lagEvents: Gauge<'sink'>;
  lagSeconds: Gauge<'sink'>;
  documents: Counter<'sink'>;
  failures: Counter<'sink'>;
  set: Map<string, SinkLag>;
  read: Map<string, NonNullable<SinkMetricsOptions['lag']>>;
}

const states = new WeakMap<Registry, SinkState>();

/**
 * Registers a sink's metrics on a process's metrics: `tributary_sink_lag_events`,
 * `tributary_sink_lag_seconds`, `tributary_sink_documents_total` and
 * `tributary_sink_failures_total`, each labelled with the sink's name.
 */
export function registerSinkMetrics(metrics: Metrics, options: SinkMetricsOptions): SinkMetrics {
  const state = stateOf(metrics.registry);
  const { sink } = options;
  if (options.lag) state.read.set(sink, options.lag);
  return {
    setLag(lag) {
      state.set.set(sink, lag);
    },
    written(documents) {
      state.documents.inc({ sink }, documents);
    },
    failed() {
      state.failures.inc({ sink });
    },
    remove() {
      state.set.delete(sink);
      state.read.delete(sink);
      state.documents.remove({ sink });
      state.failures.remove({ sink });
    },
  };
}

function stateOf(registry: Registry): SinkState {
  let state = states.get(registry);
  if (state) return state;
  const set = new Map<string, SinkLag>();
  const read = new Map<string, NonNullable<SinkMetricsOptions['lag']>>();
  let current: { at: number; value: Promise<Map<string, SinkLag>> } | undefined;
  // Both gauges read the lag once per scrape.
  const lags = (): Promise<Map<string, SinkLag>> => {
    if (current && Date.now() - current.at < 1000) return current.value;
    const value = (async () => {
      const all = new Map(set);
      await Promise.all(
        [...read].map(async ([sink, fn]) => {
          const lag = await Promise.resolve()
            .then(fn)
            .catch(() => undefined);
          if (lag) all.set(sink, lag);
        }),
      );
      return all;
    })();
    current = { at: Date.now(), value };
    return value;
  };
  const registers = [registry];
  const lagGauge = (name: string, help: string, pick: (lag: SinkLag) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['sink'] as const,
      registers,
      async collect() {
        this.reset();
        for (const [sink, lag] of await lags()) this.set({ sink }, pick(lag));
      },
    });
  state = {
    lagEvents: lagGauge(
      'tributary_sink_lag_events',
      'Changelog entries of its view a sink has not pushed to its backend yet.',
      (lag) => lag.events,
    ),
    lagSeconds: lagGauge(
      'tributary_sink_lag_seconds',
      'Age of the oldest changelog entry a sink has not pushed yet.',
      (lag) => lag.seconds,
    ),
    documents: new Counter({
      name: 'tributary_sink_documents_total',
      help: 'Documents a sink pushed and its backend acknowledged.',
      labelNames: ['sink'] as const,
      registers,
    }),
    failures: new Counter({
      name: 'tributary_sink_failures_total',
      help: 'Failed pushes of a sink (retried).',
      labelNames: ['sink'] as const,
      registers,
    }),
    set,
    read,
  };
  states.set(registry, state);
  return state;
}
