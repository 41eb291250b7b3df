import type { Envelope, JsonObject } from '../../src/ingest/index.js';

/**
 * Folds one table's captured changes, treating snapshot rows as what they must be: the row as
 * it stood. Returns the final rows by key, and every snapshot row that landed after a newer
 * change of its key: one whose key the stream had deleted, or whose value differs from the
 * state the log had already reached for that key (`requireKnown`: a key the log had never
 * seen counts too, for a table whose rows were all in the log before the snapshot).
 */
export function foldWithSnapshots(
  events: readonly Envelope[],
  table: string,
  { requireKnown = false } = {},
): {
  rows: Map<string, JsonObject>;
  stale: Array<{ key: string; snapshot: JsonObject; log: JsonObject | null }>;
} {
  const rows = new Map<string, JsonObject>();
  const deleted = new Set<string>();
  const stale: Array<{ key: string; snapshot: JsonObject; log: JsonObject | null }> = [];
  for (const event of events) {
    if (!event.type.startsWith(`${table}.`)) continue;
    const op = event.type.slice(table.length + 1);
    const data = event.data as { key: JsonObject | null; after: JsonObject | null };
    const key = JSON.stringify(data.key);
    switch (op) {
      case 'truncate':
        for (const k of rows.keys()) deleted.add(k);
        rows.clear();
        break;
      case 'delete':
        rows.delete(key);
        deleted.add(key);
        break;
      case 'snapshot': {
        const current = rows.get(key);
        const incremental = event.metadata.incremental !== undefined;
        if (incremental) {
          if (
            current === undefined
              ? deleted.has(key) || requireKnown
              : JSON.stringify(current) !== JSON.stringify(data.after)
          ) {
            stale.push({ key, snapshot: data.after!, log: current ?? null });
          }
        }
        rows.set(key, data.after!);
        deleted.delete(key);
        break;
      }
      default:
        rows.set(key, { ...(rows.get(key) ?? {}), ...data.after });
        deleted.delete(key);
    }
  }
  return { rows, stale };
}
