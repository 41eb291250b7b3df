import { isConnectionError } from '../db/index.js';
import { isTributaryError } from '../errors.js';
import { createProgram } from './program.js';

try {
  await createProgram().parseAsync(process.argv);
} catch (error) {
  if (isTributaryError(error)) {
    console.error(`tributary: ${error.describe()}`);
  } else if (isConnectionError(error)) {
    console.error(
      `tributary: cannot reach PostgreSQL: ${(error as Error).message}\n  → Check DATABASE_URL (or database.url in tributary.config.ts) and that the server accepts connections.`,
    );
  } else {
    console.error(error);
  }
  process.exitCode = 1;
}
