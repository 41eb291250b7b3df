import { existsSync } from 'node:fs';
import path from 'node:path';

/** Where the `pg15-source` test project finds PostgreSQL 15 (Debian's postgresql-15 package). */
export const PG15_BIN = process.env.TRIBUTARY_TEST_PG15_BIN ?? '/usr/lib/postgresql/15/bin';

/**
 * Whether to run the CDC tests against a PostgreSQL 15 source too: TRIBUTARY_TEST_PG15=1
 * requires it (CI sets it, so missing binaries fail the run instead of skipping), =0 turns
 * it off, and by default it runs when the binaries are installed.
 */
export function runPg15Source(): boolean {
  const wanted = process.env.TRIBUTARY_TEST_PG15;
  if (wanted === '0') return false;
  if (wanted === '1') return true;
  return existsSync(path.join(PG15_BIN, 'postgres'));
}
