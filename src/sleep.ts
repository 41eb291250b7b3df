/** Resolves after `ms`, or at once when `signal` aborts (or already has). Never rejects. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * Calls `check` until it returns true, waiting `firstDelayMs` after the first miss and twice
 * as long after each next one, up to `maxDelayMs`. Resolves true as soon as `check` does,
 * false once a miss comes at or after `deadline` (a `Date.now()` time) or after `signal`
 * aborted: the wait loop of read-your-writes, which each caller ends with its own error.
 */
export async function pollUntil(
  check: () => Promise<boolean>,
  options: { deadline: number; maxDelayMs: number; firstDelayMs?: number; signal?: AbortSignal },
): Promise<boolean> {
  let delay = options.firstDelayMs ?? 5;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= options.deadline || options.signal?.aborted) return false;
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, options.maxDelayMs);
  }
}
