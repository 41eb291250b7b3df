#!/usr/bin/env node
// Runs the TypeScript sources directly (and lets tributary.config.ts be imported) through tsx.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
