-- The view changelog, cheaper to write (every view write appends a row to it).
--
-- * No created_at index: every write paid an index entry that only retention read.
--   Retention now prunes the oldest changes in changelog order (transaction_id, seq) up to
--   the first one younger than the retention, walking the primary key (pruneChanges in
--   src/api/readChanges.ts).
-- * key, row and old as json, not jsonb: nothing queries inside them (readers hand them out
--   whole), and json input only checks the text where jsonb builds a binary object with
--   sorted keys and parsed numbers: about a third of the cost of a changelog row. The text
--   is stored as the runner wrote it (the columns in view order).
--
-- The type change rewrites the table once; a long retained changelog makes this migration slower.
drop index if exists tributary.view_changes_created_at_idx;

alter table tributary.view_changes
  alter column key type json using key::json,
  alter column row type json using row::json,
  alter column old type json using old::json;

-- The changelog's wake-up NOTIFY, skipped in transactions that notify after their commit
-- instead (the projection runner sets tributary.notify_after_commit locally): a NOTIFY
-- inside a transaction holds a database-wide lock from before its commit until the commit
-- is flushed, so every notifying commit waits for the others.
drop trigger view_changes_notify on tributary.view_changes;
create trigger view_changes_notify
  after insert on tributary.view_changes
  for each statement
  when (coalesce(current_setting('tributary.notify_after_commit', true), '') <> 'on')
  execute function tributary.notify_view_changes();
