import { type Queryable, quoteIdentifier } from '../../db/index.js';
import { NotFoundError } from '../../errors.js';
import { deleteCheckpoint } from './checkpoints.js';
import { resolveSources } from './resolveSources.js';
import { connectSource, dropSlot } from './sourceSetup.js';
import type { CdcSourcesConfig } from './types.js';

export interface DropResult {
  slotDropped: boolean;
  publicationDropped: boolean;
}

/**
 * Drops a source's slot and publication and forgets its checkpoint. The log keeps every
 * event captured so far; a later capture takes a new snapshot, which opens with a
 * truncate event per table so that folding the log stays right.
 */
export async function dropSource(options: {
  sources: CdcSourcesConfig | undefined;
  source: string;
  db: Queryable;
}): Promise<DropResult> {
  const source = resolveSources(options.sources).find((s) => s.name === options.source);
  if (source === undefined) {
    throw new NotFoundError(
      'source',
      options.source,
      'Name a source listed under `sources` in tributary.config.ts.',
    );
  }
  const client = connectSource(source, { applicationName: 'tributary-cdc-drop' });
  client.on('error', () => {});
  await client.connect();
  try {
    const slotDropped = await dropSlot(client, source.slot);
    const { rowCount } = await client.query('select 1 from pg_publication where pubname = $1', [
      source.publication,
    ]);
    if (rowCount) await client.query(`drop publication ${quoteIdentifier(source.publication)}`);
    await deleteCheckpoint(options.db, source.name);
    return { slotDropped, publicationDropped: Boolean(rowCount) };
  } finally {
    await client.end().catch(() => {});
  }
}
