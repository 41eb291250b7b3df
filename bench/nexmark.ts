// `npm run bench -- nexmark [--events N] [--seed S] [--only q0,q5] [--batch-size 1000]`
//
// Nexmark q0 to q8 (q6 aside, as in Flink's suite) as Tributary projections over one generated
// log, each run alone from the start of the log to its head. Every result is checked against
// the same query in plain SQL over the log. The ratios: for every query, events per CPU second
// (this process and the PostgreSQL server) against the published open-source Flink figure per
// core; for the queries that only insert rows (q0, q1, q2), wall time against baselines measured
// in this run: a plain COPY of the same output rows into the same table; a plain pipeline
// (reading the events the query reads out of the log by COPY, then that COPY: the fair baseline
// of a filter whose output is small); and that COPY plus a COPY of the changelog rows the
// projection wrote (a floor, since every view write is also logged).
import { readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { finished } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { createPool, migrate, type Pool, quoteIdentifier, startEmbeddedPostgres } from '../src/db/index.js';
import { createPostgresEventStore } from '../src/ingest/index.js';
import { type AnyView, startWorkers, viewTableStatements } from '../src/projections/index.js';
import { generateNexmark } from './nexmarkGenerator.js';
import { FLINK_PER_CORE, type Query, queries } from './nexmarkQueries.js';

function arg(flag: string, fallback: number): number {
  const index = process.argv.indexOf(flag);
  const value = index === -1 ? undefined : Number(process.argv[index + 1]);
  return value !== undefined && Number.isFinite(value) ? value : fallback;
}

function only(): Set<string> | undefined {
  const index = process.argv.indexOf('--only');
  const list = index === -1 ? undefined : process.argv[index + 1];
  return list ? new Set(list.split(',')) : undefined;
}

/**
 * The baseline of an insert-only query: its output rows (the SQL result, in the view's columns)
 * written by one plain COPY into an empty table defined as the view is. Median of three.
 */
async function copyBaseline(pool: Pool, query: Query, view: AnyView): Promise<number> {
  const columns = Object.keys(view.columns).map(quoteIdentifier).join(', ');
  const client = await pool.connect();
  try {
    let text = '';
    const out = client.query(copyTo(`copy (select ${columns} from sql_${query.name}) to stdout`));
    out.on('data', (chunk: Buffer) => {
      text += chunk.toString();
    });
    await finished(out);
    const table = `${view.name}_copy`;
    const times: number[] = [];
    for (let round = 0; round < 3; round++) {
      await client.query(`drop table if exists tributary_views.${quoteIdentifier(table)}`);
      for (const statement of viewTableStatements(view, 'tributary_views', table))
        await client.query(statement);
      const started = performance.now();
      const stream = client.query(
        copyFrom(`copy tributary_views.${quoteIdentifier(table)} (${columns}) from stdin`),
      );
      stream.end(text);
      await finished(stream);
      times.push(performance.now() - started);
    }
    await client.query(`drop table if exists tributary_views.${quoteIdentifier(table)}`);
    return times.sort((a, b) => a - b)[1]!;
  } finally {
    client.release();
  }
}

/**
 * What writing the view's changelog rows costs alone: the rows the projection logged for the
 * view, written by one plain COPY into an empty table defined as the changelog is (its indexes
 * included). Every view write also appends one, so a projection's time is at least this plus
 * the COPY of the view rows. Median of three.
 */
async function changelogBaseline(pool: Pool, view: AnyView): Promise<number> {
  const client = await pool.connect();
  try {
    let text = '';
    const out = client.query(
      copyTo(
        `copy (select view, op, key, row, old, log_position from tributary.view_changes
                where view = '${view.name}' order by transaction_id, seq) to stdout`,
      ),
    );
    out.on('data', (chunk: Buffer) => {
      text += chunk.toString();
    });
    await finished(out);
    const times: number[] = [];
    for (let round = 0; round < 3; round++) {
      await client.query('drop table if exists tributary.view_changes_copy');
      await client.query(
        'create table tributary.view_changes_copy (like tributary.view_changes including all)',
      );
      const started = performance.now();
      const stream = client.query(
        copyFrom('copy tributary.view_changes_copy (view, op, key, row, old, log_position) from stdin'),
      );
      stream.end(text);
      await finished(stream);
      times.push(performance.now() - started);
    }
    await client.query('drop table if exists tributary.view_changes_copy');
    return times.sort((a, b) => a - b)[1]!;
  } finally {
    client.release();
  }
}

/**
 * The read half of a plain pipeline: the events the query reads (its type filter), whole and in
 * log order, out of the log by one COPY to this process. Median of three.
 */
async function readBaseline(pool: Pool, query: Query): Promise<number> {
  const types = query.projection.filter?.types ?? [];
  const where = types.length ? `where type in (${types.map((t) => `'${t}'`).join(', ')})` : '';
  const client = await pool.connect();
  try {
    const times: number[] = [];
    for (let round = 0; round < 3; round++) {
      const started = performance.now();
      let bytes = 0;
      const out = client.query(
        copyTo(
          `copy (select transaction_id, global_position, stream_id, stream_position, event_id, type, data, metadata,
                        event_time, recorded_at
                   from tributary.events ${where} order by transaction_id, global_position) to stdout`,
        ),
      );
      out.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
      });
      await finished(out);
      times.push(performance.now() - started);
      if (bytes === 0) throw new Error(`The log holds no events for ${query.name}.`);
    }
    return times.sort((a, b) => a - b)[1]!;
  } finally {
    client.release();
  }
}

/** CPU seconds used so far by the PostgreSQL server (postmaster and its backends), when it runs here. */
function postgresCpuSeconds(postmasterPid: number | undefined): number {
  if (postmasterPid === undefined) return 0;
  const ticks = 100; // USER_HZ on Linux
  let total = 0;
  for (const entry of safeReaddir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const pid = Number(entry);
      const ppid = Number(fields[1]);
      if (pid !== postmasterPid && ppid !== postmasterPid) continue;
      total += (Number(fields[11]) + Number(fields[12])) / ticks;
    } catch {
      // The process ended meanwhile.
    }
  }
  return total;
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

export async function nexmark(): Promise<void> {
  const events = arg('--events', 50_000);
  const seed = arg('--seed', 42);
  const batchSize = arg('--batch-size', 1000);
  let stopServer = async () => {};
  let url = process.env.DATABASE_URL;
  let postmasterPid: number | undefined;
  let adminUrl: string;
  if (url) {
    adminUrl = url;
  } else {
    const dir = await mkdtemp(path.join(tmpdir(), 'tributary-nexmark-'));
    await chmod(dir, 0o755); // as root the server runs as `postgres`, which must reach its data directory
    const server = await startEmbeddedPostgres({ dataDir: path.join(dir, 'pgdata') });
    adminUrl = server.adminUrl;
    postmasterPid = Number(readFileSync(path.join(dir, 'pgdata', 'postmaster.pid'), 'utf8').split('\n')[0]);
    stopServer = async () => {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    };
    url = server.url;
  }
  const database = `nexmark_${Date.now().toString(36)}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`create database ${quoteIdentifier(database)}`);
  const dbUrl = new URL(url);
  dbUrl.pathname = `/${database}`;
  const benchUrl = dbUrl.toString();
  let pool: Pool | undefined;
  try {
    await migrate(benchUrl);
    pool = createPool(benchUrl, { max: 4 });
    const store = createPostgresEventStore({ connectionString: benchUrl, maxEventsPerAppend: 10_000 });
    console.log(
      `nexmark: ${events} events (seed ${seed}), batches of ${batchSize}, ${cpus().length} cores, load average ${loadavg()
        .map((n) => n.toFixed(1))
        .join(' ')}`,
    );
    let appendMs = 0;
    let chunkNo = 0;
    for (const chunk of generateNexmark({ events, seed })) {
      const started = performance.now();
      await store.append(`nexmark-${chunkNo++}`, chunk);
      appendMs += performance.now() - started;
    }
    await store.close();
    console.log(`append: ${fmt((events / appendMs) * 1000)} events/s\n`);
    const head = (
      await pool.query<{ p: string }>(
        `select lpad(to_hex(transaction_id::text::bigint), 16, '0') || '-' || lpad(to_hex(global_position), 16, '0') as p
         from tributary.events order by transaction_id desc, global_position desc limit 1`,
      )
    ).rows[0]!.p;

    const rows: string[][] = [
      [
        'query',
        'events/s',
        'events/s/core',
        'Flink/core',
        'x Flink',
        'COPY ms',
        'x COPY',
        'read+COPY ms',
        'x read+COPY',
        'COPY+changelog ms',
        'x COPY+changelog',
        'check',
      ],
    ];
    const selected = only();
    for (const query of queries()) {
      if (selected && !selected.has(query.name)) continue;
      await pool.query(`create table sql_${query.name} as ${query.sql}`);
      // Untimed, before each query: statistics on the freshly loaded log, as autovacuum would
      // gather soon after a bulk load (without them the planner takes a type filter for a rare
      // one and reads each batch by sorting the rest of the log), and nothing left for
      // autovacuum to do about earlier queries' writes while this one is measured.
      await pool.query('vacuum analyze');

      const cpuBefore = process.cpuUsage();
      const pgBefore = postgresCpuSeconds(postmasterPid);
      const started = performance.now();
      const workers = startWorkers({ url: benchUrl, projections: [query.projection], batchSize });
      for (;;) {
        const { rows: done } = await pool.query<{ ok: boolean }>(
          'select position >= $2 as ok from tributary.projections where name = $1',
          [query.projection.name, head],
        );
        if (done[0]?.ok) break;
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      const ms = performance.now() - started;
      await workers.stop();
      const cpu = process.cpuUsage(cpuBefore);
      const cpuSeconds = (cpu.user + cpu.system) / 1e6 + (postgresCpuSeconds(postmasterPid) - pgBefore);

      const { rows: diff } = await pool.query<{ missing: number; extra: number; total: number }>(
        `select (select count(*) from (${query.check.sql} except all ${query.check.view}) a)::int as missing,
                (select count(*) from (${query.check.view} except all ${query.check.sql}) b)::int as extra,
                (select count(*) from (${query.check.sql}) c)::int as total`,
      );
      const check = diff[0]!;
      const ok = check.missing === 0 && check.extra === 0 && check.total > 0;
      const copyMs = query.copyBaseline ? await copyBaseline(pool, query, query.copyBaseline) : undefined;
      const pipelineMs = copyMs === undefined ? undefined : copyMs + (await readBaseline(pool, query));
      const loggedMs =
        copyMs === undefined || !query.copyBaseline
          ? undefined
          : copyMs + (await changelogBaseline(pool, query.copyBaseline));
      const perCore = postmasterPid === undefined ? undefined : events / cpuSeconds;
      const flink = FLINK_PER_CORE[query.name.replace(/sql$/, '')];
      rows.push([
        `${query.name} ${query.description}`,
        fmt((events / ms) * 1000),
        perCore === undefined ? 'n/a' : fmt(perCore),
        flink ? fmt(flink) : '-',
        perCore !== undefined && flink ? `${(perCore / flink).toFixed(2)}` : '-',
        copyMs === undefined ? '-' : `${Math.round(copyMs)} vs ${Math.round(ms)}`,
        copyMs === undefined ? '-' : (copyMs / ms).toFixed(2),
        pipelineMs === undefined ? '-' : `${Math.round(pipelineMs)} vs ${Math.round(ms)}`,
        pipelineMs === undefined ? '-' : (pipelineMs / ms).toFixed(2),
        loggedMs === undefined ? '-' : `${Math.round(loggedMs)} vs ${Math.round(ms)}`,
        loggedMs === undefined ? '-' : (loggedMs / ms).toFixed(2),
        ok
          ? `ok (${check.total} rows)`
          : `MISMATCH: ${check.missing} missing, ${check.extra} extra of ${check.total}`,
      ]);
      if (!ok) process.exitCode = 1;
    }
    printTable(rows);
    console.log(
      `load average at the end: ${loadavg()
        .map((n) => n.toFixed(1))
        .join(' ')}`,
    );
    console.log(
      '\nevents/s: log events (people, auctions and bids) per second of wall time from the start of the log to its head;' +
        '\nevents/s/core: the same events per CPU second of this process plus the PostgreSQL server;' +
        '\nx Flink: events/s/core against the published open-source Flink figure per core (nexmark/nexmark, Flink 1.13);' +
        '\nCOPY ms: a plain COPY of the same output rows into a table like the view (median of 3) vs the projection, wall time;' +
        '\nx COPY: the COPY time over the projection time (1.00: as fast as the COPY);' +
        '\nread+COPY ms: a plain pipeline, reading the events the query reads out of the log by COPY (median of 3), then that COPY;' +
        '\nx read+COPY: its time over the projection time (the fair baseline when few events give a row, as in q2);' +
        '\nCOPY+changelog ms: that COPY plus a plain COPY of the changelog rows the projection wrote for the view (median of 3),' +
        '\n  a floor for any projection: every view write also appends its change, in the same transaction;' +
        '\nx COPY+changelog: that floor over the projection time;' +
        '\ncheck: the view against the same query in plain SQL over the log.' +
        '\nBefore each query the database is vacuumed and analyzed (untimed).',
    );
  } finally {
    await pool?.end();
    await admin.query(`drop database if exists ${quoteIdentifier(database)} with (force)`).catch(() => {});
    await admin.end();
    await stopServer();
  }
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

function printTable(rows: string[][]): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  for (const row of rows) console.log(row.map((cell, i) => cell.padEnd(widths[i]!)).join('  '));
}
