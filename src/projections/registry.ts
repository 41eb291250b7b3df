import { type Pool, withTransaction } from '../db/index.js';
import { START } from '../ingest/index.js';
import type { Projection } from './defineProjection.js';
import { ProjectionDefinitionChangedError } from './errors.js';
import { DEFAULT_VIEW_SCHEMA } from './view.js';
import { createViewTables, viewsFingerprint } from './viewTables.js';

/**
 * Where a projection's code stands against what the database holds:
 * `ready` (same version and views), `needs-rebuild` (the code has a newer version:
 * run `tributary rebuild`), `outdated` (the database already holds a newer version).
 */
export type RegistrationStatus = 'ready' | 'needs-rebuild' | 'outdated';

/**
 * Makes sure the view tables of every projection exist in `schema`, registering new
 * projections at the start of the log. Refuses (ProjectionDefinitionChangedError) a
 * projection whose views changed without a version bump. A projection registered at
 * another version is left alone: `tributary rebuild` moves it to the new version.
 */
export async function ensureViewTables(
  pool: Pool,
  projections: readonly Projection[],
  options: { schema?: string } = {},
): Promise<Map<string, RegistrationStatus>> {
  const schema = options.schema ?? DEFAULT_VIEW_SCHEMA;
  const result = new Map<string, RegistrationStatus>();
  for (const projection of projections) {
    result.set(projection.name, await registerProjection(pool, projection, schema));
  }
  return result;
}

async function registerProjection(
  pool: Pool,
  projection: Projection,
  schema: string,
): Promise<RegistrationStatus> {
  const fingerprint = viewsFingerprint(projection.views);
  return withTransaction(pool, async (client) => {
    // Serializes processes registering the same projection at once.
    await client.query('select pg_advisory_xact_lock(hashtext($1))', [
      `tributary.projection:${projection.name}`,
    ]);
    const { rows } = await client.query<{ version: number; fingerprint: string }>(
      'select version, fingerprint from tributary.projections where name = $1',
      [projection.name],
    );
    const row = rows[0];
    if (!row) {
      await createViewTables(client, projection.views, schema);
      await client.query(
        'insert into tributary.projections (name, version, fingerprint, position) values ($1, $2, $3, $4)',
        [projection.name, projection.version, fingerprint, START],
      );
      return 'ready';
    }
    if (row.version < projection.version) return 'needs-rebuild';
    if (row.version > projection.version) return 'outdated';
    if (row.fingerprint !== fingerprint) {
      throw new ProjectionDefinitionChangedError(projection.name, projection.version);
    }
    await createViewTables(client, projection.views, schema);
    return 'ready';
  });
}
