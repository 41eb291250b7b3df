import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** What projection and capture lag is read from, when metrics are scraped. */
export interface LagProvider {
  projections(): Promise<readonly { name: string; lagEvents: number; lagSeconds: number }[]>;
  sources(): Promise<readonly { source: string; lagBytes: number | null; lagSeconds: number | null }[]>;
}

/** The usage figures of a connection pool (a `pg.Pool` has them). */
export interface PoolUsage {
  readonly totalCount: number;
  readonly idleCount: number;
  readonly waitingCount: number;
  readonly options: { max?: number | undefined };
}

export type OperationOutcome = 'ok' | 'error' | 'refused';

/**
 * The Prometheus metrics of one process, in a registry of their own (not prom-client's global
 * one, so that an application's metrics and Tributary's never collide). Give the same
 * instance to `createApi`, `startWorkers` and `startCapture` to see them all on one `/metrics`.
 */
export interface Metrics {
  readonly registry: Registry;
  /** The Prometheus text exposition of every metric. */
  render(): Promise<string>;
  readonly contentType: string;
  /** One HTTP request to the GraphQL path (refused ones included). */
  httpRequest(labels: { method: string; status: string }, seconds: number): void;
  /** One GraphQL operation; `seconds` is its execution time (none for subscriptions and refusals). */
  graphqlOperation(
    labels: { operation: string | undefined; type: string; outcome: OperationOutcome },
    seconds?: number,
  ): void;
  /** A subscription to a view opened; the function returned closes it (once). */
  subscriptionStarted(view: string): () => void;
  /** One projection batch: its whole duration, and the part that wrote and committed it. */
  projectionBatch(
    projection: string,
    batch: { seconds: number; commitSeconds?: number | undefined; events: number; committed: boolean },
  ): void;
  /** One log transaction of captured changes committed. */
  cdcCommit(source: string, commit: { seconds: number; transactions: number; events: number }): void;
  /** Reports a pool's connections (active, idle), waiting clients and size until the function returned is called. */
  trackPool(name: string, pool: PoolUsage): () => void;
  /** Reads projection and capture lag from this provider at each scrape, until the function returned is called. */
  watchLag(provider: LagProvider): () => void;
  /** A gauge read at each scrape, until the function returned is called. */
  observe(name: string, help: string, value: () => number): () => void;
}

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Distinct GraphQL operation names kept as label values; later ones are counted as `__other__`. */
const MAX_OPERATION_NAMES = 200;

export interface MetricsOptions {
  /** Node.js process metrics (CPU, memory, GC, event-loop lag: `process_*`, `nodejs_*`). @default true */
  processMetrics?: boolean;
}

export function createMetrics(options: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  if (options.processMetrics !== false) {
    // Includes nodejs_eventloop_lag_seconds and its percentiles (nodejs_eventloop_lag_p99_seconds, …).
    collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 10 });
  }
  const registers = [registry];
  // Every metric is registered in this registry alone; latencies share one set of buckets.
  const counter = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
    new Counter<L>({ name, help, labelNames, registers });
  const histogram = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
    new Histogram<L>({ name, help, labelNames, buckets: LATENCY_BUCKETS, registers });
  const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
    new Gauge<L>({ name, help, labelNames, registers });

  const httpRequests = counter(
    'tributary_api_requests_total',
    'HTTP requests to the GraphQL path, by method and status (refused ones included).',
    ['method', 'status'],
  );
  const httpDuration = histogram(
    'tributary_api_request_duration_seconds',
    'HTTP request latency on the GraphQL path (for SSE: until the stream opens).',
    ['method'],
  );
  const operations = counter(
    'tributary_graphql_operations_total',
    'GraphQL operations by operation name, type and outcome (ok, error: the result carries errors, refused: not executed).',
    ['operation', 'type', 'outcome'],
  );
  const operationDuration = histogram(
    'tributary_graphql_operation_duration_seconds',
    'Execution time of GraphQL queries and mutations, by operation name and type.',
    ['operation', 'type'],
  );
  const subscriptions = gauge('tributary_api_subscriptions', 'Open view subscriptions.', ['view']);
  const batchDuration = histogram(
    'tributary_projection_batch_duration_seconds',
    'Projection batches: read, handle, write and commit.',
    ['projection'],
  );
  const commitDuration = histogram(
    'tributary_projection_commit_duration_seconds',
    'The writing part of a committed projection batch: view writes, changelog, checkpoint and COMMIT.',
    ['projection'],
  );
  const eventsApplied = counter(
    'tributary_projection_events_total',
    'Log events applied by the projections of this process.',
    ['projection'],
  );
  const cdcCommitDuration = histogram(
    'tributary_cdc_commit_duration_seconds',
    'Log transactions of captured changes: from the last change written to COMMIT (checkpoint included).',
    ['source'],
  );
  const cdcTransactions = counter(
    'tributary_cdc_transactions_total',
    'Source transactions captured into the log by this process.',
    ['source'],
  );
  const cdcEvents = counter(
    'tributary_cdc_events_total',
    'Change events streamed into the log by this process (rows of an initial snapshot are not counted).',
    ['source'],
  );

  const pools = new Map<string, PoolUsage>();
  const poolGauge = (
    name: string,
    help: string,
    read: (pool: PoolUsage, set: (value: number, state?: string) => void) => void,
    state = false,
  ) =>
    new Gauge<string>({
      name,
      help,
      labelNames: state ? ['pool', 'state'] : ['pool'],
      registers,
      collect() {
        this.reset();
        for (const [pool, usage] of pools) {
          read(usage, (value, at) => this.set(at ? { pool, state: at } : { pool }, value));
        }
      },
    });
  poolGauge(
    'tributary_db_pool_connections',
    'Connections of a PostgreSQL pool, by state (active: checked out, idle).',
    (pool, set) => {
      set(pool.totalCount - pool.idleCount, 'active');
      set(pool.idleCount, 'idle');
    },
    true,
  );
  poolGauge(
    'tributary_db_pool_waiting',
    'Callers waiting for a connection of a PostgreSQL pool.',
    (pool, set) => set(pool.waitingCount),
  );
  poolGauge('tributary_db_pool_max', 'Connections a PostgreSQL pool may open.', (pool, set) =>
    set(pool.options.max ?? 10),
  );

  // Lag is read from the database at each scrape: one read for the four gauges.
  const lagProviders = new Set<LagProvider>();
  let lagRead: { at: number; value: Promise<Lag> } | undefined;
  const readLag = (): Promise<Lag> => {
    if (lagRead && Date.now() - lagRead.at < 1000) return lagRead.value;
    const value = (async () => {
      const lists = await Promise.all(
        [...lagProviders].map(async (provider) => {
          const [projections, sources] = await Promise.all([
            provider.projections().catch(() => []),
            provider.sources().catch(() => []),
          ]);
          return { projections, sources };
        }),
      );
      return {
        projections: lists.flatMap((list) => list.projections),
        sources: lists.flatMap((list) => list.sources),
      };
    })();
    lagRead = { at: Date.now(), value };
    return value;
  };
  const lagGauge = (
    name: string,
    help: string,
    label: 'projection' | 'source',
    values: (lag: Lag) => [string, number | null][],
  ) =>
    new Gauge({
      name,
      help,
      labelNames: [label],
      registers,
      async collect() {
        this.reset();
        if (lagProviders.size === 0) return;
        for (const [key, value] of values(await readLag())) {
          if (value !== null) this.set({ [label]: key }, value);
        }
      },
    });
  lagGauge(
    'tributary_projection_lag_events',
    'Log events a projection has not applied yet.',
    'projection',
    (lag) => lag.projections.map((p) => [p.name, p.lagEvents]),
  );
  lagGauge(
    'tributary_projection_lag_seconds',
    'Age of the oldest log event a projection has not applied.',
    'projection',
    (lag) => lag.projections.map((p) => [p.name, p.lagSeconds]),
  );
  lagGauge(
    'tributary_cdc_lag_bytes',
    'WAL bytes a change data capture source wrote that are not in the log yet.',
    'source',
    (lag) => lag.sources.map((s) => [s.source, s.lagBytes]),
  );
  lagGauge(
    'tributary_cdc_lag_seconds',
    'How far a change data capture source is behind its database, in seconds.',
    'source',
    (lag) => lag.sources.map((s) => [s.source, s.lagSeconds]),
  );

  const observed = new Map<string, Set<() => number>>();
  const operationNames = new Set<string>();
  const operationLabel = (name: string | undefined): string => {
    if (!name) return 'anonymous';
    const label = name.slice(0, 100);
    if (operationNames.has(label)) return label;
    if (operationNames.size >= MAX_OPERATION_NAMES) return '__other__';
    operationNames.add(label);
    return label;
  };

  return {
    registry,
    contentType: registry.contentType,
    render: () => registry.metrics(),
    httpRequest(labels, seconds) {
      httpRequests.inc(labels);
      httpDuration.observe({ method: labels.method }, seconds);
    },
    graphqlOperation(labels, seconds) {
      const operation = operationLabel(labels.operation);
      operations.inc({ operation, type: labels.type, outcome: labels.outcome });
      if (seconds !== undefined) operationDuration.observe({ operation, type: labels.type }, seconds);
    },
    subscriptionStarted(view) {
      subscriptions.inc({ view });
      let ended = false;
      return () => {
        if (ended) return;
        ended = true;
        subscriptions.dec({ view });
      };
    },
    projectionBatch(projection, batch) {
      batchDuration.observe({ projection }, batch.seconds);
      if (batch.committed && batch.commitSeconds !== undefined)
        commitDuration.observe({ projection }, batch.commitSeconds);
      if (batch.committed && batch.events > 0) eventsApplied.inc({ projection }, batch.events);
    },
    cdcCommit(source, commit) {
      cdcCommitDuration.observe({ source }, commit.seconds);
      cdcTransactions.inc({ source }, commit.transactions);
      cdcEvents.inc({ source }, commit.events);
    },
    trackPool(name, pool) {
      pools.set(name, pool);
      return () => {
        if (pools.get(name) === pool) pools.delete(name);
      };
    },
    watchLag(provider) {
      lagProviders.add(provider);
      lagRead = undefined;
      return () => {
        lagProviders.delete(provider);
        lagRead = undefined;
      };
    },
    observe(name, help, value) {
      let values = observed.get(name);
      if (values === undefined) {
        const read = new Set<() => number>();
        values = read;
        observed.set(name, read);
        new Gauge({
          name,
          help,
          registers,
          collect() {
            let sum = 0;
            for (const fn of read) sum += fn();
            this.set(sum);
          },
        });
      }
      values.add(value);
      return () => {
        values.delete(value);
      };
    },
  };
}

interface Lag {
  projections: { name: string; lagEvents: number; lagSeconds: number }[];
  sources: { source: string; lagBytes: number | null; lagSeconds: number | null }[];
}
