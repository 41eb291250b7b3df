// One process of the partitions benchmark: loads, prints `loaded`, starts its workers on `go`
// (stdin), so that process start-up is not timed. Env: DATABASE_URL, NAME, PARTITIONS.
import { startWorkers, type Workers } from '../src/projections/index.js';
import { partitionedTotals } from './partitions.js';

const projection = partitionedTotals(process.env.NAME!, Number(process.env.PARTITIONS));
let workers: Workers | undefined;
let cpuAtGo = 0;
const cpu = () => {
  const { user, system } = process.cpuUsage();
  return user + system;
};
process.stdin.setEncoding('utf8');
process.stdin.on('data', (line: string) => {
  if (line.includes('go') && !workers) {
    cpuAtGo = cpu(); // start-up is not the projection's cost
    workers = startWorkers({ url: process.env.DATABASE_URL!, projections: [projection], batchSize: 1000 });
  }
  if (line.includes('stop')) {
    void workers?.stop().then(() => {
      // This process's CPU, for the benchmark's cost model.
      process.stdout.write(`cpu ${cpu() - cpuAtGo}\n`, () => process.exit(0));
    });
  }
});
process.stdout.write('loaded\n');
