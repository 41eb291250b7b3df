import { createHash } from 'node:crypto';
import type { Queryable } from '../../db/index.js';
import { sleep } from '../../sleep.js';
import type { Notifier } from './notifier.js';
import { formatPosition, maxPosition, type Position, parsePosition } from './position.js';

/**
 * The visibility rule, the invariant every reader of Tributary's ordered tables relies on.
 *
 * Rows are ordered by `(transaction_id, <sequence>)`, and a reader only returns rows of
 * transactions below the snapshot's xmin (`pg_snapshot_xmin(pg_current_snapshot())`):
 * every transaction that could still commit is at or above it, so nothing can later appear
 * before what was returned. Concurrent writers commit out of order; this is what makes a
 * checkpoint (a position) safe. Never use max(sequence) as one.
 *
 * The log (`tributary.events`) and the changelog (`tributary.view_changes`) both follow
 * it, and both read through this one function.
 */
export interface VisibleTable {
  /** Qualified table name; it is read with the alias `r`. */
  table: string;
  /** The column that orders rows within a transaction (with `transaction_id`, the position). */
  sequence: string;
  /** The select list (from `r`); it must select `xid` and `seq` as text for the positions. */
  columns: string;
}

export interface VisibleRead<Row> {
  rows: Row[];
  /** Where to read next: past the last row, or the visibility bound when the read was short. */
  next: Position;
  /** Committed rows exist past `next` but an older open transaction holds them back. */
  held: boolean;
}

/**
 * Up to `limit` rows after `from` in position order, below the visibility bound. One
 * statement, so the rows, the bound and `held` come from the same snapshot. `where` adds
 * conditions (on `r`), pushing their parameters after the first three.
 */
export async function readVisible<Row extends { xid: string; seq: string }>(
  db: Queryable,
  from: Position,
  table: VisibleTable,
  options: {
    limit: number;
    where?: (params: unknown[]) => string;
    /**
     * Read the rows matching any of these conditions (on `r`, each starting with `and`): one
     * ordered, limited scan per condition, merged in position order (a partition's buckets).
     */
    branches?: readonly string[];
  },
): Promise<VisibleRead<Row>> {
  const { transactionId, globalPosition } = parsePosition(from);
  const params: unknown[] = [transactionId.toString(), globalPosition.toString(), options.limit];
  const where = options.where?.(params) ?? '';
  const scan = (columns: string, branch: string) => `select ${columns}
       from ${table.table} r
       where (r.transaction_id, r.${table.sequence}) > ($1::xid8, $2::bigint)
         and r.transaction_id < b.xmin
         ${branch}
         ${where}
       order by r.transaction_id, r.${table.sequence}
       limit $3`;
  // Each branch is an ordered, limited scan; the merge (Merge Append) pulls from each only
  // what it returns, so a read touches about `limit` rows whatever the number of branches.
  const source =
    options.branches === undefined
      ? scan(table.columns, '')
      : `select ${table.columns}
       from (${options.branches.map((branch) => `(${scan('r.*', branch)})`).join(' union all ')}) r
       order by r.transaction_id, r.${table.sequence}
       limit $3`;
  const text = `with bound as (select pg_snapshot_xmin(pg_current_snapshot()) as xmin)
     select b.xmin::text as bound,
            exists (select 1 from ${table.table} h where h.transaction_id >= b.xmin) as held,
            r.*
     from bound b
     left join lateral (
       ${source}
     ) r on true`;
  // A merge of many branches takes longer to plan than to run a page: prepare it once per
  // connection (named by its text, which holds no values).
  const { rows } = await db.query<Row & { bound: string; held: boolean | null }>(
    options.branches === undefined
      ? { text, values: params }
      : {
          name: `tributary_visible_${createHash('sha1').update(text).digest('hex').slice(0, 16)}`,
          text,
          values: params,
        },
  );
  const first = rows[0]!;
  const found = first.xid == null ? [] : rows;
  const last = found.at(-1);
  const lastPosition = last ? formatPosition(last.xid, last.seq) : from;
  // A short read saw everything below the bound: resume from the bound itself, so a
  // filtered reader does not rescan rows it already skipped.
  const next =
    found.length === options.limit
      ? lastPosition
      : maxPosition(lastPosition, formatPosition(first.bound, 0n));
  return { rows: found, next, held: first.held === true };
}

export interface TailOptions<T> {
  /** One read after a position (readVisible, mapped to what the tail yields). */
  read: (from: Position) => Promise<{ items: readonly T[]; next: Position; held: boolean }>;
  from: Position;
  /** A read this full is followed by another at once. */
  batchSize: number;
  /** Wakes the tail when the table may have new rows (NOTIFY after commit). */
  notifier: Notifier;
  /** Fallback poll when no notification comes. */
  pollIntervalMs: number;
  /** While rows are held back by an older open transaction (whose commit may notify nobody), poll this often at most. */
  heldPollMaxMs: number;
  signal: AbortSignal;
  /** A failed read is retried with backoff when this says so; otherwise the tail throws it. */
  retry: (error: unknown) => boolean;
  /** Told of each retry (to log it). */
  onRetry?: (error: unknown, position: Position, delayMs: number) => void;
}

/**
 * Catch-up, then live, over a table that follows the visibility rule: reads a batch,
 * yields it (with where to read next), and reads the next one when the consumer asks,
 * at once after a full batch, soon while rows are held back, else at the next
 * notification or poll. Pull-based, so a slow consumer never makes it buffer.
 */
export async function* tailVisible<T>(
  options: TailOptions<T>,
): AsyncGenerator<{ items: readonly T[]; next: Position }> {
  const { signal } = options;
  let position = options.from;
  let failures = 0;
  let heldDelayMs = 2;
  while (!signal.aborted) {
    // Taken before the read: a notification that arrives during it makes the wait below return at once.
    const generation = options.notifier.generation;
    let batch: Awaited<ReturnType<TailOptions<T>['read']>>;
    try {
      batch = await options.read(position);
      failures = 0;
    } catch (error) {
      if (signal.aborted) return;
      if (!options.retry(error)) throw error;
      const delay = Math.min(100 * 2 ** failures++, 5000);
      options.onRetry?.(error, position, delay);
      await sleep(delay, signal);
      continue;
    }
    yield { items: batch.items, next: batch.next };
    position = batch.next;
    if (batch.items.length >= options.batchSize) continue;
    if (batch.held) {
      await sleep(heldDelayMs, signal);
      heldDelayMs = Math.min(heldDelayMs * 2, options.heldPollMaxMs);
      continue;
    }
    heldDelayMs = 2;
    await options.notifier.wait(options.pollIntervalMs, signal, generation);
  }
}
