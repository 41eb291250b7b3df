#!/usr/bin/env node
// The `tributary` command: the compiled CLI in dist/ (a checkout builds it with `npm run build`).
import { existsSync } from 'node:fs';

const main = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  console.error('tributary: the CLI is not built (dist/cli/main.js is missing).\n  → Run `npm run build`.');
  process.exit(1);
}
await import(main.href);
