import { createHash } from 'node:crypto';
import type { Queryable } from '../../db/index.js';
import { readCheckpoint } from './checkpoints.js';
import { readSlotClaim } from './slotOwnership.js';
import type { ResolvedSource, SourceSettings } from './types.js';

const PREFIX = 'tributary_';
const HASH_LENGTH = 10;
/** PostgreSQL's NAMEDATALEN - 1: the longest slot or publication name. */
const MAX_NAME = 63;

/**
 * The slot and publication a source is captured through in this log, in this order:
 * the ones recorded when capture first ran (so a later change of defaults, such as an
 * upgrade, keeps the slot the checkpoint belongs to), the configured ones, and else
 * `tributary_<source>_<hash>`, where the hash names this log database: two deployments
 * capturing the same source never share a slot by default.
 */
export async function resolveSourceNames(db: Queryable, source: SourceSettings): Promise<ResolvedSource> {
  const recorded = (await readSlotClaim(db, source.name)) ?? (await readCheckpoint(db, source.name));
  if (recorded !== undefined) {
    return { ...source, slot: recorded.slotName, publication: recorded.publicationName };
  }
  const fallback =
    source.configuredSlot !== undefined && source.configuredPublication !== undefined
      ? ''
      : defaultName(source.name, await logDatabaseIdentity(db));
  return {
    ...source,
    slot: source.configuredSlot ?? fallback,
    publication: source.configuredPublication ?? fallback,
  };
}

/** `tributary_<source>_<hash>`, cut to 63 characters; the hash covers the whole source name. */
export function defaultName(source: string, logIdentity: string): string {
  const hash = createHash('sha256').update(`${logIdentity}\n${source}`).digest('hex').slice(0, HASH_LENGTH);
  const room = MAX_NAME - PREFIX.length - 1 - HASH_LENGTH;
  return `${PREFIX}${source.slice(0, room)}_${hash}`;
}

/**
 * What tells this log database apart from any other: the cluster's system identifier
 * and the database name. Where pg_control_system() is not allowed (some managed
 * services), the server's address and port stand in for the system identifier.
 */
export async function logDatabaseIdentity(db: Queryable): Promise<string> {
  try {
    const { rows } = await db.query<{ id: string }>(
      `select system_identifier::text || '/' || current_database() as id from pg_control_system()`,
    );
    return rows[0]!.id;
  } catch {
    const { rows } = await db.query<{ id: string }>(
      `select coalesce(host(inet_server_addr()), 'local') || ':' || current_setting('port') || '/' || current_database() as id`,
    );
    return rows[0]!.id;
  }
}
