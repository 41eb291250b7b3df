import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSourceDatabase, type SourceDatabase } from '../../test/support/cdcSource.js';
import { BIN, PACKAGE_ENTRY, runCli } from '../../test/support/cli.js';
import { createEmptyDatabase, type TestDatabase } from '../../test/support/database.js';
import { startTcpProxy } from '../../test/support/tcpProxy.js';
import { waitFor } from '../../test/support/waitFor.js';
import { migrate } from '../db/index.js';

// `start --no-api` and `cdc run` serve /healthz, /readyz and /metrics on a port of their own.

let cwd: string;
let database: TestDatabase;
let source: SourceDatabase;
let pool: pg.Pool;

const PROJECTION = `import { defineConfig, defineProjection, defineView } from ${JSON.stringify(PACKAGE_ENTRY)};
const counts = defineView({
  name: 'ops_counts',
  columns: { key: { type: 'text' }, n: { type: 'bigint', nullable: false } },
  primaryKey: ['key'],
});
export default defineConfig({
  projections: [
    defineProjection({
      name: 'ops_counts',
      version: 1,
      views: [counts],
      filter: { types: ['Counted'] },
      async handle(event, ctx) {
        const row = await ctx.get(counts, { key: String(event.data.key) });
        await ctx.upsert(counts, { key: String(event.data.key), n: String(Number(row?.n ?? 0) + 1) });
      },
    }),
  ],
  ...(process.env.WITH_AUTH ? { api: { auth: { apiKeys: [{ name: 'prom', key: 'k-prom', scopes: ['metrics'] }] } } } : {}),
});
`;

interface Running {
  child: ChildProcess;
  stderr: () => string;
  /** The base URL of the health and metrics server, from the log. */
  url: Promise<string>;
  stop(): Promise<number | null>;
}

function run(args: string[], env: Record<string, string>): Running {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd,
    env: { ...process.env, TRIBUTARY_LOG_LEVEL: 'info', TRIBUTARY_METRICS_PORT: '0', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    stderr: () => stderr,
    url: waitFor(
      () =>
        child.exitCode === null
          ? /^.*"health and metrics listening".*$/m.exec(stderr)?.[0].match(/"url":"(http:\/\/[^"]+)"/)?.[1]
          : Promise.reject(new Error(`exited ${child.exitCode}: ${stderr}`)),
      { timeoutMs: 60_000, what: () => `the health and metrics address (stderr: ${stderr.slice(-800)})` },
    ),
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/** The value of one sample of the Prometheus text, or undefined. */
function sample(metrics: string, name: string, labels = ''): number | undefined {
  const escaped = `${name}${labels ? `{${labels}}` : ''}`.replace(/[{}[\]()+.*?^$|\\]/g, '\\$&');
  const match = new RegExp(`^${escaped} (\\S+)$`, 'm').exec(metrics);
  return match ? Number(match[1]) : undefined;
}

async function scrape(url: string, headers: Record<string, string> = {}): Promise<string> {
  const response = await fetch(`${url}/metrics`, { headers });
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return response.text();
}

async function append(count: number, type = 'Counted'): Promise<void> {
  const n = Array.from({ length: count }, (_, i) => i);
  await pool.query(
    `select tributary.append_events('ops', 'any', $1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], false)`,
    [
      n.map(() => `e${Math.random()}`),
      n.map(() => type),
      n.map((i) => JSON.stringify({ key: `k${i % 3}` })),
      n.map(() => '{}'),
      n.map(() => null),
    ],
  );
}

beforeAll(async () => {
  cwd = await mkdtemp(path.join(tmpdir(), 'tributary-ops-'));
  await writeFile(path.join(cwd, 'tributary.config.ts'), PROJECTION);
  database = await createEmptyDatabase('ops');
  await migrate(database.url);
  pool = new pg.Pool({ connectionString: database.url, max: 2 });
  source = await createSourceDatabase();
});

afterAll(async () => {
  await pool?.end();
  await source?.drop();
  await database?.drop();
  await rm(cwd, { recursive: true, force: true });
});

describe('health and metrics of processes without the API', () => {
  it('start --no-api: projection lag, batch and commit durations, pools, event loop; /readyz follows the database', async () => {
    const proxy = await startTcpProxy(Number(new URL(database.url).port));
    const throughProxy = new URL(database.url);
    throughProxy.port = String(proxy.port);
    const workers = run(['start', '--no-api'], { DATABASE_URL: throughProxy.toString() });
    try {
      const url = await workers.url;
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
      await waitFor(async () => (await fetch(`${url}/readyz`)).status === 200, { what: 'ready' });
      await append(30);
      // Lag is what the log holds that the projection has not applied: 0 once the view has all.
      const caughtUp = await waitFor(
        async () => {
          const metrics = await scrape(url);
          return sample(metrics, 'tributary_projection_events_total', 'projection="ops_counts"') === 30 &&
            sample(metrics, 'tributary_projection_lag_events', 'projection="ops_counts"') === 0
            ? metrics
            : undefined;
        },
        { timeoutMs: 60_000, what: 'the projection caught up in /metrics' },
      );
      expect(sample(caughtUp, 'tributary_projection_lag_seconds', 'projection="ops_counts"')).toBe(0);
      expect(
        sample(caughtUp, 'tributary_projection_batch_duration_seconds_count', 'projection="ops_counts"'),
      ).toBeGreaterThanOrEqual(1);
      expect(
        sample(caughtUp, 'tributary_projection_commit_duration_seconds_count', 'projection="ops_counts"'),
      ).toBeGreaterThanOrEqual(1);
      expect(sample(caughtUp, 'tributary_db_pool_max', 'pool="projections"')).toBeGreaterThan(0);
      expect(sample(caughtUp, 'tributary_db_pool_connections', 'pool="projections",state="idle"')).toEqual(
        expect.any(Number),
      );
      expect(sample(caughtUp, 'nodejs_eventloop_lag_seconds')).toBeGreaterThanOrEqual(0);
      // Not ready while the database does not answer; alive all the same.
      proxy.dropAll();
      await proxy.close();
      await waitFor(async () => (await fetch(`${url}/readyz`)).status === 503, {
        what: 'not ready without the database',
        timeoutMs: 30_000,
      });
      expect(await (await fetch(`${url}/readyz`)).text()).toBe('not ready\n');
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
      expect((await fetch(`${url}/metrics`, { method: 'POST' })).status).toBe(405);
      expect((await fetch(`${url}/graphql`)).status).toBe(404);
    } finally {
      expect(await workers.stop()).toBe(0);
      await proxy.close().catch(() => {});
    }
  });

  it('cdc run: CDC lag in bytes and seconds, commit durations, captured events', async () => {
    const admin = new pg.Client({ connectionString: source.url });
    await admin.connect();
    const config = path.join(cwd, 'cdc.config.mjs');
    try {
      await admin.query('create table public.items (id int primary key, name text)');
      await admin.query(`insert into public.items select i, 'item ' || i from generate_series(1, 20) i`);
      await writeFile(
        config,
        `export default ${JSON.stringify({
          sources: {
            shop: {
              url: source.url,
              tables: ['public.items'],
              slot: `s_ops_${source.tag}`,
              publication: `p_ops_${source.tag}`,
            },
          },
        })};\n`,
      );
      const capture = run(['--config', config, 'cdc', 'run'], { DATABASE_URL: database.url });
      try {
        const url = await capture.url;
        await waitFor(async () => (await fetch(`${url}/readyz`)).status === 200, { what: 'ready' });
        // Changes streamed after the snapshot (whose rows are not log transactions of the stream).
        await waitFor(() => capture.stderr().includes('"streaming changes"'), {
          timeoutMs: 60_000,
          what: 'streaming',
        });
        await admin.query(`insert into public.items select i, 'item ' || i from generate_series(21, 25) i`);
        const metrics = await waitFor(
          async () => {
            const text = await scrape(url);
            return (sample(text, 'tributary_cdc_events_total', 'source="shop"') ?? 0) >= 5 &&
              sample(text, 'tributary_cdc_lag_bytes', 'source="shop"') !== undefined &&
              sample(text, 'tributary_cdc_lag_seconds', 'source="shop"') !== undefined
              ? text
              : undefined;
          },
          { timeoutMs: 60_000, what: () => `captured changes in /metrics (${capture.stderr().slice(-500)})` },
        );
        expect(sample(metrics, 'tributary_cdc_transactions_total', 'source="shop"')).toBeGreaterThanOrEqual(
          1,
        );
        expect(
          sample(metrics, 'tributary_cdc_commit_duration_seconds_count', 'source="shop"'),
        ).toBeGreaterThanOrEqual(1);
        expect(sample(metrics, 'tributary_cdc_lag_bytes', 'source="shop"')).toBeGreaterThanOrEqual(0);
        expect(sample(metrics, 'tributary_cdc_lag_seconds', 'source="shop"')).toBeGreaterThanOrEqual(0);
        expect(sample(metrics, 'tributary_db_pool_max', 'pool="cdc"')).toBeGreaterThan(0);
        // This process runs no projections: it reports no projection lag.
        expect(metrics).not.toMatch(/^tributary_projection_lag_events\{/m);
      } finally {
        expect(await capture.stop()).toBe(0);
      }
    } finally {
      await admin.end();
    }
  });

  it('beyond loopback, /metrics needs a credential with the metrics scope, or the process refuses to start', async () => {
    const refused = await runCli(['start', '--no-api'], {
      cwd,
      env: { DATABASE_URL: database.url, TRIBUTARY_METRICS_PORT: '0', TRIBUTARY_METRICS_HOST: '0.0.0.0' },
    });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/\/metrics would answer anyone on 0\.0\.0\.0[\s\S]*→ Configure api\.auth/);

    const secured = run(['start', '--no-api'], {
      DATABASE_URL: database.url,
      TRIBUTARY_METRICS_HOST: '0.0.0.0',
      WITH_AUTH: '1',
    });
    try {
      const url = await secured.url;
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
      await waitFor(async () => (await fetch(`${url}/readyz`)).status === 200, { what: 'ready' });
      const anonymous = await fetch(`${url}/metrics`);
      expect(anonymous.status).toBe(401);
      expect(await anonymous.text()).not.toMatch(/tributary_/);
      expect(await scrape(url, { authorization: 'Bearer k-prom' })).toMatch(
        /^tributary_projection_lag_events\{projection="ops_counts"\} \d+$/m,
      );
    } finally {
      expect(await secured.stop()).toBe(0);
    }
  });

  it('a metrics port in use stops the start with a clear error', async () => {
    const holder = run(['start', '--no-api'], { DATABASE_URL: database.url });
    try {
      const port = new URL(await holder.url).port;
      const second = await runCli(['start', '--no-api'], {
        cwd,
        env: { DATABASE_URL: database.url, TRIBUTARY_METRICS_PORT: port },
      });
      expect(second.code).toBe(1);
      expect(second.stderr).toMatch(
        new RegExp(`Port ${port} on 127\\.0\\.0\\.1[\\s\\S]*→ Set metrics\\.port`),
      );
    } finally {
      expect(await holder.stop()).toBe(0);
    }
  });
});
