import { assertIdentifier, type Queryable } from '../db/index.js';
import { ValidationError } from '../errors.js';
import { type Envelope, type LogFilter, MAX_PARTITIONS, type Position } from '../ingest/index.js';
import { NotPartitionableError } from './errors.js';
import type { KeyedState } from './keyedState.js';
import { checkSqlStep, type SqlProjectionStep } from './sqlStep.js';
import type { ColumnDefinition, ColumnInputs, ColumnValues, ViewDefinition } from './view.js';

/** A row as handlers write it: every column by name. */
export type Row = Record<string, unknown>;

/** Any view definition, whatever its columns (structural, so specific views fit). */
export type AnyView = Pick<
  ViewDefinition,
  'name' | 'columns' | 'primaryKey' | 'indexes' | 'fillfactor' | 'search' | 'description'
>;

/** The row type of a view given by definition; a plain record for a view given by name. */
export type RowFor<V> = V extends { columns: infer C extends Record<string, ColumnDefinition> }
  ? { [K in keyof C]: ColumnValues[C[K]['type']] | (C[K]['nullable'] extends false ? never : null) }
  : Row;

/** The row type a handler may write to a view: Dates and numbers are accepted where exact text is stored. */
export type RowInputFor<V> = V extends { columns: infer C extends Record<string, ColumnDefinition> }
  ? { [K in keyof C]: ColumnInputs[C[K]['type']] | (C[K]['nullable'] extends false ? never : null) }
  : Row;

/**
 * What a handler reads and writes views through. Every method names the view (its
 * definition or its name). Reads see the batch's own earlier writes; nothing is
 * visible to anyone else before the batch commits, together with the checkpoint.
 */
export interface ViewContext {
  /** The row with this primary key (an object of the key columns), or undefined. */
  get<V extends AnyView | string>(view: V, key: Partial<RowInputFor<V>>): Promise<RowFor<V> | undefined>;
  /** Inserts or replaces the whole row; columns left out are null. */
  upsert<V extends AnyView | string>(view: V, row: Partial<RowInputFor<V>>): Promise<void>;
  /**
   * Changes some columns of an existing row and returns the new row; a missing row
   * is left missing and undefined is returned.
   */
  patch<V extends AnyView | string>(
    view: V,
    key: Partial<RowInputFor<V>>,
    changes: Partial<RowInputFor<V>>,
  ): Promise<RowFor<V> | undefined>;
  /** Deletes the row with this key; true when there was one. */
  delete<V extends AnyView | string>(view: V, key: Partial<RowInputFor<V>>): Promise<boolean>;
  /** Rows whose columns equal every value in `where` (all rows for `{}`), at most `limit`. */
  find<V extends AnyView | string>(
    view: V,
    where?: Partial<RowInputFor<V>>,
    options?: { limit?: number },
  ): Promise<RowFor<V>[]>;
}

/** What `handle(envelope, ctx)` gets: the view writes plus facts about the delivery. */
export interface HandlerContext extends ViewContext {
  /** The projection being run. */
  readonly projection: string;
  /** True during `tributary replay`: effects must be idempotent. */
  readonly replaying: boolean;
  /**
   * The projection's own keyed state (what a join keeps of one side until the other arrives),
   * committed with the views and the checkpoint; see KeyedState.
   */
  readonly state: KeyedState;
}

/**
 * The runner's transaction, handed to batch-level handlers and timers.
 *
 * Everything written through `client` and `views` commits together with the view
 * changelog and the checkpoint, or not at all. Write view tables through `views`
 * (so the changelog and the row cache stay right); use `client` for a projection's
 * own state tables. View writes are buffered until the commit: call `flush()`
 * before reading view tables through `client`.
 */
export interface BatchTransaction {
  /** The runner's PostgreSQL client, inside the batch transaction. */
  readonly client: Queryable;
  /** The same view-write context `handle` gets. */
  readonly views: HandlerContext;
  /** Processing time of this transaction, from the runner's clock. */
  readonly now: Date;
  /** The checkpoint this transaction starts from (the position after the last applied event). */
  readonly position: Position;
  /** Writes buffered view changes to the tables now (still inside the transaction). */
  flush(): Promise<void>;
  /**
   * Asks for `onTimer` to run at `at` (by the runner's clock); the earliest request
   * wins. Takes effect once this transaction commits.
   */
  scheduleTimer(at: Date): void;
}

export interface RetryPolicy {
  /** Attempts per event (or batch) before the failure policy applies. @default 3 */
  maxAttempts?: number;
  /** Delay before the second attempt; doubles each time. @default 200 */
  initialDelayMs?: number;
  /** @default 5000 */
  maxDelayMs?: number;
}

/** What happens to an event whose handler keeps failing. */
export type FailurePolicy = 'stop' | 'dead-letter';

export interface ProjectionDefinition<Views extends readonly AnyView[] = readonly AnyView[]> {
  /** Lower-case identifier, unique among projections. */
  name: string;
  /** Bump it whenever the views or the handler's meaning change, then rebuild. */
  version: number;
  /** The views this projection writes (and only it writes). */
  views: Views;
  /** Which events reach the handler (types, type prefixes, stream prefixes). @default every event */
  filter?: LogFilter;
  /**
   * Called once per envelope in log order. Deterministic given the envelope and the
   * views; writes only through `ctx`. Provide this or `handleBatch`.
   */
  handle?: (envelope: Envelope, ctx: HandlerContext) => Promise<void> | void;
  /**
   * Batch-level extension point: called once per batch with its envelopes in log
   * order, instead of `handle`. Writes go through `tx.views` and `tx.client`, and
   * commit atomically with the checkpoint. A throw retries the batch, then smaller
   * batches down to one envelope, before the failure policy applies to that envelope.
   */
  handleBatch?: (envelopes: readonly Envelope[], tx: BatchTransaction) => Promise<void>;
  /**
   * The projection as SQL, instead of `handle`: each event makes one row of a view, whose
   * columns are SQL expressions over the event, and a batch is applied by one statement
   * inside PostgreSQL (see SqlProjectionStep). For pass-through, mapping and selection views.
   * A failing statement is retried, then stops the projection (no dead letters: a batch
   * applies as a whole).
   */
  sql?: SqlProjectionStep;
  /**
   * The view keys the handler will read (`get`, `patch`, `delete`) for an envelope, so the
   * runner reads a whole batch's rows in one statement per view. Optional: without it the
   * runner learns where the keys are from the handler's reads (the stream id or a data field).
   * A key given here that the handler does not read costs a lookup, never a wrong row.
   */
  prefetch?: (envelope: Envelope) => Iterable<PrefetchKey>;
  /**
   * Processing-time timer hook. The runner calls it, under the lease and in its own
   * transaction (committed with a lease renewal, checkpoint unchanged), as soon as it
   * holds the projection and then whenever the time it returned has come, even when
   * no events arrive. Return the next wake-up time, or undefined for none (a batch
   * can ask again with `tx.scheduleTimer`). Time comes from the runner's `clock`.
   */
  onTimer?: (now: Date, tx: BatchTransaction) => Promise<Date | undefined>;
  /** @default 'stop' */
  onError?: FailurePolicy;
  retry?: RetryPolicy;
  /**
   * Whether `tributary replay` may re-deliver events this projection already applied.
   * `'idempotent'`: applying an event again leaves the views as they are (upserts of what the
   * event says, guards such as "skip an order already recorded"); replay is allowed.
   * `'unsafe'`: the handler accumulates (counters, sums, appends), so a replay would count
   * twice; only `tributary rebuild` recomputes it. Undeclared counts as unsafe.
   * @default undefined (replay refused unless forced)
   */
  replay?: ReplaySafety;
  /**
   * Splits the projection into this many partitions (1 to 64), each with its own checkpoint
   * and lease, run by whichever process holds it: a partition applies the events whose
   * partition key falls in it, in log order, exactly once. Events of one key always fall in
   * the same partition; events of different partitions are applied in no order relative to
   * each other. So every view row (and everything `get`, `patch`, `delete` and `find` read)
   * must belong to one partition key: e.g. views keyed by the stream id with the default key.
   * Only `handle` projections can be partitioned; keyed state is refused. Changing it is a
   * rebuild. @default 1 (no partitions: the projection runs as one)
   */
  partitions?: number;
  /**
   * The partition key of an envelope. @default its stream id, which the log indexes: a
   * partition reads only its own events. With a function, each partition reads the whole log
   * (after the filter) and keeps its share, and its lag in status is an estimate.
   */
  partitionBy?: (envelope: Envelope) => string;
}

/** A key `prefetch` says the handler will read: the view (or its name) and the key columns. */
export interface PrefetchKey {
  view: AnyView | string;
  key: Record<string, unknown>;
}

/** See `ProjectionDefinition.replay`. */
export type ReplaySafety = 'idempotent' | 'unsafe';

export type Projection = ProjectionDefinition<readonly AnyView[]>;

/** Declares a projection; checks it up front so mistakes surface when the config loads. */
export function defineProjection<const Views extends readonly AnyView[]>(
  definition: ProjectionDefinition<Views>,
): ProjectionDefinition<Views> {
  assertIdentifier(definition.name, 'projection name');
  if (!Number.isSafeInteger(definition.version) || definition.version < 1) {
    throw new ValidationError(
      `Projection '${definition.name}' has version ${String(definition.version)}; use a positive integer.`,
      { field: 'version' },
    );
  }
  const kinds = [definition.handle, definition.handleBatch, definition.sql].filter(
    (kind) => kind !== undefined,
  );
  if (kinds.length !== 1) {
    throw new ValidationError(
      `Projection '${definition.name}' needs exactly one of handle, handleBatch or sql.`,
      {
        field: 'handle',
      },
    );
  }
  const names = new Set<string>();
  for (const view of definition.views) {
    if (names.has(view.name)) {
      throw new ValidationError(`Projection '${definition.name}' lists view '${view.name}' twice.`);
    }
    names.add(view.name);
  }
  if (definition.onError !== undefined && !['stop', 'dead-letter'].includes(definition.onError)) {
    throw new ValidationError(
      `Projection '${definition.name}' has onError '${String(definition.onError)}'; use 'stop' or 'dead-letter'.`,
      { field: 'onError' },
    );
  }
  if (definition.sql) {
    checkSqlStep(definition.name, definition.sql, definition.views);
    if (definition.onError === 'dead-letter' || definition.prefetch) {
      throw new ValidationError(
        `Projection '${definition.name}' is written in SQL, which applies a batch as a whole: it cannot ${definition.prefetch ? 'take prefetch' : "dead-letter single events (onError: 'dead-letter')"}.`,
        {
          field: definition.prefetch ? 'prefetch' : 'onError',
          hint: 'Leave it out, or write the projection with handle.',
        },
      );
    }
  }
  checkPartitions(definition);
  if (definition.replay !== undefined && !['idempotent', 'unsafe'].includes(definition.replay)) {
    throw new ValidationError(
      `Projection '${definition.name}' has replay '${String(definition.replay)}'; use 'idempotent' or 'unsafe'.`,
      { field: 'replay' },
    );
  }
  return definition;
}

/** The number of partitions of a projection (1 when it is not partitioned). */
export function partitionCount(projection: Pick<Projection, 'partitions'>): number {
  return projection.partitions ?? 1;
}

function checkPartitions(definition: ProjectionDefinition<readonly AnyView[]>): void {
  const { name, partitions, partitionBy } = definition;
  if (partitions === undefined) {
    if (partitionBy !== undefined) {
      throw new ValidationError(`Projection '${name}' has partitionBy but no partitions.`, {
        field: 'partitions',
        hint: 'Give the number of partitions (partitions: 4), or leave partitionBy out.',
      });
    }
    return;
  }
  if (!Number.isInteger(partitions) || partitions < 1 || partitions > MAX_PARTITIONS) {
    throw new ValidationError(
      `Projection '${name}' has partitions ${String(partitions)}; use an integer from 1 to ${MAX_PARTITIONS}.`,
      { field: 'partitions' },
    );
  }
  if (partitionBy !== undefined && typeof partitionBy !== 'function') {
    throw new ValidationError(
      `Projection '${name}' has a partitionBy that is not a function of the envelope.`,
      {
        field: 'partitionBy',
        hint: 'Leave it out to partition by stream id, or give (envelope) => string.',
      },
    );
  }
  if (partitions === 1) return;
  if (definition.handleBatch) {
    throw new NotPartitionableError(
      name,
      'it has handleBatch (a batch handler, as windowed aggregates use), which sees the events of a batch together and keeps state across keys.',
    );
  }
  if (definition.sql) {
    throw new NotPartitionableError(
      name,
      'it is a SQL projection, applied batch by batch in log order.',
      'Leave out `partitions`: a SQL projection applies a batch in one statement inside PostgreSQL already.',
    );
  }
  if (definition.onTimer) {
    throw new NotPartitionableError(
      name,
      'it has onTimer, which acts on the projection as a whole, not on one partition.',
    );
  }
}

/** Checks a set of projections together: unique names, and each view written by one projection only. */
export function validateProjections(projections: readonly Projection[]): void {
  const names = new Set<string>();
  const owners = new Map<string, string>();
  for (const projection of projections) {
    if (names.has(projection.name)) {
      throw new ValidationError(`Two projections are named '${projection.name}'.`, {
        hint: 'Projection names must be unique.',
      });
    }
    names.add(projection.name);
    for (const view of projection.views) {
      const owner = owners.get(view.name);
      if (owner !== undefined) {
        throw new ValidationError(
          `View '${view.name}' is written by both '${owner}' and '${projection.name}'.`,
          {
            hint: 'Each view belongs to exactly one projection.',
          },
        );
      }
      owners.set(view.name, projection.name);
    }
  }
}

/** The projection that writes view `viewName`, or undefined. */
export function projectionOfView(
  projections: readonly Projection[],
  viewName: string,
): Projection | undefined {
  return projections.find((projection) => projection.views.some((view) => view.name === viewName));
}
