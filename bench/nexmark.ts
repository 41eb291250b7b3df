// `npm run bench -- nexmark [--events N] [--seed S]`
//
// Nexmark q0, q1, q2, q5 and q7 as Tributary projections over one generated log, each run
// alone from the start of the log to its head. Every result is checked against the same
// query in plain SQL over the log, and the SQL run is the baseline the ratios compare with.
import { readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { createPool, migrate, type Pool, quoteIdentifier, startEmbeddedPostgres } from '../src/db/index.js';
import { createPostgresEventStore, type Envelope } from '../src/ingest/index.js';
import { defineProjection, defineView, type Projection, startWorkers } from '../src/projections/index.js';
import {
  aggregates,
  defineWindowedAggregate,
  formatDecimal,
  parseDecimal,
  windows,
} from '../src/projections/windows/index.js';
import { generateNexmark, NEXMARK_TYPES } from './nexmarkGenerator.js';

const FLINK_PER_CORE: Record<string, number> = { q0: 155_000, q5: 22_000, q7: 12_000 };

interface Query {
  name: string;
  description: string;
  projection: Projection;
  /** The same query in plain SQL over the log, into table `sql_<name>`. */
  sql: string;
  /** Rows in the view but not in the SQL result, and the other way round, by the same columns. */
  check: { view: string; sql: string };
}

function arg(flag: string, fallback: number): number {
  const index = process.argv.indexOf(flag);
  const value = index === -1 ? undefined : Number(process.argv[index + 1]);
  return value !== undefined && Number.isFinite(value) ? value : fallback;
}

const bid = { types: [NEXMARK_TYPES.bid] };
const num = (e: Envelope, field: string) => Number(e.data[field]);

function queries(): Query[] {
  const q0View = defineView({
    name: 'nexmark_q0',
    columns: {
      position: { type: 'text', nullable: false },
      auction: { type: 'bigint', nullable: false },
      bidder: { type: 'bigint', nullable: false },
      price: { type: 'bigint', nullable: false },
      date_time: { type: 'timestamptz', nullable: false },
    },
    primaryKey: ['position'],
  });
  const q1View = defineView({
    name: 'nexmark_q1',
    columns: {
      position: { type: 'text', nullable: false },
      auction: { type: 'bigint', nullable: false },
      price_eur: { type: 'numeric', nullable: false },
      date_time: { type: 'timestamptz', nullable: false },
    },
    primaryKey: ['position'],
  });
  const q2View = defineView({
    name: 'nexmark_q2',
    columns: {
      position: { type: 'text', nullable: false },
      auction: { type: 'bigint', nullable: false },
      price: { type: 'bigint', nullable: false },
    },
    primaryKey: ['position'],
  });
  const bids = `select e.transaction_id, e.global_position, e.data, e.event_time from tributary.events e where e.type = '${NEXMARK_TYPES.bid}'`;
  const position = `lpad(to_hex(b.transaction_id::text::bigint), 16, '0') || '-' || lpad(to_hex(b.global_position), 16, '0')`;
  const q5 = defineWindowedAggregate({
    name: 'nexmark_q5',
    filter: bid,
    key: (e) => num(e, 'auction'),
    window: windows.sliding({ size: '10s', period: '2s' }),
    aggregate: aggregates.count(),
  });
  const q7 = defineWindowedAggregate({
    name: 'nexmark_q7',
    filter: bid,
    key: () => 'all',
    value: (e) => num(e, 'price'),
    window: windows.tumbling({ size: '10s' }),
    aggregate: aggregates.max(),
  });
  // Windows that have closed: those ending at or before the last bid (no lag, so the watermark is there).
  const closed = `(select max(event_time) from tributary.events where type = '${NEXMARK_TYPES.bid}')`;
  return [
    {
      name: 'q0',
      description: 'pass-through',
      projection: defineProjection({
        name: 'nexmark_q0',
        version: 1,
        views: [q0View],
        filter: bid,
        handle: (e, ctx) =>
          ctx.upsert(q0View, {
            position: e.position,
            auction: String(num(e, 'auction')),
            bidder: String(num(e, 'bidder')),
            price: String(num(e, 'price')),
            date_time: e.eventTime,
          }),
      }),
      sql: `select ${position} as position, (b.data->>'auction')::bigint as auction, (b.data->>'bidder')::bigint as bidder,
                   (b.data->>'price')::bigint as price, b.event_time as date_time from (${bids}) b`,
      check: {
        view: 'select position, auction, bidder, price, date_time from tributary_views.nexmark_q0',
        sql: 'select position, auction, bidder, price, date_time from sql_q0',
      },
    },
    {
      name: 'q1',
      description: 'currency conversion',
      projection: defineProjection({
        name: 'nexmark_q1',
        version: 1,
        views: [q1View],
        filter: bid,
        handle: (e, ctx) =>
          ctx.upsert(q1View, {
            position: e.position,
            auction: String(num(e, 'auction')),
            // Dollars to euros, exactly: price * 0.908.
            price_eur: formatDecimal({ mantissa: parseDecimal(e.data.price).mantissa * 908n, scale: 3 }),
            date_time: e.eventTime,
          }),
      }),
      sql: `select ${position} as position, (b.data->>'auction')::bigint as auction,
                   (b.data->>'price')::numeric * 0.908 as price_eur, b.event_time as date_time from (${bids}) b`,
      check: {
        view: 'select position, auction, price_eur, date_time from tributary_views.nexmark_q1',
        sql: 'select position, auction, price_eur, date_time from sql_q1',
      },
    },
    {
      name: 'q2',
      description: 'filter (auction % 123 = 0)',
      projection: defineProjection({
        name: 'nexmark_q2',
        version: 1,
        views: [q2View],
        filter: bid,
        handle: async (e, ctx) => {
          if (num(e, 'auction') % 123 !== 0) return;
          await ctx.upsert(q2View, {
            position: e.position,
            auction: String(num(e, 'auction')),
            price: String(num(e, 'price')),
          });
        },
      }),
      sql: `select ${position} as position, (b.data->>'auction')::bigint as auction, (b.data->>'price')::bigint as price
              from (${bids}) b where (b.data->>'auction')::bigint % 123 = 0`,
      check: {
        view: 'select position, auction, price from tributary_views.nexmark_q2',
        sql: 'select position, auction, price from sql_q2',
      },
    },
    {
      name: 'q5',
      description: 'hot items: bids per auction, 10 s windows every 2 s',
      projection: q5,
      sql: `select (b.data->>'auction')::text as key, timestamptz 'epoch' + w.start * interval '1 millisecond' as window_start, count(*) as bids
              from (${bids}) b,
                   lateral (select (extract(epoch from b.event_time) * 1000)::bigint as t) ts,
                   lateral generate_series(ts.t - ((ts.t % 2000) + 2000) % 2000 - 8000, ts.t - ((ts.t % 2000) + 2000) % 2000, 2000) w(start)
             group by 1, 2`,
      check: {
        view: `select key, window_start, (value #>> '{}')::bigint as bids from tributary_views.nexmark_q5_results
                where window_end <= ${closed}`,
        sql: `select key, window_start, bids from sql_q5 where window_start + interval '10 seconds' <= ${closed}`,
      },
    },
    {
      name: 'q7',
      description: 'highest bid per 10 s tumbling window',
      projection: q7,
      sql: `select timestamptz 'epoch' + floor(extract(epoch from b.event_time) / 10) * interval '10 seconds' as window_start,
                   max((b.data->>'price')::bigint) as price
              from (${bids}) b group by 1`,
      check: {
        view: `select window_start, (value #>> '{}')::bigint as price from tributary_views.nexmark_q7_results
                where window_end <= ${closed}`,
        sql: `select window_start, price from sql_q7 where window_start + interval '10 seconds' <= ${closed}`,
      },
    },
  ];
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
      `nexmark: ${events} events (seed ${seed}), ${cpus().length} cores, figures under shared load`,
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
      ['query', 'events/s', 'events/s/core', 'SQL events/s', 'ratio', 'Flink/core', 'check'],
    ];
    for (const query of queries()) {
      const sqlStarted = performance.now();
      await pool.query(`create table sql_${query.name} as ${query.sql}`);
      const sqlMs = performance.now() - sqlStarted;

      const cpuBefore = process.cpuUsage();
      const pgBefore = postgresCpuSeconds(postmasterPid);
      const started = performance.now();
      const workers = startWorkers({ url: benchUrl, projections: [query.projection], batchSize: 1000 });
      for (;;) {
        const { rows: done } = await pool.query<{ ok: boolean }>(
          'select position >= $2 as ok from tributary.projections where name = $1',
          [query.projection.name, head],
        );
        if (done[0]?.ok) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
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
      const rate = (events / ms) * 1000;
      const sqlRate = (events / sqlMs) * 1000;
      rows.push([
        `${query.name} ${query.description}`,
        fmt(rate),
        postmasterPid === undefined ? 'n/a' : fmt(events / cpuSeconds),
        fmt(sqlRate),
        `${(rate / sqlRate).toFixed(3)}x SQL`,
        FLINK_PER_CORE[query.name] ? fmt(FLINK_PER_CORE[query.name]!) : '-',
        ok
          ? `ok (${check.total} rows)`
          : `MISMATCH: ${check.missing} missing, ${check.extra} extra of ${check.total}`,
      ]);
      if (!ok) process.exitCode = 1;
    }
    printTable(rows);
    console.log(
      '\nevents/s: log events (people, auctions and bids) per second of wall time from the start of the log to its head;' +
        '\nevents/s/core: the same events per CPU second of this process plus the PostgreSQL server;' +
        '\nratio: against the same query as one SQL statement over the log in this run; Flink: published open-source figures.',
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
