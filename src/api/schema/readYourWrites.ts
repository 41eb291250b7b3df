import { waitForProjections } from '../../projections/index.js';
import type { ApiContext, SchemaOptions } from './context.js';

/** Waits, when a query gives `minPosition`, until the projections behind `view` have passed it. */
export async function readYourWrites(
  options: SchemaOptions,
  view: string,
  minPosition: string | null | undefined,
  context: ApiContext,
): Promise<void> {
  if (!minPosition) return;
  await waitForProjections(
    options.pool,
    options.projectionsOf?.(view),
    minPosition,
    options.readYourWritesTimeoutMs,
    context.signal,
  );
}

export const MIN_POSITION_DESCRIPTION =
  'Answer only once the projections behind this view have passed this log position.';
