import { type Pool, type Queryable, withTransaction } from '../db/index.js';
import { START } from '../ingest/index.js';
import { type Projection, partitionCount } from './defineProjection.js';
import { ProjectionDefinitionChangedError } from './errors.js';
import { DEFAULT_VIEW_SCHEMA } from './view.js';
import { createViewTables, viewsFingerprint } from './viewTables.js';

/**
 * Where a projection's code stands against what the database holds:
 * `ready` (same version and views), `needs-rebuild` (the code has a newer version, or another
 * number of partitions: run `tributary rebuild`), `outdated` (the database already holds a
 * newer version).
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
    const { rows } = await client.query<{ version: number; fingerprint: string; partitions: number }>(
      'select version, fingerprint, partitions from tributary.projections where name = $1',
      [projection.name],
    );
    const row = rows[0];
    const partitions = partitionCount(projection);
    if (!row) {
      await createViewTables(client, projection.views, schema);
      await client.query(
        'insert into tributary.projections (name, version, fingerprint, position, partitions) values ($1, $2, $3, $4, $5)',
        [projection.name, projection.version, fingerprint, START, partitions],
      );
      await resetPartitions(client, projection, START);
      return 'ready';
    }
    if (row.version < projection.version) return 'needs-rebuild';
    if (row.version > projection.version) return 'outdated';
    if (row.fingerprint !== fingerprint) {
      throw new ProjectionDefinitionChangedError(projection.name, projection.version);
    }
    // Keys map to partitions by N: with another N, the checkpoints no longer say what was applied.
    if (row.partitions !== partitions) return 'needs-rebuild';
    await createViewTables(client, projection.views, schema);
    return 'ready';
  });
}

/**
 * Gives a partitioned projection one checkpoint row per partition, all at `position`, with no
 * lease and a new generation (a worker holding one of them loses it), and drops the rows of
 * partitions it no longer has. A projection of one partition keeps no rows here.
 */
export async function resetPartitions(
  client: Queryable,
  projection: Projection,
  position: string,
): Promise<void> {
  const partitions = partitionCount(projection);
  await client.query(
    'delete from tributary.projection_partitions where name = $1 and (partition >= $2 or $2 = 1)',
    [projection.name, partitions],
  );
  if (partitions === 1) return;
  await client.query(
    `insert into tributary.projection_partitions (name, partition, version, position)
     select $1, p, $2, $3 from generate_series(0, $4 - 1) p
     on conflict (name, partition) do update
       set version = excluded.version, position = excluded.position, state = 'running', last_error = null,
           lease_owner = null, lease_expires_at = null, generation = projection_partitions.generation + 1,
           events_processed = 0, events_per_second = 0, updated_at = now()`,
    [projection.name, projection.version, position, partitions],
  );
}
