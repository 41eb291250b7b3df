import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.js';
import { waitFor } from '../../test/support/waitFor.js';
import { closePool, connectGuarded, createPool } from './pool.js';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

describe('a pooled connection lost while checked out', () => {
  it('fails its next query instead of crashing the process, and the pool goes on', async () => {
    const pool = createPool(db.url, { max: 2, applicationName: 'tributary-pool-test' });
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown) => uncaught.push(error);
    process.on('uncaughtException', onUncaught);
    try {
      const client = await pool.connect();
      const { rows } = await client.query<{ pid: number }>('select pg_backend_pid() as pid');
      let lost = false;
      client.once('end', () => {
        lost = true;
      });
      // Terminated between two queries, while the client is checked out and idle.
      await pool.query('select pg_terminate_backend($1)', [rows[0]!.pid]);
      await waitFor(() => lost || undefined, { what: 'the client to see its connection end' });
      await expect(client.query('select 1')).rejects.toThrow();
      client.release(true);
      const { rows: after } = await pool.query<{ one: number }>('select 1 as one');
      expect(after[0]!.one).toBe(1);
      expect(uncaught).toEqual([]);
    } finally {
      process.off('uncaughtException', onUncaught);
      await pool.end();
    }
  });
});

describe('connectGuarded', () => {
  it('adds its error listener once per pooled client, however often the client is checked out', async () => {
    // A pool not made by createPool: nothing else listens on its clients.
    const pool = new pg.Pool({ connectionString: db.url, max: 1 });
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown) => uncaught.push(error);
    process.on('uncaughtException', onUncaught);
    try {
      for (let i = 0; i < 20; i++) {
        const client = await connectGuarded(pool);
        expect(client.listenerCount('error')).toBe(1);
        client.release();
      }
      const client = await connectGuarded(pool);
      const { rows } = await client.query<{ pid: number }>('select pg_backend_pid() as pid');
      const admin = new pg.Client({ connectionString: db.url });
      await admin.connect();
      await admin.query('select pg_terminate_backend($1)', [rows[0]!.pid]);
      await admin.end();
      await expect(client.query('select 1')).rejects.toThrow();
      client.release(true);
      expect(uncaught).toEqual([]);
    } finally {
      process.off('uncaughtException', onUncaught);
      await pool.end();
    }
  });
});

describe('closePool', () => {
  // Connected beforehand: counting right after the close must not wait for a connection.
  let admin: pg.Client;
  beforeAll(async () => {
    admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
  });
  afterAll(async () => {
    await admin?.end();
  });
  async function backends(name: string): Promise<number> {
    const { rows } = await admin.query<{ n: number }>(
      'select count(*)::int as n from pg_stat_activity where application_name = $1',
      [name],
    );
    return rows[0]!.n;
  }

  it('resolves only once every connection has left the server', async () => {
    const name = 'tributary-close-test';
    const pool = createPool(db.url, { max: 4, applicationName: name });
    const clients = await Promise.all([pool.connect(), pool.connect(), pool.connect(), pool.connect()]);
    // Temporary tables make a backend's exit slow (it drops them before it leaves), so a
    // close that did not wait for the exits would still find them here.
    await Promise.all(
      clients.map((client) =>
        client.query(
          `do $$ begin for i in 1..100 loop execute format('create temp table t%s (x int)', i); end loop; end $$`,
        ),
      ),
    );
    for (const client of clients) client.release();
    expect(await backends(name)).toBe(4);
    await closePool(pool);
    expect(await backends(name)).toBe(0);
  });

  it('waits for a checked-out connection to be released', async () => {
    const name = 'tributary-close-checked-out';
    const pool = createPool(db.url, { max: 2, applicationName: name });
    const client = await pool.connect();
    let closed = false;
    const closing = closePool(pool).then(() => {
      closed = true;
    });
    await client.query('select 1');
    expect(closed).toBe(false);
    client.release();
    await closing;
    expect(await backends(name)).toBe(0);
  });

  it('does not wait for a connection attempt that fails while the pool closes', async () => {
    // Nothing listens on port 1: the attempt is refused. Were closePool to wait for it, this
    // would outlast the test's timeout.
    const pool = createPool('postgres://tributary@127.0.0.1:1/none', { max: 1 });
    const attempt = pool.query('select 1').then(
      () => 'connected',
      (error: Error) => error.message,
    );
    await closePool(pool, { timeoutMs: 600_000 });
    expect(await attempt).toMatch(/ECONNREFUSED|connect/);
  });

  it('ends a pool that never connected, and a pool already ending, without waiting', async () => {
    const pool = createPool(db.url, { max: 1 });
    await closePool(pool);
    expect(pool.ending).toBe(true);
    await closePool(pool);
  });
});
