// The Nexmark queries as Tributary projections, each with the same query in plain SQL over the
// log (the check of its result). Specification: https://github.com/nexmark/nexmark (queries
// q0 to q8 as the Flink SQL there states them).
import type { Envelope } from '../src/ingest/index.js';
import {
  type AnyView,
  type ColumnType,
  defineProjection,
  defineView,
  type HandlerContext,
  type Projection,
  type RowInputFor,
} from '../src/projections/index.js';
import {
  aggregates,
  defineAggregate,
  defineWindowedAggregate,
  formatDecimal,
  parseDecimal,
  windows,
} from '../src/projections/windows/index.js';
import { NEXMARK_TYPES } from './nexmarkGenerator.js';

export interface Query {
  name: string;
  description: string;
  projection: Projection;
  /** The same query in plain SQL over the log, into table `sql_<name>`. */
  sql: string;
  /** Rows in the view but not in the SQL result, and the other way round, by the same columns. */
  check: { view: string; sql: string };
  /** A view that only receives inserts: its rows are also written by a plain COPY (the baseline). */
  copyBaseline?: AnyView;
}

/** Published open-source Flink 1.13 throughput per core (nexmark/nexmark README, 8 workers). */
export const FLINK_PER_CORE: Record<string, number> = {
  q0: 155_020,
  q1: 157_940,
  q2: 175_210,
  q3: 152_120,
  q4: 34_330,
  q5: 22_140,
  q7: 12_330,
  q8: 146_140,
};

const bid = { types: [NEXMARK_TYPES.bid] };
const num = (e: Envelope, field: string) => Number(e.data[field]);
const ms = (e: Envelope) => e.eventTime.getTime();

const events = (type: string) =>
  `select e.transaction_id, e.global_position, e.data, e.event_time from tributary.events e where e.type = '${type}'`;
const bids = events(NEXMARK_TYPES.bid);
const people = events(NEXMARK_TYPES.person);
const auctions = events(NEXMARK_TYPES.auction);
const position = `lpad(to_hex(b.transaction_id::text::bigint), 16, '0') || '-' || lpad(to_hex(b.global_position), 16, '0')`;
/** Windows that have closed: those ending at or before the last bid (no lag, so the watermark is there). */
const closed = `(select max(event_time) from tributary.events where type = '${NEXMARK_TYPES.bid}')`;

/** The view `nexmark_<query>`, every column not null. */
function nexmarkView<const Types extends Record<string, ColumnType>>(
  query: string,
  types: Types,
  primaryKey: readonly (keyof Types & string)[],
) {
  const columns = Object.fromEntries(
    Object.entries(types).map(([column, type]) => [column, { type, nullable: false }]),
  ) as { [C in keyof Types]: { type: Types[C]; nullable: false } };
  return defineView({ name: `nexmark_${query}`, columns, primaryKey });
}
/** A projection's name, version and views when it writes one view of its own name. */
const ownView = <V extends AnyView>(view: V) => ({ name: view.name, version: 1, views: [view] });
/** The view and the SQL result compared by the same columns. */
const sameRows = (query: string, columns: string) => ({
  view: `select ${columns} from tributary_views.nexmark_${query}`,
  sql: `select ${columns} from sql_${query}`,
});

export function queries(): Query[] {
  return [
    q0(),
    sqlVariant(q0()),
    q1(),
    sqlVariant(q1()),
    q2(),
    sqlVariant(q2()),
    q3(),
    q4(),
    q5(),
    q7(),
    q8(),
  ];
}

/** The SQL expressions of a per-bid query's columns over the event `e`, and its condition. */
const SQL_STEPS: Record<string, { columns: Record<string, string>; where?: string }> = {
  q0: {
    columns: {
      position: 'e.position',
      auction: "(e.data->>'auction')::bigint",
      bidder: "(e.data->>'bidder')::bigint",
      price: "(e.data->>'price')::bigint",
      date_time: 'e.event_time',
    },
  },
  q1: {
    columns: {
      position: 'e.position',
      auction: "(e.data->>'auction')::bigint",
      price_eur: "(e.data->>'price')::numeric * 0.908",
      date_time: 'e.event_time',
    },
  },
  q2: {
    columns: {
      position: 'e.position',
      auction: "(e.data->>'auction')::bigint",
      price: "(e.data->>'price')::bigint",
    },
    where: "(e.data->>'auction')::bigint % 123 = 0",
  },
};

/** A per-bid query written as a SQL projection (`sql` instead of `handle`), into a view of its own. */
function sqlVariant(query: Query): Query {
  const step = SQL_STEPS[query.name]!;
  const base = query.copyBaseline!;
  const name = `${query.name}sql`;
  const view = defineView({ name: `nexmark_${name}`, columns: base.columns, primaryKey: base.primaryKey });
  const columns = query.check.view.slice('select '.length, query.check.view.indexOf(' from '));
  return {
    name,
    description: `${query.description}, in SQL`,
    projection: defineProjection({
      ...ownView(view),
      filter: bid,
      sql: { view, columns: step.columns, ...(step.where ? { where: step.where } : {}) },
    }),
    sql: query.sql,
    check: sameRows(name, columns),
    copyBaseline: view,
  };
}

/** A query that writes at most one row per bid: its projection, its check, and COPY as its baseline. */
function perBid<V extends AnyView>(query: {
  name: string;
  description: string;
  view: V;
  row: (e: Envelope) => Partial<RowInputFor<V>> | undefined;
  sql: string;
  columns: string;
}): Query {
  const { name, description, view, sql } = query;
  return {
    name,
    description,
    projection: defineProjection({
      ...ownView(view),
      filter: bid,
      handle: async (e, ctx) => {
        const row = query.row(e);
        if (row) await ctx.upsert(view, row);
      },
    }),
    sql,
    check: sameRows(name, query.columns),
    copyBaseline: view,
  };
}

function q0(): Query {
  return perBid({
    name: 'q0',
    description: 'pass-through',
    view: nexmarkView(
      'q0',
      { position: 'text', auction: 'bigint', bidder: 'bigint', price: 'bigint', date_time: 'timestamptz' },
      ['position'],
    ),
    row: (e) => ({
      position: e.position,
      auction: num(e, 'auction'),
      bidder: num(e, 'bidder'),
      price: num(e, 'price'),
      date_time: e.eventTime,
    }),
    sql: `select ${position} as position, (b.data->>'auction')::bigint as auction, (b.data->>'bidder')::bigint as bidder,
                 (b.data->>'price')::bigint as price, b.event_time as date_time from (${bids}) b`,
    columns: 'position, auction, bidder, price, date_time',
  });
}

function q1(): Query {
  return perBid({
    name: 'q1',
    description: 'currency conversion',
    view: nexmarkView(
      'q1',
      { position: 'text', auction: 'bigint', price_eur: 'numeric', date_time: 'timestamptz' },
      ['position'],
    ),
    row: (e) => ({
      position: e.position,
      auction: num(e, 'auction'),
      // Dollars to euros, exactly: price * 0.908.
      price_eur: formatDecimal({ mantissa: parseDecimal(e.data.price).mantissa * 908n, scale: 3 }),
      date_time: e.eventTime,
    }),
    sql: `select ${position} as position, (b.data->>'auction')::bigint as auction,
                 (b.data->>'price')::numeric * 0.908 as price_eur, b.event_time as date_time from (${bids}) b`,
    columns: 'position, auction, price_eur, date_time',
  });
}

function q2(): Query {
  return perBid({
    name: 'q2',
    description: 'selection (auction % 123 = 0)',
    view: nexmarkView('q2', { position: 'text', auction: 'bigint', price: 'bigint' }, ['position']),
    row: (e) =>
      num(e, 'auction') % 123 === 0
        ? { position: e.position, auction: num(e, 'auction'), price: num(e, 'price') }
        : undefined,
    sql: `select ${position} as position, (b.data->>'auction')::bigint as auction, (b.data->>'price')::bigint as price
            from (${bids}) b where (b.data->>'auction')::bigint % 123 = 0`,
    columns: 'position, auction, price',
  });
}

/**
 * Local item suggestion: who sells in category 10 from Oregon, Idaho or California, and which
 * auctions. An incremental join of people and auctions: each side waits in keyed state for the
 * other (an auction whose seller is not known yet, a seller in one of those states).
 */
function q3(): Query {
  const view = nexmarkView('q3', { auction: 'bigint', name: 'text', city: 'text', state: 'text' }, [
    'auction',
  ]);
  type Seller = { name: string; city: string; state: string };
  const STATES = new Set(['OR', 'ID', 'CA']);
  return {
    name: 'q3',
    description: 'local item suggestion: join of people and auctions',
    projection: defineProjection({
      ...ownView(view),
      filter: { types: [NEXMARK_TYPES.person, NEXMARK_TYPES.auction] },
      replay: 'idempotent',
      async handle(e, ctx) {
        if (e.type === NEXMARK_TYPES.person) {
          if (!STATES.has(String(e.data.state))) return;
          const id = String(e.data.id);
          const seller: Seller = {
            name: String(e.data.name),
            city: String(e.data.city),
            state: String(e.data.state),
          };
          await ctx.state.set('seller', id, seller);
          const waiting = await ctx.state.get<string[]>('auctions', id);
          for (const auction of waiting ?? []) await ctx.upsert(view, { auction, ...seller });
          if (waiting) await ctx.state.delete('auctions', id);
          return;
        }
        if (num(e, 'category') !== 10) return;
        const sellerId = String(e.data.seller);
        const seller = await ctx.state.get<Seller>('seller', sellerId);
        if (seller) {
          await ctx.upsert(view, { auction: num(e, 'id'), ...seller });
        } else {
          const waiting = (await ctx.state.get<string[]>('auctions', sellerId)) ?? [];
          await ctx.state.set('auctions', sellerId, [...waiting, String(e.data.id)]);
        }
      },
    }),
    sql: `select (a.data->>'id')::bigint as auction, p.data->>'name' as name, p.data->>'city' as city, p.data->>'state' as state
            from (${auctions}) a join (${people}) p on (a.data->>'seller')::bigint = (p.data->>'id')::bigint
           where p.data->>'state' in ('OR', 'ID', 'CA') and (a.data->>'category')::int = 10`,
    check: sameRows('q3', 'auction, name, city, state'),
  };
}

/**
 * Average closing price per category: the highest bid of each auction within its lifetime (a
 * join of auctions and bids, kept in keyed state per auction), then the average of those per
 * category, updated as closing prices rise.
 */
function q4(): Query {
  const view = nexmarkView(
    'q4',
    { category: 'bigint', auctions: 'bigint', final_sum: 'bigint', average: 'numeric' },
    ['category'],
  );
  /** An auction: category, lifetime [start, end] and the highest bid in it so far. */
  type Auction = { c: number; s: number; e: number; m: number | null };
  const raise = async (ctx: HandlerContext, id: string, auction: Auction, price: number, at: number) => {
    if (at < auction.s || at > auction.e || (auction.m !== null && price <= auction.m)) return;
    const previous = auction.m;
    auction.m = price;
    await ctx.state.set('auction', id, auction);
    const row = await ctx.get(view, { category: auction.c });
    const count = BigInt(row?.auctions ?? 0) + (previous === null ? 1n : 0n);
    const sum = BigInt(row?.final_sum ?? 0) - BigInt(previous ?? 0) + BigInt(price);
    await ctx.upsert(view, {
      category: auction.c,
      auctions: count,
      final_sum: sum,
      average: average(sum, count),
    });
  };
  return {
    name: 'q4',
    description: 'average closing price per category: join of auctions and bids',
    projection: defineProjection({
      ...ownView(view),
      filter: { types: [NEXMARK_TYPES.auction, NEXMARK_TYPES.bid] },
      replay: 'unsafe',
      async handle(e, ctx) {
        if (e.type === NEXMARK_TYPES.auction) {
          const id = String(e.data.id);
          const auction: Auction = {
            c: num(e, 'category'),
            s: ms(e),
            e: Date.parse(String(e.data.expires)),
            m: null,
          };
          await ctx.state.set('auction', id, auction);
          // Bids that came before their auction.
          for (const [price, at] of (await ctx.state.get<[number, number][]>('early', id)) ?? []) {
            await raise(ctx, id, auction, price, at);
          }
          await ctx.state.delete('early', id);
          return;
        }
        const id = String(e.data.auction);
        const auction = await ctx.state.get<Auction>('auction', id);
        if (auction) {
          await raise(ctx, id, auction, num(e, 'price'), ms(e));
        } else {
          const early = (await ctx.state.get<[number, number][]>('early', id)) ?? [];
          await ctx.state.set('early', id, [...early, [num(e, 'price'), ms(e)]]);
        }
      },
    }),
    sql: `select category, count(*) as auctions, sum(final) as final_sum, round(avg(final), 2) as average
            from (select (a.data->>'category')::bigint as category, max((b.data->>'price')::bigint) as final
                    from (${auctions}) a join (${bids}) b on (b.data->>'auction')::bigint = (a.data->>'id')::bigint
                         and b.event_time between a.event_time and (a.data->>'expires')::timestamptz
                   group by (a.data->>'id')::bigint, 1) closing
           group by category`,
    check: sameRows('q4', 'category, auctions, final_sum, average'),
  };
}

/** sum / count rounded half up to two decimals, exactly. */
function average(sum: bigint, count: bigint): string {
  const hundredths = (sum * 200n + count) / (2n * count);
  return formatDecimal({ mantissa: hundredths, scale: 2 });
}

/**
 * Hot items: in each 10 s window every 2 s, the auction(s) with the most bids. One windowed
 * aggregate over all bids per window, whose accumulator counts bids per auction and whose result
 * is the highest count with the auctions that reach it.
 */
function q5(): Query {
  const hottest = defineAggregate<Record<string, number>, { count: number; auctions: number[] }>({
    name: 'hottest auctions',
    init: () => ({}),
    add: (acc, auction) => {
      const id = String(auction);
      acc[id] = (acc[id] ?? 0) + 1;
      return acc;
    },
    merge: (a, b) => {
      for (const [id, n] of Object.entries(b)) a[id] = (a[id] ?? 0) + n;
      return a;
    },
    result: (acc) => {
      let count = 0;
      let auctions: number[] = [];
      for (const [id, n] of Object.entries(acc)) {
        if (n > count) {
          count = n;
          auctions = [Number(id)];
        } else if (n === count) auctions.push(Number(id));
      }
      return { count, auctions: auctions.sort((a, b) => a - b) };
    },
  });
  return {
    name: 'q5',
    description: 'hot items: the most-bid auctions per 10 s window every 2 s',
    projection: defineWindowedAggregate({
      name: 'nexmark_q5',
      filter: bid,
      key: () => 'all',
      value: (e) => num(e, 'auction'),
      window: windows.sliding({ size: '10s', period: '2s' }),
      aggregate: hottest,
    }),
    sql: `with counts as (
            select (b.data->>'auction')::bigint as auction, timestamptz 'epoch' + w.start * interval '1 millisecond' as window_start, count(*) as bids
              from (${bids}) b,
                   lateral (select (extract(epoch from b.event_time) * 1000)::bigint as t) ts,
                   lateral generate_series(ts.t - ((ts.t % 2000) + 2000) % 2000 - 8000, ts.t - ((ts.t % 2000) + 2000) % 2000, 2000) w(start)
             group by 1, 2)
          select c.auction, c.window_start, c.bids
            from counts c join (select window_start, max(bids) as most from counts group by 1) m using (window_start)
           where c.bids = m.most`,
    check: {
      view: `select a.value::text::bigint as auction, r.window_start, (r.value->>'count')::bigint as bids
               from tributary_views.nexmark_q5_results r, jsonb_array_elements(r.value->'auctions') a
              where r.window_end <= ${closed}`,
      sql: `select auction, window_start, bids from sql_q5 where window_start + interval '10 seconds' <= ${closed}`,
    },
  };
}

function q7(): Query {
  return {
    name: 'q7',
    description: 'highest bid per 10 s tumbling window',
    projection: defineWindowedAggregate({
      name: 'nexmark_q7',
      filter: bid,
      key: () => 'all',
      value: (e) => num(e, 'price'),
      window: windows.tumbling({ size: '10s' }),
      aggregate: aggregates.max(),
    }),
    sql: `select timestamptz 'epoch' + floor(extract(epoch from b.event_time) / 10) * interval '10 seconds' as window_start,
                 max((b.data->>'price')::bigint) as price
            from (${bids}) b group by 1`,
    check: {
      view: `select window_start, (value #>> '{}')::bigint as price from tributary_views.nexmark_q7_results
              where window_end <= ${closed}`,
      sql: `select window_start, price from sql_q7 where window_start + interval '10 seconds' <= ${closed}`,
    },
  };
}

/**
 * Monitor new users: people who opened an auction in the same 10 s tumbling window in which they
 * registered. A windowed join: each window's people and sellers wait in keyed state under the
 * window's namespace, dropped once the window is two windows behind the newest event.
 */
function q8(): Query {
  const view = nexmarkView('q8', { id: 'bigint', window_start: 'timestamptz', name: 'text' }, [
    'id',
    'window_start',
  ]);
  const WINDOW = 10_000;
  return {
    name: 'q8',
    description: 'new users with an auction in the same 10 s window: windowed join',
    projection: defineProjection({
      ...ownView(view),
      filter: { types: [NEXMARK_TYPES.person, NEXMARK_TYPES.auction] },
      replay: 'idempotent',
      async handle(e, ctx) {
        const start = Math.floor(ms(e) / WINDOW) * WINDOW;
        const newest = (await ctx.state.get<number>('windows', 'newest')) ?? start;
        if (start > newest) {
          await ctx.state.set('windows', 'newest', start);
          // Keep the previous window for stragglers; older ones are done.
          for (let old = newest - WINDOW; old < start - WINDOW; old += WINDOW)
            await ctx.state.clear(`w${old}`);
        } else if (start < newest - WINDOW) {
          return; // later than the join waits for
        }
        const namespace = `w${start}`;
        if (e.type === NEXMARK_TYPES.person) {
          const id = String(e.data.id);
          await ctx.state.set(namespace, `p${id}`, String(e.data.name));
          if ((await ctx.state.get(namespace, `a${id}`)) !== undefined) {
            await ctx.upsert(view, { id, window_start: new Date(start), name: String(e.data.name) });
          }
          return;
        }
        const seller = String(e.data.seller);
        const name = await ctx.state.get<string>(namespace, `p${seller}`);
        if (name !== undefined) await ctx.upsert(view, { id: seller, window_start: new Date(start), name });
        else await ctx.state.set(namespace, `a${seller}`, true);
      },
    }),
    sql: `select distinct (p.data->>'id')::bigint as id,
                 timestamptz 'epoch' + floor(extract(epoch from p.event_time) / 10) * interval '10 seconds' as window_start,
                 p.data->>'name' as name
            from (${people}) p join (${auctions}) a on (a.data->>'seller')::bigint = (p.data->>'id')::bigint
             and floor(extract(epoch from p.event_time) / 10) = floor(extract(epoch from a.event_time) / 10)`,
    check: sameRows('q8', 'id, window_start, name'),
  };
}
