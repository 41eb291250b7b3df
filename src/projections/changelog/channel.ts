/** Channel of the wake-up sent when view changes commit (subscription readers listen on it). */
export const VIEW_CHANGES_CHANNEL = 'tributary_view_changes';

/**
 * Set locally in a transaction, it tells the changelog trigger not to NOTIFY: the writer
 * notifies after its commit (see migration 0008).
 */
export const NOTIFY_AFTER_COMMIT_SETTING = 'tributary.notify_after_commit';
