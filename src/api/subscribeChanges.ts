import { isConnectionError, type Pool } from '../db/index.js';
import { TributaryError, ValidationError } from '../errors.js';
import { formatPosition, type Position } from '../ingest/index.js';
import {
  assertCursorRetained,
  assertResumableCursor,
  type ChangeOp,
  type ChangeTailer,
  readChanges,
  type ViewChange,
} from '../projections/index.js';
import type { AnyView } from './anyView.js';
import { compilePredicate, parseWhere, type Where } from './filter.js';
import { queryPage } from './queryView.js';

export const SUBSCRIPTION_OVERFLOW = 'SUBSCRIPTION_OVERFLOW';

export class SubscriptionOverflowError extends TributaryError {
  constructor(
    readonly lastCursor: string,
    readonly limit: number,
  ) {
    super(
      SUBSCRIPTION_OVERFLOW,
      `The subscriber fell more than ${limit} changes behind and was disconnected; everything up to cursor '${lastCursor}' was delivered, nothing after it.`,
      { hint: 'Resubscribe with `after` set to lastCursor; no change is lost.' },
    );
  }
}

/** What a subscriber receives for each change (or each current row, with `initial`). */
export interface ChangeMessage {
  op: ChangeOp;
  cursor: Position;
  key: Record<string, unknown>;
  row: Record<string, unknown> | null;
  previous: Record<string, unknown> | null;
  /** True for the current rows sent first when the subscriber asked for them. */
  initial: boolean;
}

export interface SubscribeChangesOptions {
  pool: Pool;
  tailer: ChangeTailer;
  schema: string;
  view: AnyView;
  where?: Where | null;
  /** Resume after this cursor; absent: start now. */
  after?: string | null;
  /** Send the current rows first (consistent with the changes that follow). */
  initialRows?: boolean;
  /** Live changes buffered for a slow consumer before it is cut off. @default 10000 */
  maxBuffer?: number;
  /** @default 500 */
  batchSize?: number;
  signal?: AbortSignal;
}

/**
 * The message of a change, one object per change whoever receives it: what is made of a
 * message (its GraphQL result, see websocket.ts) can then be made once for all its subscribers.
 */
const messages = new WeakMap<ViewChange, ChangeMessage>();
function toMessage(change: ViewChange): ChangeMessage {
  let message = messages.get(change);
  if (!message) {
    message = {
      op: change.op,
      cursor: change.cursor,
      key: change.key,
      row: change.row,
      previous: change.old,
      initial: false,
    };
    messages.set(change, message);
  }
  return message;
}

/**
 * History from the changelog, then live changes from the shared tailer, with no gap and
 * no duplicate at the boundary: history is read (pull-based) until this subscriber's
 * position has reached the tailer's, then it attaches in the same tick, and from then
 * on only changes after its own position pass.
 */
export async function* subscribeChanges(options: SubscribeChangesOptions): AsyncGenerator<ChangeMessage> {
  const { pool, tailer, view } = options;
  const maxBuffer = options.maxBuffer ?? 10_000;
  const batchSize = options.batchSize ?? 500;
  // Checked and compiled once, under the same limits as a query's `where`.
  const matches = options.where ? compilePredicate(parseWhere(view, options.where)) : undefined;
  const wanted = (change: ViewChange) =>
    change.view === view.name &&
    (change.op === 'reset' ||
      !matches ||
      (change.row !== null && matches(change.row)) ||
      (change.old !== null && matches(change.old)));

  await tailer.ready;
  let position: Position;
  /** Changes of transactions already visible in the initial rows' snapshot. */
  let seenInSnapshot: (change: ViewChange) => boolean = () => false;

  if (options.after != null) {
    if (options.after === '') {
      throw new ValidationError(
        '`after` is empty: pass a cursor a change delivered, or omit `after` to start now.',
        {
          field: 'after',
        },
      );
    }
    await assertResumableCursor(pool, options.after);
    position = options.after;
  } else if (options.initialRows) {
    const client = await pool.connect();
    try {
      await client.query('begin isolation level repeatable read read only');
      const { rows } = await client.query<{ snapshot: string }>(
        'select pg_current_snapshot()::text as snapshot',
      );
      const [xmin, xmax, xip] = rows[0]!.snapshot.split(':') as [string, string, string];
      const running = new Set(xip ? xip.split(',') : []);
      const high = BigInt(xmax);
      seenInSnapshot = (change) =>
        change.transactionId < high && !running.has(change.transactionId.toString());
      position = formatPosition(xmin, 0n);
      let after: string | null = null;
      for (;;) {
        const page = await queryPage(
          client,
          options.schema,
          view,
          { where: options.where, first: batchSize, after },
          {
            maxPageSize: batchSize,
          },
        );
        for (const edge of page.edges) {
          if (options.signal?.aborted) return;
          const key = Object.fromEntries(view.primaryKey.map((column) => [column, edge.node[column]]));
          yield { op: 'upsert', cursor: position, key, row: edge.node, previous: null, initial: true };
        }
        if (!page.pageInfo.hasNextPage) break;
        after = page.pageInfo.endCursor;
      }
      await client.query('commit');
    } finally {
      await client.query('rollback').catch(() => {});
      client.release();
    }
  } else {
    position = tailer.position;
  }

  // History, pull-based: the next batch is read only when the consumer took the last one.
  let failures = 0;
  while (position < tailer.position) {
    if (options.signal?.aborted) return;
    let batch: Awaited<ReturnType<typeof readChanges>>;
    try {
      // Checked before every history batch: a prune that ran meanwhile must not skip changes silently.
      await assertCursorRetained(pool, position);
      batch = await readChanges(pool, position, { views: [view.name], limit: batchSize });
      failures = 0;
    } catch (error) {
      if (!isConnectionError(error) || failures++ > 5) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100 * 2 ** failures));
      continue;
    }
    for (const change of batch.changes) {
      if (wanted(change) && !seenInSnapshot(change)) yield toMessage(change);
      position = change.cursor;
    }
    position = batch.next;
  }

  // Live. Attached synchronously after the check above, so the tailer's next batch starts at
  // or before `position`; what is not after it was already delivered from history.
  const buffer: ViewChange[] = [];
  let overflowed = false;
  let wake: (() => void) | undefined;
  const detach = tailer.listen((changes) => {
    if (overflowed) return;
    for (const change of changes) {
      if (change.cursor <= position || !wanted(change)) continue;
      if (buffer.length >= maxBuffer) {
        overflowed = true;
        break;
      }
      buffer.push(change);
    }
    wake?.();
  });
  const onAbort = () => wake?.();
  options.signal?.addEventListener('abort', onAbort);
  let delivered: Position = position;
  try {
    for (;;) {
      if (options.signal?.aborted) return;
      const change = buffer.shift();
      if (change) {
        if (change.cursor <= position) continue;
        position = change.cursor;
        if (seenInSnapshot(change)) continue;
        yield toMessage(change);
        delivered = change.cursor;
        continue;
      }
      if (overflowed) throw new SubscriptionOverflowError(delivered, maxBuffer);
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      wake = undefined;
    }
  } finally {
    detach();
    options.signal?.removeEventListener('abort', onAbort);
  }
}
