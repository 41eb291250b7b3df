#!/usr/bin/env node
// Runs the TypeScript sources directly (and lets tributary.config.ts be imported) through tsx.
// Both hooks: a config file in a CommonJS package (no "type": "module") is loaded by the CJS loader.
import { register as registerCjs } from 'tsx/cjs/api';
import { register } from 'tsx/esm/api';

registerCjs();
register();
await import('../src/cli/main.ts');
