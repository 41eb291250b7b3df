import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';
import { PG15_BIN, runPg15Source } from './test/sourceVersions.js';

const pg15 = runPg15Source();
if (!pg15) {
  console.warn(
    `Not running the CDC tests against a PostgreSQL 15 source: no binaries in ${PG15_BIN} (apt-get install postgresql-15, or set TRIBUTARY_TEST_PG15_BIN).`,
  );
}

// Three tiers, by file name: *.unit.spec.ts (no database), *.int.spec.ts (real PostgreSQL,
// a fresh database per file), *.e2e.spec.ts (real processes, HTTP, replication).
export default defineConfig({
  // Node resolves `graphql` to its CommonJS build (no "exports" map), Vite to index.mjs: two
  // copies whose classes fail each other's instanceof checks. Tests use the one Node uses.
  // Examples import 'tributary' as an app would; in tests that is the source, not the build.
  resolve: {
    alias: [
      { find: /^graphql$/, replacement: 'graphql/index.js' },
      { find: /^tributary$/, replacement: fileURLToPath(new URL('./src/index.ts', import.meta.url)) },
      {
        find: /^tributary\/testing$/,
        replacement: fileURLToPath(new URL('./src/testing/index.ts', import.meta.url)),
      },
    ],
  },
  test: {
    pool: 'forks',
    // Processes without the API serve health and metrics on 9464 by default: tests take any free port.
    env: { TRIBUTARY_METRICS_PORT: '0' },
    // TRIBUTARY_TEST_REPORT=<file> also writes a JSON report (CI prints its totals).
    reporters: process.env.TRIBUTARY_TEST_REPORT
      ? ['default', ['json', { outputFile: process.env.TRIBUTARY_TEST_REPORT }]]
      : ['default'],
    allowOnly: false,
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['src/**/*.unit.spec.ts', 'test/**/*.unit.spec.ts'] },
      },
      {
        extends: true,
        test: {
          name: 'int',
          include: ['src/**/*.int.spec.ts', 'test/**/*.int.spec.ts'],
          globalSetup: ['test/globalSetup.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      {
        extends: true,
        test: {
          name: 'e2e',
          include: ['test/**/*.e2e.spec.ts', 'src/**/*.e2e.spec.ts'],
          // The compiled CLI is what end-to-end tests run: build it first when it is stale.
          globalSetup: ['test/buildSetup.ts', 'test/globalSetup.ts'],
          testTimeout: 300_000,
          hookTimeout: 120_000,
        },
      },
      // The CDC tests again, capturing from a PostgreSQL 15 server while the log stays on the
      // main test server (the heaviest e2e tests run smaller here; see capture.e2e.spec.ts).
      ...(pg15
        ? [
            {
              extends: true as const,
              test: {
                name: 'pg15-source',
                include: ['src/ingest/cdc/*.int.spec.ts', 'src/ingest/cdc/*.e2e.spec.ts'],
                globalSetup: ['test/globalSetup.ts', 'test/sourceServerSetup.ts'],
                testTimeout: 300_000,
                hookTimeout: 120_000,
              },
            },
          ]
        : []),
    ],
  },
});
