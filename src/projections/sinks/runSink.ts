import { isConnectionError, type Pool } from '../../db/index.js';
import type { Notifier, Position } from '../../ingest/index.js';
import type { Logger } from '../../logger.js';
import { createRate } from '../../rate.js';
import { sleep } from '../../sleep.js';
import {
  assertCursorRetained,
  CursorExpiredError,
  changeTime,
  readChanges,
  type ViewChange,
} from '../changelog/index.js';
import { openViewSnapshot, pastSnapshot, type ViewSnapshot } from './backfill.js';
import { changeOps, documentSql, rowOp, splitByBytes } from './documents.js';
import { retryDelayMs } from './retry.js';
import {
  acquireSinkLease,
  loadSink,
  recordDeadLetters,
  recordSinkError,
  registerSink,
  releaseSinkLease,
  type SinkRow,
  type SinkUpdate,
  updateSink,
} from './sinkState.js';
import type { DocumentOp, IndexSpec, ResolvedSink, SearchBackend, WriteResult } from './types.js';

export type SinkState = 'starting' | 'running' | 'building' | 'standby' | 'paused' | 'stopped';

export interface SinkWorkerStatus {
  sink: string;
  state: SinkState;
  position?: Position;
  lastError?: string;
}

/** Where a build of a sink's index stands: what a progress bar or a progress log shows. */
export interface SinkBuildProgress {
  sink: string;
  index: string;
  /** Why it is built: 'first load', 'reindex requested', 'the index definition changed', … */
  reason: string;
  /** Backfilling the view, catching up with the changelog, or swapped in. */
  phase: 'backfill' | 'catching up' | 'done';
  /** View rows backfilled. */
  done: number;
  /** Rows of the view when the backfill began. */
  total: number;
}

export interface SinkLoopOptions {
  pool: Pool;
  viewSchema: string;
  backend: SearchBackend;
  notifier: Notifier;
  logger: Logger;
  workerId: string;
  leaseTimeoutMs: number;
  pollIntervalMs: number;
  signal: AbortSignal;
  status: SinkWorkerStatus;
  /** Rows per backfill chunk. @default 1000; 10,000 when the documents are built in SQL */
  backfillChunk?: number;
  /** Called after each batch the backend acknowledged (tests, latency measurements). */
  onApplied?: (info: { sink: string; index: string; position: Position; documents: number }) => void;
  /** Called as a build of the index goes: when it starts, after each backfill chunk, when it is swapped in. */
  onBuildProgress?: (progress: SinkBuildProgress) => void;
}

/** The sink lost its lease (another process took it over), or stop was asked for. */
class Interrupted extends Error {}

/** Runs one sink while this process holds its lease; stands by otherwise. Returns when stopped. */
export async function runSink(sink: ResolvedSink, options: SinkLoopOptions): Promise<void> {
  const { pool, signal, status, logger } = options;
  const retryMs = Math.max(50, Math.floor(options.leaseTimeoutMs / 4));
  let failures = 0;
  while (!signal.aborted) {
    try {
      await registerSink(pool, sink);
      if (!(await acquireSinkLease(pool, sink.name, options.workerId, options.leaseTimeoutMs))) {
        status.state = 'standby';
        await sleep(retryMs, signal);
        continue;
      }
      logger.info('sink lease acquired', { workerId: options.workerId });
      await holdSink(sink, options);
      failures = 0;
    } catch (error) {
      if (error instanceof Interrupted) {
        if (!signal.aborted) logger.info('sink lease lost; standing by');
        status.state = 'standby';
        continue;
      }
      failures++;
      const delay = Math.min(100 * 2 ** failures, 10_000);
      status.lastError = error instanceof Error ? error.message : String(error);
      logger[isConnectionError(error) ? 'warn' : 'error']('sink failed; retrying', {
        error,
        retryInMs: delay,
      });
      await recordSinkError(pool, sink.name, status.lastError).catch(() => {});
      await sleep(delay, signal);
    }
  }
  await releaseSinkLease(pool, sink.name, options.workerId).catch(() => {});
  status.state = 'stopped';
}

interface Build {
  index: string;
  reason: string;
  total: number;
  snapshot?: ViewSnapshot;
  version?: bigint;
  /** Set once the backfill is done: the build's own changelog cursor and skip snapshot. */
  position?: Position;
  skip?: string | null;
  done: number;
}

async function holdSink(sink: ResolvedSink, options: SinkLoopOptions): Promise<void> {
  const { pool, backend, signal, status, logger } = options;
  const spec: IndexSpec = {
    view: sink.view,
    fields: sink.fields,
    language: sink.language,
    fuzzy: sink.fuzzy,
    mapping: sink.config.mapping,
  };
  const owner = options.workerId;
  const update = async (changes: SinkUpdate, expectPosition?: Position | null) => {
    if (!(await updateSink(pool, sink.name, owner, options.leaseTimeoutMs, changes, expectPosition))) {
      throw new Interrupted();
    }
  };
  // A PostgreSQL index in the views' database, without a JavaScript transform: the backfill
  // builds the documents in SQL, the rows never leave PostgreSQL.
  const documentsInSql = backend.upsertFromSql ? documentSql(sink, 'c') : undefined;
  const backfillChunk = options.backfillChunk ?? (documentsInSql ? 10_000 : 1000);
  const rate = createRate();
  const progress = (current: Build, phase: SinkBuildProgress['phase']) => {
    try {
      options.onBuildProgress?.({
        sink: sink.name,
        index: current.index,
        reason: current.reason,
        phase,
        done: current.done,
        total: phase === 'done' ? Math.max(current.total, current.done) : current.total,
      });
    } catch (error) {
      logger.warn('a build progress listener failed', { error });
    }
  };
  let lastCheckpoint = 0;
  let build: Build | undefined;
  let prepared: string | undefined;
  let lastErrorAt = 0;

  /** Writes to the backend until it takes them, backing off (and keeping the lease) in between. */
  const write = async (index: string, ops: readonly DocumentOp[]): Promise<WriteResult> => {
    const result: WriteResult = { refused: [], stale: 0 };
    for (const request of splitByBytes(ops, sink.maxRequestBytes)) {
      for (let attempt = 0; ; attempt++) {
        if (signal.aborted) throw new Interrupted();
        try {
          const part = await backend.write(index, request);
          result.refused.push(...part.refused);
          result.stale += part.stale;
          break;
        } catch (error) {
          const delay = retryDelayMs(error, attempt, sink.config.retry);
          const message = error instanceof Error ? error.message : String(error);
          status.lastError = message;
          if (Date.now() - lastErrorAt > 5000) {
            lastErrorAt = Date.now();
            logger.warn('search backend write failed; retrying', {
              index,
              error,
              retryInMs: Math.round(delay),
            });
          }
          await recordSinkError(pool, sink.name, message).catch(() => {});
          await sleep(delay, signal);
          // Waiting out an outage keeps the lease: the checkpoint has not moved, nothing is lost.
          await update({});
        }
      }
    }
    return result;
  };

  const deadLetter = async (letters: { op: DocumentOp; reason: string }[]) => {
    if (letters.length === 0) return;
    logger.warn('documents set aside as dead letters', {
      count: letters.length,
      first: { id: letters[0]!.op.id, reason: letters[0]!.reason },
    });
    await recordDeadLetters(pool, sink.name, letters);
  };

  /** Applies the changes after a cursor to an index; returns what was read. */
  const applyChanges = async (index: string, from: Position, skip: string | null) => {
    const read = await readChanges(pool, from, {
      view: sink.view.name,
      limit: sink.batchSize,
      ...(skip ? { notVisibleIn: skip } : {}),
    });
    // Checked after the read: a prune that deleted changes this read should have seen has
    // recorded it by now.
    let expired = false;
    try {
      await assertCursorRetained(pool, from);
    } catch (error) {
      if (!(error instanceof CursorExpiredError)) throw error;
      expired = true;
    }
    const reset = read.changes.some((change) => change.op === 'reset');
    const { ops, unbuildable } = changeOps(sink, read.changes);
    const result = ops.length > 0 ? await write(index, ops) : { refused: [], stale: 0 };
    await deadLetter([...unbuildable, ...result.refused]);
    return { read, reset, expired, written: ops.length - result.refused.length };
  };

  const startBuild = async (row: SinkRow, reason: string) => {
    const index = `${sink.alias}_b${row.builds + 1}`;
    logger.info('building the search index', {
      index,
      reason,
      documents: documentsInSql ? 'built in SQL' : 'built in the process',
    });
    await backend.drop(index);
    await backend.ensureIndex(index, spec);
    const snapshot = await openViewSnapshot(pool, options.viewSchema, sink.view);
    try {
      const total = await snapshot.total();
      const version = await snapshot.version();
      await update({
        builds: row.builds + 1,
        build_index: index,
        build_fingerprint: sink.fingerprint,
        build_reason: reason,
        build_position: null,
        build_snapshot: null,
        build_done: 0,
        build_total: total,
        build_started_at: new Date(),
        reindex_requested: false,
      });
      build = { index, reason, snapshot, version, done: 0, total };
      progress(build, 'backfill');
    } catch (error) {
      await snapshot.close();
      throw error;
    }
  };

  const abandonBuild = async (why: string) => {
    if (!build) return;
    logger.info('abandoning the index build', { index: build.index, why });
    await build.snapshot?.close();
    await backend.drop(build.index).catch(() => {});
    build = undefined;
    await update({ build_index: null, build_position: null, build_snapshot: null, build_reason: null });
  };

  /** One step of the build: a backfill chunk, or a batch of its catch-up; swaps it in once caught up. */
  const buildStep = async (row: SinkRow): Promise<number> => {
    const current = build!;
    if (current.snapshot) {
      const snapshot = current.snapshot;
      let rows = 0;
      let written = 0;
      let sent = false;
      if (documentsInSql) {
        try {
          rows = await snapshot.copyNext(backfillChunk, documentsInSql, current.version!, (source) =>
            backend.upsertFromSql!(current.index, source),
          );
          written = rows;
          sent = true;
        } catch (error) {
          if (isConnectionError(error) || signal.aborted) throw error;
          // A document the table refuses fails the whole statement: this chunk goes through
          // the process, where each refused document is set aside alone.
          logger.info('backfill chunk refused in SQL; writing it document by document', { error });
        }
      }
      if (!sent) {
        const viewRows = await snapshot.next(backfillChunk, !documentsInSql);
        const ops: DocumentOp[] = [];
        const unbuildable: { op: DocumentOp; reason: string }[] = [];
        for (const viewRow of viewRows) {
          const made = rowOp(sink, viewRow, current.version!);
          if ('reason' in made) unbuildable.push(made as { op: DocumentOp; reason: string });
          else if (made.op.op === 'upsert') ops.push(made.op);
        }
        const result = ops.length > 0 ? await write(current.index, ops) : { refused: [], stale: 0 };
        await deadLetter([...unbuildable, ...result.refused]);
        rows = viewRows.length;
        written = ops.length - result.refused.length;
      }
      if (rows > 0) {
        current.done += rows;
        rate.add(written);
        await update({
          build_done: current.done,
          documents_per_second: Math.round(rate.value()),
          addDocuments: written,
        });
        progress(current, 'backfill');
        return rows;
      }
      // Read whole: the build follows the changelog from the snapshot on.
      current.position = current.snapshot.position;
      current.skip = current.snapshot.snapshot;
      await current.snapshot.close();
      current.snapshot = undefined;
      await update({ build_position: current.position, build_snapshot: current.skip });
      logger.info('index backfilled; catching up', { index: current.index, documents: current.done });
      progress(current, 'catching up');
      return 1;
    }
    const { read, reset, expired, written } = await applyChanges(
      current.index,
      current.position!,
      current.skip ?? null,
    );
    if (reset || expired) {
      await abandonBuild(reset ? 'the view was rebuilt meanwhile' : 'the changelog it needs was pruned');
      return 1;
    }
    const skip = current.skip && pastSnapshot(read.next, current.skip) ? null : (current.skip ?? null);
    current.position = read.next;
    current.skip = skip;
    rate.add(written);
    await update({ build_position: read.next, build_snapshot: skip, addDocuments: written });
    if (read.changes.length >= sink.batchSize) return read.changes.length;
    // Caught up with the visible changelog: swap it in.
    await swapIn(row, current);
    return 1;
  };

  const swapIn = async (row: SinkRow, current: Build) => {
    const previous = row.index_name ?? undefined;
    const at = current.position ? await changeTime(pool, current.position) : undefined;
    await update({
      index_name: current.index,
      position: current.position!,
      skip_snapshot: current.skip ?? null,
      fingerprint: sink.fingerprint,
      alias: sink.alias,
      pending_swap: true,
      retired_index: previous ?? null,
      build_index: null,
      build_fingerprint: null,
      build_reason: null,
      build_position: null,
      build_snapshot: null,
      ...(at ? { applied_change_at: at } : {}),
    });
    build = undefined;
    await finishSwap(current.index, previous);
    progress(current, 'done');
    await pool.query('delete from tributary.sink_dead_letters where sink = $1 and created_at < $2', [
      sink.name,
      row.build_started_at ?? new Date(),
    ]);
    logger.info('search index swapped in', {
      alias: sink.alias,
      index: current.index,
      reason: current.reason,
    });
  };

  /** Moves the alias (idempotent, so a crash in between is finished on restart) and drops the old index. */
  const finishSwap = async (index: string, previous: string | undefined) => {
    const { writeTo, retired } = await backend.swapAlias(sink.alias, index, previous);
    await update({ index_name: writeTo, pending_swap: false, retired_index: retired ?? null });
    prepared = undefined;
    if (retired) {
      await backend.drop(retired);
      await update({ retired_index: null });
    }
  };

  /** One batch of the live index. */
  const liveStep = async (row: SinkRow): Promise<{ read: number; caughtUp: boolean }> => {
    const index = row.index_name!;
    if (prepared !== index) {
      await backend.ensureIndex(index, spec);
      prepared = index;
    }
    const from = row.position!;
    const { read, reset, expired, written } = await applyChanges(index, from, row.skip_snapshot);
    if ((reset || expired) && !build) {
      const reason = reset ? 'the view was rebuilt' : 'the sink fell behind the changelog retention';
      if (expired)
        logger.warn('changes this sink had not applied were pruned; rebuilding its index from the view');
      await startBuild(row, reason);
    }
    rate.add(written);
    const skip = row.skip_snapshot && pastSnapshot(read.next, row.skip_snapshot) ? null : row.skip_snapshot;
    const moved = read.next !== from;
    if (
      read.changes.length > 0 ||
      (moved && Date.now() - lastCheckpoint > 1000) ||
      skip !== row.skip_snapshot
    ) {
      const last = read.changes.at(-1);
      await update(
        {
          position: read.next,
          skip_snapshot: skip,
          documents_per_second: Math.round(rate.value()),
          addDocuments: written,
          ...(last
            ? { applied_change_at: await changeTime(pool, last.cursor).then((at) => at ?? new Date()) }
            : {}),
        },
        from,
      );
      lastCheckpoint = Date.now();
      if (read.changes.length > 0) {
        options.onApplied?.({ sink: sink.name, index, position: read.next, documents: written });
      }
    } else if (Date.now() - lastCheckpoint > options.leaseTimeoutMs / 3) {
      await update({ documents_per_second: Math.round(rate.value()) });
      lastCheckpoint = Date.now();
    }
    status.position = read.next;
    return { read: read.changes.length, caughtUp: read.changes.length < sink.batchSize };
  };

  try {
    while (!signal.aborted) {
      const seen = options.notifier.generation;
      const row = await loadSink(pool, sink.name);
      if (!row || row.lease_owner !== owner) throw new Interrupted();
      if (row.paused) {
        status.state = 'paused';
        if (Date.now() - lastCheckpoint > options.leaseTimeoutMs / 3) {
          await update({});
          lastCheckpoint = Date.now();
        }
        await sleep(Math.min(options.pollIntervalMs, 500), signal);
        continue;
      }
      if (row.pending_swap && row.index_name) {
        await finishSwap(row.index_name, row.retired_index ?? undefined);
        continue;
      }
      if (row.retired_index && !row.pending_swap) {
        await backend.drop(row.retired_index);
        await update({ retired_index: null });
      }
      if (!build && row.build_index) {
        // A build left by a process that stopped: its catch-up resumes; a backfill starts over
        // (its snapshot ended with that process).
        if (row.build_position && row.build_fingerprint === sink.fingerprint) {
          build = {
            index: row.build_index,
            reason: row.build_reason ?? 'resumed',
            position: row.build_position,
            skip: row.build_snapshot,
            done: Number(row.build_done),
            total: Number(row.build_total),
          };
          await backend.ensureIndex(build.index, spec);
        } else {
          await backend.drop(row.build_index).catch(() => {});
          await update({ build_index: null, build_position: null, build_snapshot: null });
          continue;
        }
      }
      const reason =
        row.index_name === null
          ? 'first load'
          : row.fingerprint !== sink.fingerprint || row.alias !== sink.alias
            ? 'the index definition changed'
            : row.reindex_requested
              ? 'reindex requested'
              : undefined;
      if (build && reason === 'the index definition changed' && build.reason !== reason) {
        await abandonBuild('the index definition changed');
        continue;
      }
      if (!build && reason) await startBuild(row, reason);
      status.state = build ? 'building' : 'running';
      let work = 0;
      let caughtUp = true;
      if (row.index_name) {
        const live = await liveStep(row);
        work += live.read;
        caughtUp = live.caughtUp;
      }
      if (build) {
        const fresh = build.position === undefined ? row : ((await loadSink(pool, sink.name)) ?? row);
        work += await buildStep(fresh);
      }
      if (work > 0 || !caughtUp) continue;
      await options.notifier.wait(options.pollIntervalMs, signal, seen);
    }
  } finally {
    await build?.snapshot?.close();
  }
  throw new Interrupted();
}

export type { ViewChange };
