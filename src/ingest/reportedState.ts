/** A capture that has not reported for this long is taken to be not running. */
const STALE_MS = 15_000;

/**
 * The state a capture shows in `status`, from the last report it stored (`age_ms` ago). Only
 * a capture that keeps reporting runs: a process killed mid-stream leaves its last state
 * behind, and shows as not running; one that stopped, or failed, says so.
 */
export function reportedState<State extends string>(
  progress: { state: string; age_ms: number } | undefined,
  running: ReadonlySet<State>,
): State | 'failed' | 'stopped' | 'not running' {
  if (progress === undefined) return 'not running';
  const state = progress.state as State;
  if (progress.age_ms <= STALE_MS && running.has(state)) return state;
  return progress.state === 'failed' || progress.state === 'stopped' ? progress.state : 'not running';
}
