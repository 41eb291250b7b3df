import type { Queryable } from '../../db/index.js';
import { waitForProjections } from '../../projections/index.js';
import type { ApiContext, SchemaOptions } from './context.js';

/**
 * Runs a read of `view`, on a replica when one serves (see ReadRouter). With `minPosition`,
 * it first waits until the projections behind the view have passed it on the primary, and
 * the replica it reads must have replayed that commit, else it reads the primary.
 */
export function readView<T>(
  options: SchemaOptions,
  view: string,
  minPosition: string | null | undefined,
  context: ApiContext,
  read: (db: Queryable) => Promise<T>,
): Promise<T> {
  return options.reads.read(read, {
    ...(minPosition
      ? {
          afterCommit: () =>
            waitForProjections(
              options.pool,
              options.projectionsOf?.(view),
              minPosition,
              options.readYourWritesTimeoutMs,
              context.signal,
            ),
        }
      : {}),
  });
}

export const MIN_POSITION_DESCRIPTION =
  'Answer only once the projections behind this view have passed this log position.';
