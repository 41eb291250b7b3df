import { chmod, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeDir, startReplica } from '../../test/support/replica.js';
import { waitFor } from '../../test/support/waitFor.js';
import { createPool, type EmbeddedPostgres, migrate, type Pool, startEmbeddedPostgres } from '../db/index.js';
import { defineProjection, defineView, startWorkers, type Workers } from '../projections/index.js';
import { type Api, createApi } from './index.js';

/**
 * Reads from a real streaming replica: an embedded primary and a hot standby made from a base
 * backup of it. Read-your-writes holds with the replica's replay paused; a replica that lags
 * beyond the bound, or goes away, is taken out of rotation and the primary answers.
 */
const notes = defineView({
  name: 'notes',
  columns: { id: { type: 'text' }, body: { type: 'text' } },
  primaryKey: ['id'],
});
const projection = defineProjection({
  name: 'notes',
  version: 1,
  views: [notes],
  replay: 'idempotent',
  async handle(event, ctx) {
    await ctx.upsert(notes, { id: event.streamId, body: String(event.data.body) });
  },
});

let dir: string;
let primary: EmbeddedPostgres;
let replica: EmbeddedPostgres;
let pool: Pool;
let workers: Workers;
let api: Api;
let url: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'tributary-replica-'));
  await chmod(dir, 0o755); // as root the servers run as `postgres`, which must reach their data
  primary = await startEmbeddedPostgres({
    dataDir: path.join(dir, 'primary'),
    settings: { fsync: 'off', wal_keep_size: '256MB' },
  });
  await migrate(primary.url);
  replica = await startReplica(primary, path.join(dir, 'replica'));
  pool = createPool(primary.url, { max: 6 });
  workers = startWorkers({ url: primary.url, projections: [projection] });
  api = await createApi({
    connectionString: primary.url,
    pool,
    projections: [projection],
    replicas: { urls: [replica.url], maxLagBytes: 1024 * 1024, waitMs: 400, checkIntervalMs: 100 },
    config: { auth: { open: true } },
  });
  ({ url } = await api.listen(0));
}, 120_000);

afterAll(async () => {
  await api?.close();
  await workers?.stop();
  await pool?.end();
  await replica?.stop();
  await primary?.stop();
  await removeDir(dir);
});

async function gql(query: string): Promise<Record<string, unknown>> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query }),
  });
  const body = (await response.json()) as { data?: Record<string, unknown>; errors?: unknown[] };
  expect(body.errors).toBeUndefined();
  return body.data!;
}

async function append(id: string, body: string): Promise<string> {
  const data = await gql(
    `mutation { appendEvents(streamId: "${id}", events: [{ type: "Noted", data: { body: "${body}" } }]) { position } }`,
  );
  return (data.appendEvents as { position: string }).position;
}

const onReplica = async <T>(sql: string): Promise<T[]> => {
  const client = new pg.Client({ connectionString: replica.url });
  await client.connect();
  try {
    return (await client.query(sql)).rows as T[];
  } finally {
    await client.end();
  }
};
const healthy = () => api.replicas.status()[0]?.healthy === true;

describe('read replicas', () => {
  it('serve queries once in rotation; with replay paused, a stale read comes from the replica while read-your-writes still holds', async () => {
    await waitFor(healthy, { what: 'the replica in rotation', timeoutMs: 30_000 });
    const first = await append('n1', 'first');
    const row = await gql(`{ notesByKey(id: "n1", minPosition: "${first}") { body } }`);
    expect(row.notesByKey).toEqual({ body: 'first' });

    await onReplica('select pg_wal_replay_pause()');
    await waitFor(
      async () =>
        (await onReplica<{ paused: boolean }>('select pg_is_wal_replay_paused() as paused'))[0]?.paused,
      {
        what: 'replay paused',
      },
    );
    const second = await append('n2', 'second');
    await waitFor(
      async () =>
        (
          await pool.query(`select 1 from tributary.projections where name = 'notes' and position >= $1`, [
            second,
          ])
        ).rowCount === 1,
      { what: 'the projection applied n2 on the primary' },
    );
    // The replica has not replayed it: a plain read served there does not see n2...
    expect(await onReplica(`select id from tributary_views.notes where id = 'n2'`)).toEqual([]);
    expect((await gql(`{ notesByKey(id: "n2") { body } }`)).notesByKey).toBeNull();
    // ...but a read of one's own write does: the replica cannot show it in time, the primary answers.
    const own = await gql(`{ notesByKey(id: "n2", minPosition: "${second}") { body } }`);
    expect(own.notesByKey).toEqual({ body: 'second' });

    await onReplica('select pg_wal_replay_resume()');
    await waitFor(
      async () => (await onReplica(`select 1 from tributary_views.notes where id = 'n2'`)).length === 1,
      {
        what: 'the replica replays n2',
      },
    );
  });

  it('takes a replica that lags beyond the bound out of rotation, and back once it catches up', async () => {
    await waitFor(healthy, { what: 'the replica in rotation' });
    await onReplica('select pg_wal_replay_pause()');
    // More than the 1 MiB bound of WAL on the primary while the replica does not replay.
    await pool.query(`create table if not exists filler (payload text)`);
    await pool.query(`insert into filler select repeat('x', 1000) from generate_series(1, 3000)`);
    await waitFor(() => !healthy(), { what: 'the replica out of rotation' });
    const fresh = await append('n3', 'third');
    await waitFor(
      async () =>
        (
          await pool.query(`select 1 from tributary.projections where name = 'notes' and position >= $1`, [
            fresh,
          ])
        ).rowCount === 1,
      { what: 'the projection applied n3' },
    );
    // Without minPosition too: the primary answers while the replica is out.
    expect((await gql(`{ notesByKey(id: "n3") { body } }`)).notesByKey).toEqual({ body: 'third' });
    await onReplica('select pg_wal_replay_resume()');
    await waitFor(healthy, { what: 'the replica back in rotation', timeoutMs: 30_000 });
  });

  it('keeps answering when the replica goes away', async () => {
    await waitFor(healthy, { what: 'the replica in rotation' });
    await replica.stop();
    const position = await append('n4', 'fourth');
    // At once, before a check notices: the read that fails on the replica is run on the primary.
    for (let i = 0; i < 5; i++) {
      expect((await gql(`{ notes(first: 10) { nodes { id } } }`)).notes).toBeTruthy();
    }
    const row = await gql(`{ notesByKey(id: "n4", minPosition: "${position}") { body } }`);
    expect(row.notesByKey).toEqual({ body: 'fourth' });
    await waitFor(() => !healthy(), { what: 'the replica out of rotation' });
    expect(api.replicas.status()[0]?.lastError).toBeTruthy();
  });
});
