import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PACKAGE_ENTRY, runCli } from '../../test/support/cli.js';
import { createEmptyDatabase, type TestDatabase } from '../../test/support/database.js';

let cwd: string;
let database: TestDatabase;

beforeAll(async () => {
  cwd = await mkdtemp(path.join(tmpdir(), 'tributary-startup-'));
  database = await createEmptyDatabase('startup');
});

afterAll(async () => {
  await rm(cwd, { recursive: true, force: true });
  await database.drop();
});

// The README's Projections example: projections, no api section.
const PROJECTIONS_ONLY = `import { defineConfig, defineProjection, defineView } from ${JSON.stringify(PACKAGE_ENTRY)};
const balances = defineView({
  name: 'balances',
  columns: { account: { type: 'text' }, balance: { type: 'numeric', nullable: false } },
  primaryKey: ['account'],
});
export default defineConfig({
  projections: [
    defineProjection({
      name: 'balances',
      version: 1,
      views: [balances],
      filter: { types: ['Deposited'] },
      async handle(event, ctx) {
        await ctx.upsert(balances, { account: String(event.data.account), balance: '0' });
      },
    }),
  ],
});
`;

const UNUSABLE_SOURCE = `export default { sources: { shop: { url: '', tables: ['public.products'] } } };`;

/** A command that fails to start must exit 1 with its message well before this. */
const PROMPTLY_MS = 30_000;

describe('a command that cannot start exits at once, non-zero, with the reason', () => {
  it.each([
    [
      'start',
      PROJECTIONS_ONLY,
      ['start'],
      /The API has no way to authenticate callers\.\n\s+→ Configure api\.auth/,
    ],
    ['serve', PROJECTIONS_ONLY, ['serve'], /The API has no way to authenticate callers/],
    ['cdc run', UNUSABLE_SOURCE, ['cdc', 'run'], /sources\.shop\.url must be a PostgreSQL connection string/],
    ['start (a source)', UNUSABLE_SOURCE, ['start', '--no-api'], /sources\.shop\.url must be/],
  ])('%s', async (_name, config, args, message) => {
    const dir = await mkdtemp(path.join(cwd, 'case-'));
    await writeFile(path.join(dir, 'tributary.config.ts'), config);
    const started = Date.now();
    const run = await runCli(args, {
      cwd: dir,
      env: { DATABASE_URL: database.url },
      timeoutMs: 2 * PROMPTLY_MS,
    });
    expect(Date.now() - started).toBeLessThan(PROMPTLY_MS);
    expect(run.code, run.stderr).toBe(1);
    expect(run.stderr).toMatch(message);
    expect(run.stderr).toMatch(/^tributary: /m);
  });
});
