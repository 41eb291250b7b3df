import type { Queryable } from '../db/index.js';

const TABLE = { live: 'tributary.projections', rebuild: 'tributary.projection_rebuilds' } as const;

/**
 * Takes the lease of a projection (or of its rebuild) when it is free, expired or
 * already ours. Returns false when another process holds it.
 */
export async function acquireLease(
  db: Queryable,
  kind: 'live' | 'rebuild',
  name: string,
  owner: string,
  timeoutMs: number,
  options: { version?: number; force?: boolean } = {},
): Promise<boolean> {
  const { rowCount } = await db.query(
    `update ${TABLE[kind]} set lease_owner = $2, lease_expires_at = now() + $3::interval
     where name = $1 and ($4::int is null or version = $4)
       ${kind === 'live' ? `and state = 'running'` : ''}
       and ($5 or lease_owner is null or lease_owner = $2 or lease_expires_at < now())`,
    [name, owner, `${timeoutMs} milliseconds`, options.version ?? null, options.force === true],
  );
  return rowCount === 1;
}

/** Extends a held lease; false when it was lost to another process. */
export async function renewLease(
  db: Queryable,
  kind: 'live' | 'rebuild',
  name: string,
  owner: string,
  timeoutMs: number,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `update ${TABLE[kind]} set lease_expires_at = now() + $3::interval where name = $1 and lease_owner = $2`,
    [name, owner, `${timeoutMs} milliseconds`],
  );
  return rowCount === 1;
}

export async function releaseLease(db: Queryable, kind: 'live' | 'rebuild', name: string, owner: string) {
  await db.query(
    `update ${TABLE[kind]} set lease_owner = null, lease_expires_at = null where name = $1 and lease_owner = $2`,
    [name, owner],
  );
}
