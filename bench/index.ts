// `npm run bench -- <name>`: runs one benchmark. Each prints its figures beside a baseline measured in the same run.
import { benchApi } from './api.js';
import { benchAppend } from './append.js';
import { benchCdc } from './cdc.js';
import { nexmark } from './nexmark.js';
import { benchPartitions } from './partitions.js';
import { benchProjection } from './projection.js';
import { benchSink } from './sink.js';

const benchmarks: Record<string, () => Promise<unknown>> = {
  api: benchApi,
  append: benchAppend,
  cdc: benchCdc,
  nexmark,
  partitions: benchPartitions,
  projection: benchProjection,
  sink: benchSink,
};

const name = process.argv[2];
const run = name === undefined ? undefined : benchmarks[name];
if (run === undefined) {
  console.error(`usage: npm run bench -- <${Object.keys(benchmarks).join(' | ') || 'name'}>`);
  process.exitCode = 2;
} else {
  await run();
}
