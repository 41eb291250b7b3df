import { describeCliError } from './describeError.js';
import { createProgram } from './program.js';

try {
  await createProgram().parseAsync(process.argv);
} catch (error) {
  console.error(await describeCliError(error));
  // Whatever a failed command left behind (a pool, a timer) must not keep the process alive.
  process.exit(1);
}
