import type { Queryable } from '../../src/db/index.js';
import { formatPosition, type Position, START } from '../../src/ingest/index.js';

/**
 * Position of the last committed event, whether or not readers may see it yet.
 * Tests wait for "a projection has applied everything appended so far" with this, not
 * with `head()`: the head stops below the snapshot's xmin, which any open transaction in
 * the cluster (a worker's batch, another spec file's database) holds back, so it can
 * lag behind an append that already committed.
 */
export async function committedHead(db: Queryable): Promise<Position> {
  const { rows } = await db.query<{ xid: string; gp: string }>(
    `select transaction_id::text as xid, global_position::text as gp from tributary.events
     order by transaction_id desc, global_position desc limit 1`,
  );
  const row = rows[0];
  return row ? formatPosition(row.xid, row.gp) : START;
}
