import { isTributaryError } from '../errors.js';

/** SQLSTATE classes and codes worth a hint of their own. */
const POSTGRES_HINTS: Array<[RegExp, string]> = [
  [/^40P01$|^40001$/, 'A concurrent transaction conflicted with this one; run the command again.'],
  [/^42501$/, 'The database user lacks a privilege Tributary needs; see the message for which.'],
  [/^53/, 'The server is out of a resource (connections, disk, memory); free some and try again.'],
  [/^57014$/, 'A statement was cancelled (statement_timeout or an administrator); try again.'],
];

/**
 * What the CLI prints for a failure: one message and a hint, never a raw object or a
 * stack. Tributary's errors describe themselves; connection failures and PostgreSQL
 * errors get a message built from their parts.
 */
export async function describeCliError(error: unknown): Promise<string> {
  if (isTributaryError(error)) return `tributary: ${error.describe()}`;
  const { isConnectionError } = await import('../db/index.js');
  const message = messageOf(error);
  if (isConnectionError(error)) {
    return `tributary: cannot reach PostgreSQL: ${message}\n  → Check DATABASE_URL (or database.url in tributary.config.ts) and that the server accepts connections.`;
  }
  if ((error as { code?: unknown } | null)?.code === 'EADDRINUSE') {
    return `tributary: ${message}\n  → Another process listens on that port: stop it, or choose another port (--port, api.port or TRIBUTARY_API_PORT; 0 picks a free one).`;
  }
  const sqlState = postgresCode(error);
  if (sqlState !== undefined) {
    const detail = (error as { detail?: string }).detail;
    const hint =
      POSTGRES_HINTS.find(([pattern]) => pattern.test(sqlState))?.[1] ??
      'Run again with TRIBUTARY_LOG_LEVEL=debug for more detail.';
    return `tributary: PostgreSQL error ${sqlState}: ${message}${detail ? ` (${detail})` : ''}\n  → ${hint}`;
  }
  const cause = error instanceof Error && error.cause instanceof Error ? ` (${error.cause.message})` : '';
  return `tributary: ${message || 'unexpected failure'}${cause}\n  → This is unexpected; run again with TRIBUTARY_LOG_LEVEL=debug, and report it if it persists.`;
}

/** The SQLSTATE of an error PostgreSQL returned (five characters), if it is one. */
function postgresCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message;
  const message = (error as { message?: unknown } | null)?.message;
  if (typeof message === 'string') return message;
  if (typeof error === 'string' || typeof error === 'number') return String(error);
  return 'unexpected failure';
}
