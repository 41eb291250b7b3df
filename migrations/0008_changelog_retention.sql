-- The view changelog without its created_at index: every view write paid one more index
-- entry for it, while only retention read it. Retention now prunes the oldest changes in
-- changelog order (transaction_id, seq) up to the first one younger than the retention,
-- walking the primary key (see pruneChanges in src/api/readChanges.ts).
drop index if exists tributary.view_changes_created_at_idx;
