import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium, type Locator } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN } from '../../test/support/cli.js';
import { createEmptyDatabase, type TestDatabase } from '../../test/support/database.js';
import { waitFor } from '../../test/support/waitFor.js';

// GraphiQL of `tributary dev`, in a real headless Chromium (Debian's `chromium` package) that
// may reach nothing but 127.0.0.1: its assets come from the API itself.

const CHROMIUM = process.env.TRIBUTARY_TEST_CHROMIUM ?? '/usr/bin/chromium';
/** Where the screenshots are kept (CI keeps them as artifacts). */
const ARTIFACTS =
  process.env.TRIBUTARY_TEST_ARTIFACTS ?? fileURLToPath(new URL('../../test-results/', import.meta.url));
const required = process.env.TRIBUTARY_TEST_BROWSER === '1';
const available = existsSync(CHROMIUM);
if (!available && !required) {
  console.warn(
    `Skipping the GraphiQL browser test: no Chromium at ${CHROMIUM} (apt-get install chromium, or set TRIBUTARY_TEST_CHROMIUM).`,
  );
}

let cwd: string;
let database: TestDatabase;
let dev: ChildProcess | undefined;
let browser: Browser | undefined;

beforeAll(async () => {
  cwd = await mkdtemp(path.join(tmpdir(), 'tributary-graphiql-'));
  database = await createEmptyDatabase('graphiql');
  await mkdir(ARTIFACTS, { recursive: true });
  await rm(path.join(ARTIFACTS, 'graphiql-failure.png'), { force: true });
});

afterAll(async () => {
  await browser?.close();
  if (dev && dev.exitCode === null) {
    const exited = new Promise((resolve) => dev!.once('exit', resolve));
    dev.kill('SIGTERM');
    await exited;
  }
  await database?.drop();
  await rm(cwd, { recursive: true, force: true });
});

/** A locator's text, with the no-break spaces the editors render as spaces. */
async function textOf(locator: Locator): Promise<string> {
  return (await locator.innerText()).replaceAll('\u00a0', ' ');
}

describe.skipIf(!available && !required)('GraphiQL offline, in a headless browser', () => {
  it("opens on the demo's query, runs it, shows rows and the Docs panel, with no network beyond localhost", async () => {
    expect(existsSync(CHROMIUM), `no Chromium at ${CHROMIUM}`).toBe(true);
    // The demo (no config here) on the test database, with its workload placing orders.
    const child = spawn(process.execPath, [BIN, 'dev', '--port', '0'], {
      cwd,
      env: { ...process.env, DATABASE_URL: database.url, TRIBUTARY_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    dev = child;
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    const url = await waitFor(() => /GraphiQL: +(http:\/\/127\.0\.0\.1:\d+\/graphql)/.exec(output)?.[1], {
      timeoutMs: 90_000,
      what: () => `the GraphiQL address (output: ${output.slice(-800)})`,
    });

    browser = await chromium.launch({
      executablePath: CHROMIUM,
      // Names resolve to nothing but 127.0.0.1: a request for a CDN fails whatever intercepts it.
      args: [
        '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
        ...(process.getuid?.() === 0 ? ['--no-sandbox'] : []),
      ],
    });
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const outside: string[] = [];
    let local = 0;
    await context.route('**/*', (route) => {
      const requested = new URL(route.request().url());
      if (requested.hostname === '127.0.0.1') {
        local++;
        return route.continue();
      }
      outside.push(requested.href);
      return route.abort('internetdisconnected');
    });
    const page = await context.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    try {
      // Generous timeouts: on a loaded machine the 9 MB of script take a while to load and run.
      page.setDefaultTimeout(120_000);
      const response = await page.goto(url, { waitUntil: 'domcontentloaded' });
      expect(response?.status()).toBe(200);
      await page.locator('.graphiql-container').first().waitFor();
      // The demo's document in the editor (product search first, then the orders), named after
      // its first operation, not GraphiQL's welcome text.
      const editor = page.locator('.graphiql-query-editor');
      await expect
        .poll(() => textOf(editor), { timeout: 120_000 })
        .toMatch(/query ProductSearch \{[\s\S]*query LatestOrders \{/);
      expect(await textOf(editor)).not.toMatch(/Welcome to GraphiQL/);
      expect(await textOf(page.locator('.graphiql-tab').first())).toMatch(/ProductSearch/);

      // The document has several operations: the run button asks which one.
      await page.locator('.graphiql-execute-button').click();
      await page.getByRole('menuitem', { name: 'LatestOrders' }).click();
      const result = page.locator('.graphiql-response');
      await expect
        .poll(() => textOf(result), { timeout: 120_000 })
        .toMatch(/"order_id": "[^"]+"[\s\S]*"product_name": "[^"]+"/);
      expect(await textOf(result)).not.toMatch(/"errors"/);
      await page.screenshot({ path: path.join(ARTIFACTS, 'graphiql.png') });

      // The Docs panel loads the schema through introspection.
      await page.getByRole('button', { name: 'Show Documentation Explorer' }).click();
      const docs = page.locator('.graphiql-doc-explorer');
      await expect.poll(() => textOf(docs), { timeout: 120_000 }).toMatch(/Root Types[\s\S]*query: Query/);
      await docs.getByText('Query', { exact: true }).click();
      await expect.poll(() => textOf(docs), { timeout: 120_000 }).toMatch(/orderLines/);
      await page.screenshot({ path: path.join(ARTIFACTS, 'graphiql-docs.png') });

      expect(outside).toEqual([]);
      expect(local).toBeGreaterThan(3); // the page, its script, stylesheet and the operations
      expect(pageErrors).toEqual([]);
    } catch (error) {
      await page.screenshot({ path: path.join(ARTIFACTS, 'graphiql-failure.png') }).catch(() => {});
      throw error;
    }
  });
});
