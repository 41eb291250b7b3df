import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { kill9, runCapture, writeSourcesConfig } from '../../../test/support/captureProcess.js';
import { captureSpec } from '../../../test/support/captureSpec.js';
import { readWholeStream, type SourceDatabase, sourceBinDir } from '../../../test/support/cdcSource.js';
import type { TestDatabase } from '../../../test/support/database.js';
import { waitFor } from '../../../test/support/waitFor.js';
import type { Pool } from '../../db/index.js';
import { compareLsn } from './lsn.js';

let db: TestDatabase;
let pool: Pool;
let src: SourceDatabase;
let dir: string;

captureSpec((spec) => ({ db, pool, src, dir } = spec));

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const KILLS = sourceBinDir() === undefined ? 8 : 4;
const WRITERS = 3;

describe('the outbox under SIGKILL', () => {
  it(`holds exactly the committed outbox events, once each, in commit order, across ${KILLS} SIGKILLs of the capture`, async () => {
    const setup = new pg.Client({ connectionString: src.url });
    await setup.connect();
    await setup.query(`create table ledger (seq int primary key, writer int not null);
      create table outbox (id uuid primary key, aggregate_id text not null, event_type text not null, payload jsonb not null)`);
    await setup.end();
    const config = await writeSourcesConfig(dir, 'outbox', {
      ob: {
        url: src.url,
        tables: ['public.ledger'],
        outbox: {
          table: 'public.outbox',
          stream: 'aggregate_id',
          type: 'event_type',
          data: 'payload',
          id: 'id',
        },
        slot: `s_ob_${src.tag}`,
        publication: `p_ob_${src.tag}`,
      },
    });
    const first = runCapture(config, db.url);
    await first.seen(['streaming changes']);

    // Applications: each transaction writes its state (a ledger row) and one to three outbox
    // rows; a fifth roll back; some delete their outbox rows before committing, a cleaner
    // deletes the rest later. `committed` holds what was committed, by seq.
    const committed = new Map<number, string[]>();
    let seq = 0;
    let stop = false;
    const writer = async (index: number) => {
      const client = new pg.Client({ connectionString: src.url });
      await client.connect();
      while (!stop) {
        const mine = ++seq;
        const ids = Array.from({ length: 1 + (mine % 3) }, () => randomUUID());
        await client.query('begin');
        await client.query('insert into ledger values ($1, $2)', [mine, index]);
        for (const [n, id] of ids.entries()) {
          await client.query('insert into outbox values ($1, $2, $3, $4)', [
            id,
            `agg-${mine % 17}`,
            'Happened',
            JSON.stringify({ seq: mine, n }),
          ]);
        }
        if (mine % 4 === 0) await client.query('delete from outbox where id = any ($1::uuid[])', [ids]);
        if (mine % 5 === 0) {
          await client.query('rollback');
        } else {
          await client.query('commit');
          committed.set(mine, ids);
        }
        await delay(3);
      }
      await client.end();
    };
    const cleaner = async () => {
      const client = new pg.Client({ connectionString: src.url });
      await client.connect();
      while (!stop) {
        await client.query("delete from outbox where payload->>'n' = '0'");
        await delay(50);
      }
      await client.end();
    };
    const writing = Promise.all([...Array.from({ length: WRITERS }, (_, i) => writer(i)), cleaner()]);

    await kill9(first);
    // Each kill lands while the capture works through the backlog written while it was down:
    // after its first commit, at a random moment.
    const captured = async () =>
      Number(
        (
          await pool.query<{ n: string }>(
            "select coalesce(sum(transactions), 0) as n from tributary.cdc_checkpoints where source = 'ob'",
          )
        ).rows[0]!.n,
      );
    for (let round = 0; round < KILLS - 1; round++) {
      const before = await captured();
      const child = runCapture(config, db.url);
      await child.seen(['streaming changes']);
      await waitFor(async () => (await captured()) > before, { timeoutMs: 60_000, what: 'a commit' });
      await delay(Math.floor(Math.random() * 300));
      await kill9(child);
    }
    stop = true;
    await writing;

    const catchUpStarted = Date.now();
    const final = runCapture(config, db.url);
    const ledger = await waitFor(
      async () => {
        const rows = await readWholeStream(pool, 'cdc-ob');
        return rows.length >= committed.size ? rows : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 500, what: `${committed.size} ledger rows` },
    );
    const catchUpMs = Date.now() - catchUpStarted;
    final.process.kill('SIGTERM');
    await final.exited;

    const { rows } = await pool.query<{
      stream_id: string;
      event_id: string;
      type: string;
      data: { seq: number; n: number };
      metadata: { lsn: string; ordinal: number };
      global_position: string;
    }>(
      `select stream_id, event_id, type, data, metadata, global_position from tributary.events
        where stream_id like 'agg-%' order by transaction_id, global_position`,
    );
    // Exactly the committed ones, once each, with their ids.
    const expected = [...committed.values()].flat();
    expect(rows.length).toBe(expected.length);
    expect(new Set(rows.map((r) => r.event_id))).toEqual(new Set(expected));
    // In commit order: the outbox event sits in the same source transaction as its ledger row,
    // and the log orders both kinds together by the source's commit order.
    const ledgerLsn = new Map(
      ledger.map((e) => [(e.data.after as { seq: number }).seq, e.metadata.lsn as string]),
    );
    for (const row of rows) expect(row.metadata.lsn).toBe(ledgerLsn.get(row.data.seq));
    for (let i = 1; i < rows.length; i++) {
      const order = compareLsn(rows[i - 1]!.metadata.lsn, rows[i]!.metadata.lsn);
      expect(order <= 0).toBe(true);
      if (order === 0) expect(rows[i - 1]!.data.n).toBeLessThan(rows[i]!.data.n);
    }
    const { rows: merged } = await pool.query<{ lsn: string }>(
      `select metadata->>'lsn' as lsn from tributary.events
        where stream_id = 'cdc-ob' or stream_id like 'agg-%' order by transaction_id, global_position`,
    );
    for (let i = 1; i < merged.length; i++)
      expect(compareLsn(merged[i - 1]!.lsn, merged[i]!.lsn) <= 0).toBe(true);
    console.log(
      `outbox kill test: ${committed.size} committed transactions, ${expected.length} outbox events, ${seq - committed.size} rolled back, ${KILLS} kills; the last start caught up in ${catchUpMs} ms`,
    );
  });
});
