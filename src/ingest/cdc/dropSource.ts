import { type Queryable, quoteIdentifier } from '../../db/index.js';
import { NotFoundError } from '../../errors.js';
import { deleteCheckpoint, readCheckpoint } from './checkpoints.js';
import { resolveSources } from './resolveSources.js';
import { judgeSlot, readSlotClaim } from './slotOwnership.js';
import { resolveSourceNames } from './sourceNames.js';
import { connectSource, describeSourceServer, dropSlot, inspectSlot } from './sourceSetup.js';
import type { CdcSourcesConfig } from './types.js';

export interface DropResult {
  slot: string;
  publication: string;
  slotDropped: boolean;
  /** Why the slot was left on the source (it is not this log's), or null. */
  slotKept: string | null;
  publicationDropped: boolean;
  /** Why the publication was left on the source, or null. */
  publicationKept: string | null;
}

/**
 * Forgets a source's checkpoint, and drops its slot and publication when this log created
 * them; a slot of that name that is not this log's (another deployment made it, read it or
 * replaced it), a publication this log did not create, and the publication beside such a
 * slot are left alone. The log keeps
 * every event captured so far; a later capture takes a new snapshot, which opens with a
 * truncate event per table so that folding the log stays right.
 */
export async function dropSource(options: {
  sources: CdcSourcesConfig | undefined;
  source: string;
  db: Queryable;
}): Promise<DropResult> {
  const settings = resolveSources(options.sources).find((s) => s.name === options.source);
  if (settings === undefined) {
    throw new NotFoundError(
      'source',
      options.source,
      'Name a source listed under `sources` in tributary.config.ts.',
    );
  }
  const source = await resolveSourceNames(options.db, settings);
  const client = connectSource(source, { applicationName: 'tributary-cdc-drop' });
  client.on('error', () => {});
  await client.connect();
  try {
    const server = await describeSourceServer(client, source.name);
    // The slot first: a capture running meanwhile records a position before confirming it.
    const slot = await inspectSlot(client, source.slot);
    const claim = await readSlotClaim(options.db, source.name);
    const checkpoint = await readCheckpoint(options.db, source.name);
    let slotDropped = false;
    let slotKept: string | null = null;
    if (slot !== undefined) {
      const verdict = judgeSlot({ slot, server, claim, checkpoint });
      if (verdict.owned) slotDropped = await dropSlot(client, source.slot);
      else slotKept = verdict.reason;
    }
    let publicationDropped = false;
    let publicationKept: string | null = null;
    const { rowCount } = await client.query('select 1 from pg_publication where pubname = $1', [
      source.publication,
    ]);
    if (rowCount) {
      if (!claim?.publicationCreated) {
        publicationKept = 'this log did not create it';
      } else if (slotKept !== null) {
        // Someone else reads a slot of this name: they most likely share the publication too.
        publicationKept = 'another deployment may use it, as it uses the slot';
      } else {
        await client.query(`drop publication ${quoteIdentifier(source.publication)}`);
        publicationDropped = true;
      }
    }
    await deleteCheckpoint(options.db, source.name);
    return {
      slot: source.slot,
      publication: source.publication,
      slotDropped,
      slotKept,
      publicationDropped,
      publicationKept,
    };
  } finally {
    await client.end().catch(() => {});
  }
}
