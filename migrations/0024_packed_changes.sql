-- Packed changelog rows: one row may hold many changes of one view.
--
-- A batch that changes thousands of keys of a view wrote a changelog row per key: two index
-- entries, a tuple header and JSON validation for each, about twice the cost of writing the
-- view rows themselves. The runner now writes a batch's changes to a view as one row with
-- op 'changes', whose `changes` column is a JSON array of [op, key, row, old] entries (in
-- the order the single rows had). Readers expand it; a cursor can name a change inside such
-- a row (src/projections/changelog/cursor.ts). Single-change rows keep their old shape.
-- `changes` is text holding JSON, not json: Tributary's writers alone build it, and the
-- input check of a json column (a parse of the whole array) cost as much as building it.
alter table tributary.view_changes drop constraint view_changes_op_check;
alter table tributary.view_changes
  add constraint view_changes_op_check check (op in ('upsert', 'delete', 'reset', 'changes')) not valid;
alter table tributary.view_changes add column changes text;
-- A packed row is large (a thousand changes is ~200 kB): compressed with lz4 where the server
-- has it, it is written several times faster than with the default pglz.
do $$
begin
  if exists (select 1 from pg_settings where name = 'default_toast_compression' and 'lz4' = any (enumvals)) then
    alter table tributary.view_changes alter column changes set compression lz4;
  end if;
end $$;

-- Every change, one row each, packed or not (for operators in psql, and tests): `entry`
-- numbers the changes of a packed row from 0; a single-change row has entry 0.
create view tributary.view_change_entries as
select c.transaction_id,
       c.seq,
       (e.ordinality - 1)::int as entry,
       c.view,
       case when c.op = 'changes' then e.value ->> 0 else c.op end as op,
       case when c.op = 'changes' then e.value -> 1 else c.key end as key,
       case when c.op <> 'changes' then c.row
            when json_typeof(e.value -> 2) <> 'null' then e.value -> 2 end as row,
       case when c.op <> 'changes' then c.old
            when json_typeof(e.value -> 3) <> 'null' then e.value -> 3 end as old,
       c.log_position,
       c.created_at
from tributary.view_changes c
cross join lateral json_array_elements(coalesce(c.changes::json, '[null]'::json)) with ordinality as e (value, ordinality);
