import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../../test/support/database.js';
import { externalBackends } from '../../../../test/support/searchContainers.js';
import { itemRow, items, itemsSink } from '../../../../test/support/sinks.js';
import { waitFor } from '../../../../test/support/waitFor.js';
import type { DocumentOp, IndexSpec, SearchBackend, SinkBackendConfig } from '../types.js';
import { createBackend } from './index.js';

/**
 * One contract, every backend. PostgreSQL always runs (the test server). Each external
 * backend runs against the server at its URL when set (e.g.
 * TRIBUTARY_TEST_ELASTICSEARCH_URL=http://localhost:9200), else against a container started
 * with testcontainers when a container runtime is reachable, else it is skipped, saying why.
 */
const EXTERNAL = await externalBackends();

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
  for (const external of EXTERNAL) await external.stop();
}, 120_000);

function upsert(id: number, version: bigint, name: string): DocumentOp {
  const row = itemRow(id, name);
  return {
    op: 'upsert',
    id: String(id),
    version,
    key: { id },
    row,
    document: { name: row.name, description: row.description },
  };
}

function remove(id: number, version: bigint): DocumentOp {
  return { op: 'delete', id: String(id), version, key: { id } };
}

const contract = (kind: string, config: () => SinkBackendConfig) => {
  describe(`the ${kind} backend`, () => {
    let backend: SearchBackend;
    let spec: IndexSpec;
    const prefix = `contract_${randomBytes(3).toString('hex')}`;
    const first = `${prefix}_b1`;
    const second = `${prefix}_b2`;
    const names = async (name: string) =>
      [...(await backend.get(name, ['1', '2', '3', '4'])).entries()]
        .map(([id, doc]) => [id, doc.document.name, doc.version])
        .sort();

    beforeAll(async () => {
      const sink = itemsSink(prefix, { backend: config() });
      backend = await createBackend(sink, { databaseUrl: db.url });
      spec = { view: items, fields: sink.fields, language: 'english', fuzzy: true, mapping: undefined };
    });
    afterAll(async () => {
      for (const index of [first, second]) await backend?.drop(index).catch(() => {});
      await backend?.close();
    });

    it('creates an index once, however often asked', async () => {
      await backend.ensureIndex(first, spec);
      await backend.ensureIndex(first, spec);
      expect(await backend.count(first)).toBe(0);
    });

    it('upserts and deletes in bulk, and counts what is left', async () => {
      const result = await backend.write(first, [
        upsert(1, 10n, 'one'),
        upsert(2, 11n, 'two'),
        upsert(3, 12n, 'three'),
      ]);
      expect(result).toEqual({ refused: [], stale: 0 });
      await backend.write(first, [remove(3, 13n), upsert(2, 14n, 'two again')]);
      await waitFor(async () => (await backend.count(first)) === 2, { what: 'two documents' });
      expect(await names(first)).toEqual([
        ['1', 'one', 10n],
        ['2', 'two again', 14n],
      ]);
    });

    it('takes a retried batch again without effect', async () => {
      const batch = [upsert(1, 20n, 'one v20'), remove(2, 21n)];
      await backend.write(first, batch);
      await backend.write(first, batch);
      await waitFor(async () => (await backend.count(first)) === 1, { what: 'one document' });
      expect(await names(first)).toEqual([['1', 'one v20', 20n]]);
    });

    if (kind === 'postgres' || kind === 'elasticsearch' || kind === 'opensearch') {
      it('refuses a write older than the stored version, and an upsert older than a delete', async () => {
        expect(backend.enforcesVersions).toBe(true);
        const late = await backend.write(first, [upsert(1, 15n, 'older one')]);
        expect(late.stale).toBe(1);
        // Document 2 was deleted at version 21: an upsert at 19 arrives late and stays out.
        const resurrect = await backend.write(first, [upsert(2, 19n, 'resurrected')]);
        expect(resurrect.stale).toBe(1);
        expect(await names(first)).toEqual([['1', 'one v20', 20n]]);
      });
    } else {
      it('has no versioned writes: the order of writes decides (one writer per sink, in changelog order)', async () => {
        expect(backend.enforcesVersions).toBe(false);
        await backend.write(first, [upsert(4, 30n, 'four'), upsert(4, 31n, 'four v31')]);
        await waitFor(
          async () => (await names(first)).some(([id, name]) => id === '4' && name === 'four v31'),
          {
            what: 'the later write to win',
          },
        );
      });
    }

    it('points the alias at a new index in one step, and drops the old one', async () => {
      await backend.swapAlias(prefix, first, undefined);
      await waitFor(async () => (await backend.count(prefix)) >= 1, {
        what: 'the alias to serve the first index',
      });
      const before = await backend.count(prefix);
      await backend.ensureIndex(second, spec);
      await backend.write(second, [upsert(1, 40n, 'rebuilt one'), upsert(2, 41n, 'rebuilt two')]);
      const { writeTo, retired } = await backend.swapAlias(prefix, second, first);
      expect(before).toBeGreaterThan(0);
      await waitFor(async () => (await backend.count(prefix)) === 2, {
        what: 'the alias to serve the second index',
      });
      expect(
        [...(await backend.get(prefix, ['1', '2'])).values()].map((doc) => doc.document.name).sort(),
      ).toEqual(['rebuilt one', 'rebuilt two']);
      if (retired) await backend.drop(retired);
      expect(writeTo).toBeTruthy();
    });
  });
};

contract('postgres', () => ({ kind: 'postgres' }));
for (const external of EXTERNAL) {
  if (external.config) contract(external.kind, () => external.config!);
  else
    describe.skip(`the ${external.kind} backend: skipped, ${external.skipReason}`, () => {
      it('runs the contract', () => {});
    });
}
