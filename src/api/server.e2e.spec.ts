import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient } from 'graphql-ws';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import WebSocket from 'ws';
import { runCli } from '../../test/support/cli.js';
import { waitFor } from '../../test/support/waitFor.js';
import { quoteIdentifier } from '../db/index.js';

const BIN = fileURLToPath(new URL('../../bin/tributary.js', import.meta.url));
const SRC = fileURLToPath(new URL('../index.ts', import.meta.url));
const adminUrl = inject('adminUrl');
const databases: string[] = [];
const children: ChildProcess[] = [];
let cwd: string;

async function freshDatabase(): Promise<string> {
  const name = `api_e2e_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`create database ${quoteIdentifier(name)}`);
  await admin.end();
  databases.push(name);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

function start(args: string[], env: Record<string, string>) {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd,
    env: { ...process.env, TRIBUTARY_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const output = { stdout: '', stderr: '' };
  child.stdout!.on('data', (chunk: Buffer) => {
    output.stdout += chunk.toString();
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    output.stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output, exited };
}

async function gql(url: string, query: string, headers: Record<string, string> = {}) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ query }),
  });
  return (await response.json()) as {
    data?: Record<string, unknown>;
    errors?: { extensions?: { code?: string } }[];
  };
}

beforeAll(async () => {
  cwd = await mkdtemp(path.join(tmpdir(), 'tributary-api-e2e-'));
});

afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  await rm(cwd, { recursive: true, force: true });
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  for (const name of databases) {
    // The demo's CDC source leaves a replication slot in its database, which would block the drop.
    await admin.query(
      'select pg_drop_replication_slot(slot_name) from pg_replication_slots where database = $1 and not active',
      [name],
    );
    await admin.query(`drop database if exists ${quoteIdentifier(name)} with (force)`);
  }
  await admin.end();
});

describe('tributary dev (the npm start demo)', () => {
  it('serves the shop demo: live data moves, over HTTP and WebSocket, then stops on SIGTERM', async () => {
    const databaseUrl = await freshDatabase();
    const dev = start(['dev', '--port', '0'], { DATABASE_URL: databaseUrl });
    const url = await waitFor(() => /GraphiQL:\s+(http:\/\/\S+)/.exec(dev.output.stdout)?.[1], {
      timeoutMs: 90_000,
      what: `the dev banner (stderr: ${dev.output.stderr.slice(-500)})`,
    });
    expect(dev.output.stdout).toMatch(/Auth:\s+OFF/);
    expect(dev.output.stdout).toContain('orderLinesChanges');
    const graphiql = await (await fetch(url, { headers: { accept: 'text/html' } })).text();
    expect(graphiql).toContain('LatestOrders');

    const rows = await waitFor(
      async () => {
        const result = await gql(url, '{ orderLines(first: 50) { nodes { order_id customer status } } }');
        const nodes = (result.data?.orderLines as { nodes: unknown[] } | undefined)?.nodes ?? [];
        return nodes.length >= 3 && nodes;
      },
      { timeoutMs: 60_000, intervalMs: 250, what: 'orders from the workload in the order_lines view' },
    );
    expect(rows.length).toBeGreaterThanOrEqual(3);
    // Products come from the captured public.products table, joined into the orders.
    await waitFor(
      async () => {
        const result = await gql(url, '{ products { nodes { name } } sources { source state } }');
        const names = (result.data?.products as { nodes: { name: string }[] } | undefined)?.nodes ?? [];
        return names.length === 8 && (result.data!.sources as { state: string }[])[0]?.state === 'streaming';
      },
      { timeoutMs: 60_000, intervalMs: 250, what: 'captured products and a streaming source' },
    );

    const client = createClient({
      url: url.replace('http', 'ws'),
      webSocketImpl: WebSocket,
      retryAttempts: 0,
    });
    for await (const result of client.iterate<{
      orderLinesChanges: { op: string; row: { order_id: string } };
    }>({
      query: 'subscription { orderLinesChanges { op cursor row { order_id } } }',
    })) {
      expect(result.data!.orderLinesChanges.op).toBe('UPSERT');
      break;
    }
    await client.dispose();

    dev.child.kill('SIGTERM');
    expect(await dev.exited).toBe(0);
  });
});

describe('tributary serve', () => {
  it('refuses to serve without any way to authenticate', async () => {
    const databaseUrl = await freshDatabase();
    const dir = await mkdtemp(path.join(cwd, 'noauth-'));
    await writeFile(
      path.join(dir, 'tributary.config.ts'),
      `import { defineConfig } from ${JSON.stringify(SRC)};\nexport default defineConfig({ api: { port: 0 } });\n`,
    );
    const serve = spawn(process.execPath, [BIN, 'serve'], {
      cwd: dir,
      env: { ...process.env, DATABASE_URL: databaseUrl, TRIBUTARY_LOG_LEVEL: 'warn' },
    });
    let stderr = '';
    serve.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const code = await new Promise<number | null>((resolve) => serve.on('exit', resolve));
    expect(code).toBe(1);
    expect(stderr).toMatch(/no way to authenticate[\s\S]*api\.auth\.apiKeys/);

    // `start --no-api` runs the workers without the API, so it needs no auth.
    const workersOnly = spawn(process.execPath, [BIN, 'start', '--no-api'], {
      cwd: dir,
      env: { ...process.env, DATABASE_URL: databaseUrl, TRIBUTARY_LOG_LEVEL: 'warn' },
    });
    let warnings = '';
    workersOnly.stderr.on('data', (chunk: Buffer) => {
      warnings += chunk.toString();
    });
    await waitFor(() => /no projections configured/.test(warnings), {
      timeoutMs: 60_000,
      what: 'start --no-api',
    });
    workersOnly.kill('SIGTERM');
    expect(await new Promise<number | null>((resolve) => workersOnly.on('exit', resolve))).toBe(0);
  });

  it('serves the views of the configured projections with API keys, health and metrics', async () => {
    const databaseUrl = await freshDatabase();
    await writeFile(
      path.join(cwd, 'tributary.config.ts'),
      `import { defineConfig, defineProjection, defineView } from ${JSON.stringify(SRC)};
const notes = defineView({ name: 'notes', columns: { id: { type: 'text' }, body: { type: 'text' } }, primaryKey: ['id'] });
const projection = defineProjection({
  name: 'notes', version: 1, views: [notes], filter: { types: ['NoteWritten'] },
  async handle(event, ctx) { await ctx.upsert(notes, { id: event.streamId, body: String(event.data.body) }); },
});
export default defineConfig({
  projections: [projection],
  api: { port: 0, auth: { apiKeys: [{ name: 'ops', key: 'k-ops', scopes: ['admin'] }] } },
});
`,
    );
    // `start` runs the workers and the API; the port is printed in the log.
    const run = start(['start'], { DATABASE_URL: databaseUrl, TRIBUTARY_LOG_LEVEL: 'info' });
    const url = await waitFor(() => /"url":"(http:\/\/[^"]+)"/.exec(run.output.stderr)?.[1], {
      timeoutMs: 60_000,
      what: `the API address in the log (stderr: ${run.output.stderr.slice(-500)})`,
    });
    const base = url.replace(/\/graphql$/, '');
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    await waitFor(async () => (await fetch(`${base}/readyz`)).status === 200, { what: 'readiness' });
    expect((await gql(url, '{ notes { nodes { id } } }')).errors?.[0]?.extensions?.code).toBe(
      'UNAUTHENTICATED',
    );

    const auth = { authorization: 'Bearer k-ops' };
    const appended = await gql(
      url,
      'mutation { appendEvents(streamId: "note-1", events: [{ type: "NoteWritten", data: { body: "hello" } }]) { position } }',
      auth,
    );
    const position = (appended.data!.appendEvents as { position: string }).position;
    const read = await gql(url, `{ notesByKey(id: "note-1", minPosition: "${position}") { body } }`, auth);
    expect(read.data).toEqual({ notesByKey: { body: 'hello' } });
    expect((await fetch(`${base}/metrics`)).status).toBe(401);
    const metrics = await (await fetch(`${base}/metrics`, { headers: auth })).text();
    expect(metrics).toMatch(/tributary_projection_lag_events\{projection="notes"\} 0/);

    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
  });

  it('searches with minPosition: the hit is there as soon as the append returns; a paused sink gets a clear timeout', async () => {
    const databaseUrl = await freshDatabase();
    await writeFile(
      path.join(cwd, 'tributary.config.ts'),
      `import { defineConfig, defineProjection, defineView } from ${JSON.stringify(SRC)};
const notes = defineView({
  name: 'notes', columns: { id: { type: 'text' }, body: { type: 'text' } }, primaryKey: ['id'],
  search: { fields: ['body'] },
});
const projection = defineProjection({
  name: 'notes', version: 1, views: [notes], filter: { types: ['NoteWritten'] },
  async handle(event, ctx) { await ctx.upsert(notes, { id: event.streamId, body: String(event.data.body) }); },
});
export default defineConfig({
  projections: [projection],
  sinks: { noteSearch: { view: 'notes', backend: { kind: 'postgres' } } },
  api: {
    port: 0,
    auth: { apiKeys: [{ name: 'ops', key: 'k-ops', scopes: ['admin'] }] },
    limits: { readYourWritesTimeoutMs: 1500 },
  },
});
`,
    );
    const run = start(['start'], { DATABASE_URL: databaseUrl, TRIBUTARY_LOG_LEVEL: 'info' });
    const url = await waitFor(() => /"url":"(http:\/\/[^"]+)"/.exec(run.output.stderr)?.[1], {
      timeoutMs: 60_000,
      what: `the API address in the log (stderr: ${run.output.stderr.slice(-500)})`,
    });
    const auth = { authorization: 'Bearer k-ops' };
    const append = async (id: string, body: string) => {
      const appended = await gql(
        url,
        `mutation { appendEvents(streamId: "${id}", events: [{ type: "NoteWritten", data: { body: "${body}" } }]) { position } }`,
        auth,
      );
      return (appended.data!.appendEvents as { position: string }).position;
    };
    const search = (query: string, minPosition: string) =>
      gql(
        url,
        `{ searchNotes(query: "${query}", minPosition: "${minPosition}") { nodes { id body } } }`,
        auth,
      );
    // The first load of the (empty) index.
    await waitFor(
      async () => !(await gql(url, '{ searchNotes(query: "x") { nodes { id } } }', auth)).errors,
      {
        timeoutMs: 60_000,
        what: 'the search index',
      },
    );

    for (const [i, word] of ['apricot', 'blueberry', 'cherry'].entries()) {
      const position = await append(`note-${i}`, `zebra ${word}`);
      const found = await search(word, position);
      expect(found).toEqual({
        data: { searchNotes: { nodes: [{ id: `note-${i}`, body: `zebra ${word}` }] } },
      });
    }

    const env = { DATABASE_URL: databaseUrl };
    const cli = (args: string[]) => runCli(args, { cwd, env });
    expect((await cli(['sinks', 'pause', 'noteSearch'])).stdout).toMatch(/Paused noteSearch/);
    await waitFor(
      async () => JSON.parse((await cli(['sinks', 'status', '--json'])).stdout)[0].state === 'paused',
      {
        what: 'the sink paused',
        timeoutMs: 30_000,
      },
    );
    const position = await append('note-4', 'zebra paused');
    const refused = (await search('paused', position)) as {
      errors?: { message: string; extensions?: { code?: string; hint?: string } }[];
    };
    expect(refused.errors?.[0]?.extensions?.code).toBe('READ_YOUR_WRITES_TIMEOUT');
    expect(refused.errors?.[0]?.message).toMatch(
      /Search sink 'noteSearch' had not applied .* after 1500 ms: it is paused/,
    );
    expect(refused.errors?.[0]?.extensions?.hint).toMatch(/without minPosition/);
    expect(JSON.stringify(refused)).not.toMatch(/\n\s+at /);

    await cli(['sinks', 'resume', 'noteSearch']);
    await waitFor(async () => !(await search('paused', position)).errors, {
      what: 'the resumed sink',
      timeoutMs: 30_000,
    });
    expect(await search('paused', position)).toEqual({
      data: { searchNotes: { nodes: [{ id: 'note-4', body: 'zebra paused' }] } },
    });
    const malformed = (await search('paused', 'not-a-position')) as {
      errors?: { extensions?: { code?: string } }[];
    };
    expect(malformed.errors?.[0]?.extensions?.code).toBe('VALIDATION_FAILED');

    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
  });
});
