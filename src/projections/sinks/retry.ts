/**
 * How long to wait before the next attempt at a backend: exponential backoff with jitter,
 * but never less than what the backend asked for (HTTP 429 or 503 with `Retry-After`, which
 * the backends put on their errors as `retryAfterMs`).
 */
export function retryDelayMs(
  error: unknown,
  attempt: number,
  policy: { initialDelayMs?: number; maxDelayMs?: number } = {},
): number {
  const initial = policy.initialDelayMs ?? 200;
  const max = policy.maxDelayMs ?? 30_000;
  const backoff = Math.min(max, initial * 2 ** Math.min(attempt, 20));
  const jittered = backoff / 2 + Math.random() * (backoff / 2);
  const asked = (error as { retryAfterMs?: unknown } | null)?.retryAfterMs;
  return typeof asked === 'number' && Number.isFinite(asked) && asked > 0
    ? Math.max(asked, jittered)
    : jittered;
}

/** Milliseconds from an HTTP `Retry-After` header (seconds or an HTTP date), or undefined. */
export function parseRetryAfter(value: unknown, now = Date.now()): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (typeof text !== 'string' && typeof text !== 'number') return undefined;
  const seconds = Number(text);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.min(seconds * 1000, 10 * 60_000);
  const date = Date.parse(String(text));
  return Number.isNaN(date) ? undefined : Math.min(Math.max(0, date - now), 10 * 60_000);
}

/** An error of a whole request the sink should retry, with the wait the backend asked for. */
export class BackendRetryError extends Error {
  constructor(
    message: string,
    readonly retryAfterMs?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'BackendRetryError';
  }
}
