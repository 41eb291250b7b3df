// The contract suite of EventStoreDB/KurrentDB sources: it talks to a real server. It runs when
// TRIBUTARY_TEST_ESDB_URL names one (e.g. `docker compose up -d eventstoredb` and
// TRIBUTARY_TEST_ESDB_URL='esdb://localhost:2113?tls=false'), or when testcontainers finds a
// container runtime (it then starts the image of docker-compose.yml's eventstoredb service);
// otherwise it is skipped with a notice.
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { EventStoreDBClient, jsonEvent } from '@eventstore/db-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kill9, runCapture, writeSourcesConfig } from '../../../test/support/captureProcess.js';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.js';
import { startTcpProxy } from '../../../test/support/tcpProxy.js';
import { waitFor } from '../../../test/support/waitFor.js';
import { createPool, type Pool } from '../../db/index.js';
import { type Capture, startCapture } from '../cdc/index.js';
import { type Envelope, readStream } from '../log/index.js';

const configuredUrl = process.env.TRIBUTARY_TEST_ESDB_URL;
const containers =
  configuredUrl === undefined &&
  process.env.TRIBUTARY_TEST_CONTAINERS !== '0' &&
  (process.env.DOCKER_HOST !== undefined || existsSync('/var/run/docker.sock'));
const enabled = configuredUrl !== undefined || containers;
if (!enabled) {
  console.warn(
    'EventStoreDB contract suite skipped: set TRIBUTARY_TEST_ESDB_URL (e.g. after `docker compose up -d eventstoredb`) or make a container runtime reachable.',
  );
}

/** The image of docker-compose.yml's eventstoredb service: one place names the server version. */
function composeImage(): string {
  const compose = readFileSync(path.resolve('docker-compose.yml'), 'utf8');
  const match = /eventstoredb:\s*\n\s*image:\s*(\S+)/.exec(compose);
  if (match === null) throw new Error('docker-compose.yml has no eventstoredb image');
  return match[1]!;
}

let url: string;
let client: EventStoreDBClient;
let db: TestDatabase;
let pool: Pool;
let dir: string;
const teardowns: Array<() => Promise<unknown>> = [];
const captures: Capture[] = [];

beforeAll(async () => {
  if (!enabled) return;
  if (configuredUrl !== undefined) {
    url = configuredUrl;
  } else {
    const { GenericContainer, Wait } = await import('testcontainers');
    const container = await new GenericContainer(composeImage())
      .withEnvironment({
        EVENTSTORE_INSECURE: 'true',
        EVENTSTORE_RUN_PROJECTIONS: 'None',
        EVENTSTORE_MEM_DB: 'true',
      })
      .withExposedPorts(2113)
      .withWaitStrategy(Wait.forHttp('/health/live', 2113).forStatusCode(204))
      .start();
    teardowns.push(() => container.stop());
    url = `esdb://${container.getHost()}:${container.getMappedPort(2113)}?tls=false`;
  }
  client = EventStoreDBClient.connectionString(url);
  teardowns.push(() => client.dispose());
  // A server just started (`docker compose up -d eventstoredb`) takes a few seconds to answer.
  await waitFor(
    async () => {
      try {
        for await (const _ of client.readAll({ maxCount: 1 })) break;
        return true;
      } catch {
        return false;
      }
    },
    { timeoutMs: 90_000, intervalMs: 1000, what: `the EventStoreDB server at ${url}` },
  );
  db = await createTestDatabase();
  pool = createPool(db.url);
  dir = await mkdtemp(path.join(tmpdir(), 'tributary-esdb-'));
}, 180_000);

afterAll(async () => {
  if (!enabled) return;
  for (const capture of captures) await capture.stop();
  await pool.end();
  await db.drop();
  await rm(dir, { recursive: true, force: true });
  for (const teardown of teardowns.reverse()) await teardown();
});

/** Appends `count` events, round-robin over `streams` streams named `<tag>-<i>`, `per` events per append. */
async function write(tag: string, from: number, count: number, streams = 10, per = 50): Promise<string[]> {
  const ids: string[] = [];
  for (let start = from; start < from + count; start += per) {
    const byStream = new Map<string, ReturnType<typeof jsonEvent>[]>();
    for (let n = start; n < Math.min(start + per, from + count); n++) {
      const id = randomUUID();
      ids.push(id);
      const stream = `${tag}-${n % streams}`;
      byStream.set(stream, [
        ...(byStream.get(stream) ?? []),
        jsonEvent({ id, type: n % 2 === 0 ? 'Placed' : 'Paid', data: { n }, metadata: { by: 'contract' } }),
      ]);
    }
    for (const [stream, events] of byStream) await client.appendToStream(stream, events);
  }
  return ids;
}

/** Every event captured from the source, in log order. */
async function logged(source: string): Promise<Envelope[]> {
  const { rows } = await pool.query<{ stream_id: string }>(
    `select distinct stream_id from tributary.events where metadata->>'source' = $1`,
    [source],
  );
  const all: Envelope[] = [];
  for (const row of rows) all.push(...(await readStream(pool, row.stream_id, { limit: 100_000 })));
  return all.sort((a, b) => (a.position < b.position ? -1 : 1));
}

function capture(name: string, tag: string, extra: Record<string, unknown> = {}, serverUrl = url) {
  const running = startCapture({
    sources: {
      [name]: { kind: 'eventstoredb', url: serverUrl, filter: { streamPrefixes: [`${tag}-`] }, ...extra },
    },
    pool,
  });
  captures.push(running);
  return running;
}

const order = (events: Envelope[]) => events.map((e) => (e.data as { n: number }).n);

describe.skipIf(!enabled)('an EventStoreDB source against a real server', () => {
  it('catches up, then follows live: each event once, in $all order, with its id, type, data, metadata and position', async () => {
    const tag = `c${randomUUID().slice(0, 8)}`;
    const before = await write(tag, 0, 500);
    const running = capture('contract_catchup', tag, { streamPrefix: 'es-' });
    await waitFor(async () => (await logged('contract_catchup')).length === 500, {
      timeoutMs: 60_000,
      what: 'catch-up',
    });
    await waitFor(() => running.eventStoreDb()[0]!.state === 'live', { what: 'live' });
    const after = await write(tag, 500, 100);
    const all = await waitFor(
      async () => {
        const events = await logged('contract_catchup');
        return events.length === 600 ? events : undefined;
      },
      { timeoutMs: 60_000, what: 'live events' },
    );
    expect(order(all)).toEqual(Array.from({ length: 600 }, (_, n) => n));
    expect(all.map((e) => e.eventId)).toEqual([...before, ...after]);
    expect(all[0]).toMatchObject({
      streamId: `es-${tag}-0`,
      type: 'Placed',
      data: { n: 0 },
      metadata: { by: 'contract', source: 'contract_catchup', esdb: { stream: `${tag}-0`, revision: '0' } },
    });
    const commits = all.map((e) => BigInt((e.metadata.esdb as { commit: string }).commit));
    for (let i = 1; i < commits.length; i++) expect(commits[i]! >= commits[i - 1]!).toBe(true);
  });

  it('filters on the server by event type, and skips system and link events unless asked', async () => {
    const tag = `f${randomUUID().slice(0, 8)}`;
    await write(tag, 0, 100);
    await client.appendToStream(`${tag}-sys`, jsonEvent({ type: '$custom-system', data: {} }));
    const typed = capture('contract_types', tag, { filter: { eventTypeRegex: '^Paid$' } });
    await waitFor(
      async () => (await logged('contract_types')).some((e) => (e.data as { n: number }).n === 99),
      {
        timeoutMs: 60_000,
        what: 'the Paid events',
      },
    );
    const paid = await logged('contract_types');
    expect(paid.every((e) => e.type === 'Paid')).toBe(true);
    const prefixed = capture('contract_prefix', tag);
    await waitFor(async () => (await logged('contract_prefix')).length >= 100, {
      timeoutMs: 60_000,
      what: 'the stream prefix',
    });
    await waitFor(() => prefixed.eventStoreDb()[0]!.state === 'live', { what: 'live' });
    expect((await logged('contract_prefix')).some((e) => e.type.startsWith('$'))).toBe(false);
    await typed.stop();
    await prefixed.stop();
  });

  it('marks a truncated and a deleted stream in its log stream', async () => {
    const tag = `d${randomUUID().slice(0, 8)}`;
    await write(tag, 0, 20, 2);
    const running = capture('contract_delete', tag);
    await waitFor(async () => (await logged('contract_delete')).length === 20, {
      timeoutMs: 60_000,
      what: 'events',
    });
    await client.setStreamMetadata(`${tag}-0`, { truncateBefore: 5 });
    await client.deleteStream(`${tag}-1`);
    const stream0 = await waitFor(
      async () => {
        const events = await readStream(pool, `esdb-${tag}-0`);
        return events.some((e) => e.type === '$streamTruncated') ? events : undefined;
      },
      { timeoutMs: 30_000, what: 'the truncation marker' },
    );
    expect(stream0.at(-1)!.data).toEqual({ stream: `${tag}-0`, truncateBefore: 5 });
    await waitFor(
      async () =>
        (await readStream(pool, `esdb-${tag}-1`)).some(
          (e) => e.type === '$streamDeleted' && (e.data as { hard: boolean }).hard === false,
        ),
      { timeoutMs: 30_000, what: 'the deletion marker' },
    );
    await running.stop();
  });

  it('reconnects when the connection to the server drops, nothing lost or doubled', async () => {
    const tag = `r${randomUUID().slice(0, 8)}`;
    const target = new URL(url.replace(/^esdb/, 'http'));
    const proxy = await startTcpProxy(Number(target.port || 2113));
    try {
      await write(tag, 0, 200);
      const running = capture('contract_reconnect', tag, {}, url.replace(/:\d+/, `:${proxy.port}`));
      await waitFor(async () => (await logged('contract_reconnect')).length === 200, {
        timeoutMs: 60_000,
        what: 'events',
      });
      proxy.dropAll();
      await write(tag, 200, 200);
      await waitFor(async () => (await logged('contract_reconnect')).length === 400, {
        timeoutMs: 90_000,
        what: 'after',
      });
      expect(order(await logged('contract_reconnect'))).toEqual(Array.from({ length: 400 }, (_, n) => n));
      await running.stop();
    } finally {
      await proxy.close();
    }
  });

  it('keeps each event exactly once, in $all order, across SIGKILLs of `tributary cdc run` during catch-up', async () => {
    const tag = `k${randomUUID().slice(0, 8)}`;
    const total = 20_000;
    const ids = await write(tag, 0, total, 50, 500);
    const config = await writeSourcesConfig(dir, 'esdb-kill', {
      contract_kill: { kind: 'eventstoredb', url, filter: { streamPrefixes: [`${tag}-`] }, batchSize: 200 },
    });
    const count = async () =>
      Number(
        (
          await pool.query<{ n: string }>(
            "select coalesce(sum(events), 0) as n from tributary.esdb_checkpoints where source = 'contract_kill'",
          )
        ).rows[0]!.n,
      );
    for (let round = 0; round < 6; round++) {
      const before = await count();
      const child = runCapture(config, db.url);
      await waitFor(async () => (await count()) > before, {
        timeoutMs: 60_000,
        intervalMs: 5,
        what: 'a batch',
      });
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 300));
      await kill9(child);
    }
    const final = runCapture(config, db.url);
    await waitFor(async () => (await count()) >= total, {
      timeoutMs: 180_000,
      intervalMs: 500,
      what: 'every event',
    });
    final.process.kill('SIGTERM');
    await final.exited;
    const all = await logged('contract_kill');
    expect(all.map((e) => e.eventId)).toEqual(ids);
  });
});
