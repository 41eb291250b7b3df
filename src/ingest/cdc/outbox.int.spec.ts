import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { captureSpec, streaming } from '../../../test/support/captureSpec.js';
import { readWholeStream, type SourceDatabase } from '../../../test/support/cdcSource.js';
import { waitFor } from '../../../test/support/waitFor.js';
import type { Pool } from '../../db/index.js';
import { createLogger } from '../../logger.js';
import { appendToStream, type Envelope, readAll, START } from '../log/index.js';
import { type Capture, type CdcSourceConfig, CdcSourceError, startCapture } from './index.js';

let pool: Pool;
let src: SourceDatabase;
let source: pg.Client;
const captures: Capture[] = [];

captureSpec(async (spec) => {
  ({ pool, src, source } = spec);
  await source.query(`create table orders (id int primary key, status text);
    create table outbox (id uuid primary key, aggregate_id text, event_type text, payload jsonb, meta jsonb,
      created_at timestamptz not null default now())`);
}, captures);

function capture(name: string, config: Omit<CdcSourceConfig, 'url'>) {
  const running = startCapture({
    sources: {
      [name]: { url: src.url, slot: `s_${name}_${src.tag}`, publication: `p_${name}_${src.tag}`, ...config },
    },
    pool,
    ...(process.env.CDC_DEBUG ? { logger: createLogger({ level: 'debug', format: 'pretty' }) } : {}),
  });
  captures.push(running);
  return running;
}

/** Every event of the log, in log order. */
async function wholeLog(): Promise<Envelope[]> {
  const out: Envelope[] = [];
  let from = START;
  for (;;) {
    const page = await readAll(pool, from, { limit: 5000 });
    out.push(...page.events);
    if (page.events.length === 0) return out;
    from = page.next;
  }
}

const OUTBOX = {
  table: 'public.outbox',
  stream: 'aggregate_id',
  type: 'event_type',
  data: 'payload',
  id: 'id',
  metadata: 'meta',
  streamPrefix: 'order-',
};

describe('the transactional outbox', () => {
  it('turns each committed insert into a domain event of its stream, in commit order, with the state changes around it', async () => {
    const running = capture('ob', { tables: ['public.orders'], outbox: OUTBOX });
    await streaming(running);
    const id = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
    // State and event in one transaction, as the application does it.
    await source.query(`begin;
      insert into orders values (1, 'placed');
      insert into outbox (id, aggregate_id, event_type, payload, meta)
        values ('${id(1)}', '1', 'OrderPlaced', '{"total": 120}', '{"user": "u-7"}');
      commit`);
    // Deleted in the same transaction: the insert still counts.
    await source.query(`begin;
      update orders set status = 'paid' where id = 1;
      insert into outbox (id, aggregate_id, event_type, payload) values ('${id(2)}', '1', 'OrderPaid', '{"method": "card"}');
      delete from outbox where id = '${id(2)}';
      commit`);
    // Rolled back: nothing.
    await source.query(`begin;
      insert into orders values (2, 'placed');
      insert into outbox (id, aggregate_id, event_type, payload) values ('${id(3)}', '2', 'OrderPlaced', '{}');
      rollback`);
    // Two events of two streams in one transaction, then a cleanup that deletes and an update: no events.
    await source.query(`begin;
      insert into outbox (id, aggregate_id, event_type, payload) values ('${id(4)}', '1', 'OrderShipped', '{"carrier": "x"}');
      insert into outbox (id, aggregate_id, event_type, payload) values ('${id(5)}', '9', 'OrderPlaced', '{"total": 5}');
      commit`);
    await source.query(`update outbox set payload = '{"changed": true}' where id = '${id(4)}'`);
    await source.query('delete from outbox');
    await source.query(`insert into orders values (3, 'placed')`);

    await waitFor(async () => (await readWholeStream(pool, 'cdc-ob')).length >= 3, { what: 'state changes' });
    const log = (await wholeLog()).filter((e) => e.streamId === 'cdc-ob' || e.streamId.startsWith('order-'));
    expect(log.map((e) => [e.streamId, e.type])).toEqual([
      ['cdc-ob', 'public.orders.insert'],
      ['order-1', 'OrderPlaced'],
      ['cdc-ob', 'public.orders.update'],
      ['order-1', 'OrderPaid'],
      ['order-1', 'OrderShipped'],
      ['order-9', 'OrderPlaced'],
      ['cdc-ob', 'public.orders.insert'],
    ]);
    const placed = log[1]!;
    expect(placed).toMatchObject({
      eventId: id(1),
      streamPosition: 1,
      data: { total: 120 },
      metadata: { user: 'u-7', source: 'ob', outbox: 'public.outbox', lsn: log[0]!.metadata.lsn },
    });
    // The event's time is its transaction's commit time, like a row change's.
    expect(placed.eventTime).toEqual(log[0]!.eventTime);
    expect(log[3]).toMatchObject({ eventId: id(2), streamPosition: 2, data: { method: 'card' } });
    expect(log[4]!.metadata.lsn).toBe(log[5]!.metadata.lsn);
    expect(log[4]!.metadata.ordinal).toBeLessThan(log[5]!.metadata.ordinal as number);

    // The ids make appends idempotent: an application appending the same event is a no-op.
    const again = await appendToStream(pool, 'order-9', [
      { id: id(5), type: 'OrderPlaced', data: { total: 5 } },
    ]);
    expect(again.appended).toBe(false);
  });

  it('appends a row that is not a valid event to the source stream as rejected, with the reason, and goes on', async () => {
    const running = capture('bad', {
      tables: [],
      outbox: {
        table: 'public.outbox',
        stream: 'aggregate_id',
        type: 'event_type',
        data: 'payload',
        id: 'id',
      },
    });
    await streaming(running);
    await source.query(`insert into outbox (id, aggregate_id, event_type, payload)
      values ('10000000-0000-4000-8000-000000000001', null, 'OrderPlaced', '{}')`);
    await source.query(`insert into outbox (id, aggregate_id, event_type, payload)
      values ('10000000-0000-4000-8000-000000000002', 'b-1', 'OrderPlaced', '[1, 2]')`);
    await source.query(`insert into outbox (id, aggregate_id, event_type, payload)
      values ('10000000-0000-4000-8000-000000000003', 'b-1', 'OrderPlaced', '{"ok": true}')`);
    const rejected = await waitFor(async () => {
      const all = await readWholeStream(pool, 'cdc-bad');
      return all.length >= 2 ? all : undefined;
    });
    expect(rejected.map((e) => [e.type, e.data.error])).toEqual([
      ['public.outbox.rejected', "column 'aggregate_id' is null or empty"],
      ['public.outbox.rejected', "column 'payload' must hold a JSON object"],
    ]);
    expect(rejected[1]!.data.after).toMatchObject({ aggregate_id: 'b-1', payload: [1, 2] });
    const good = await waitFor(async () => {
      const events = await readWholeStream(pool, 'b-1');
      return events.length === 1 ? events : undefined;
    });
    expect(good[0]).toMatchObject({ type: 'OrderPlaced', data: { ok: true } });
    await source.query('delete from outbox');
  });

  it('refuses an outbox whose table lacks a configured column, before streaming', async () => {
    const running = capture('nocol', {
      tables: [],
      outbox: { table: 'public.outbox', stream: 'aggregate', type: 'event_type', data: 'payload' },
    });
    const error = await running.failure;
    expect(error).toBeInstanceOf(CdcSourceError);
    expect(error.message).toMatch(/outbox table public\.outbox has no column 'aggregate' \(outbox\.stream\)/);
    expect(error.hint).toMatch(/Its columns are id, aggregate_id/);
  });
});
