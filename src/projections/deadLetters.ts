import { type Pool, withTransaction } from '../db/index.js';
import { NotFoundError } from '../errors.js';
import type { Envelope } from '../ingest/index.js';
import { applyEnvelopes, describeError, type FailureMemory } from './applyEnvelopes.js';
import { type Projection, partitionCount } from './defineProjection.js';
import { DEFAULT_VIEW_SCHEMA } from './view.js';
import { createViewWriter } from './viewWriter.js';

export interface DeadLetter {
  id: string;
  projection: string;
  position: string;
  envelope: Envelope;
  error: { name: string; message: string; stack?: string };
  attempts: number;
  createdAt: Date;
}

interface DeadLetterRow {
  id: string;
  projection: string;
  position: string;
  envelope: Envelope & { eventTime: string; recordedAt: string };
  error: DeadLetter['error'];
  attempts: number;
  created_at: Date;
}

const toDeadLetter = (row: DeadLetterRow): DeadLetter => ({
  id: row.id,
  projection: row.projection,
  position: row.position,
  envelope: {
    ...row.envelope,
    eventTime: new Date(row.envelope.eventTime),
    recordedAt: new Date(row.envelope.recordedAt),
  },
  error: row.error,
  attempts: row.attempts,
  createdAt: row.created_at,
});

/** Dead letters in log order, optionally of one projection. */
export async function listDeadLetters(
  pool: Pool,
  options: { projection?: string; limit?: number } = {},
): Promise<DeadLetter[]> {
  const { rows } = await pool.query<DeadLetterRow>(
    `select id::text, projection, position, envelope, error, attempts, created_at
     from tributary.dead_letters where ($1::text is null or projection = $1)
     order by projection, position limit $2`,
    [options.projection ?? null, options.limit ?? 1000],
  );
  return rows.map(toDeadLetter);
}

/** Deletes dead letters for good; returns how many went. */
export async function discardDeadLetters(pool: Pool, ids: readonly string[]): Promise<number> {
  const { rowCount } = await pool.query('delete from tributary.dead_letters where id = any ($1::bigint[])', [
    ids,
  ]);
  return rowCount ?? 0;
}

export type RetryOutcome = { id: string; ok: true } | { id: string; ok: false; error: string };

/**
 * Runs the handler again on each dead letter, in log order. A success writes the
 * views (with changelog) and removes the dead letter in one transaction that also
 * bumps the projection's generation, so a running worker reloads its cached rows.
 * A failure keeps it, with the new error and attempt count.
 */
export async function retryDeadLetters(
  pool: Pool,
  projections: readonly Projection[],
  ids: readonly string[],
  options: { viewSchema?: string } = {},
): Promise<RetryOutcome[]> {
  const { rows } = await pool.query<DeadLetterRow>(
    `select id::text, projection, position, envelope, error, attempts, created_at
     from tributary.dead_letters where id = any ($1::bigint[]) order by projection, position`,
    [ids],
  );
  for (const id of ids) {
    if (!rows.some((row) => row.id === id))
      throw new NotFoundError('dead letter', id, 'List them with `tributary deadletters list`.');
  }
  const outcomes: RetryOutcome[] = [];
  for (const row of rows) {
    const letter = toDeadLetter(row);
    const projection = projections.find((p) => p.name === letter.projection);
    if (!projection) {
      throw new NotFoundError('projection', letter.projection, 'Is it registered in tributary.config.ts?');
    }
    try {
      await withTransaction(pool, async (client) => {
        // Serializes with the worker's compare-and-set on the same row.
        await client.query('select 1 from tributary.projections where name = $1 for update', [
          projection.name,
        ]);
        // A partitioned projection's workers commit through their partitions' rows.
        await client.query(
          'select 1 from tributary.projection_partitions where name = $1 order by partition for update',
          [projection.name],
        );
        const writer = createViewWriter({
          client,
          projection: projection.name,
          views: projection.views,
          schema: options.viewSchema ?? DEFAULT_VIEW_SCHEMA,
          cache: new Map(),
          ...(partitionCount(projection) > 1 ? { partitioned: true } : {}),
        });
        // Once, whatever the projection's policies: a failure keeps the dead letter.
        const failures: FailureMemory = new Map();
        const result = await applyEnvelopes([letter.envelope], {
          projection,
          client,
          writer,
          failures,
          from: letter.position,
          now: new Date(),
          readNext: letter.position,
          maxAttempts: 1,
          policy: 'stop',
        });
        if (result.halt) throw result.halt.error;
        if (result.rollback) throw failures.get(letter.position)?.error;
        await writer.flush();
        await client.query('delete from tributary.dead_letters where id = $1', [letter.id]);
        await client.query('update tributary.projections set generation = generation + 1 where name = $1', [
          projection.name,
        ]);
        await client.query(
          'update tributary.projection_partitions set generation = generation + 1 where name = $1',
          [projection.name],
        );
      });
      outcomes.push({ id: letter.id, ok: true });
    } catch (error) {
      await pool.query(
        'update tributary.dead_letters set attempts = attempts + 1, error = $2 where id = $1',
        [letter.id, JSON.stringify(describeError(error))],
      );
      outcomes.push({
        id: letter.id,
        ok: false,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }
  return outcomes;
}
