-- Keyed state of projections: JSON values by namespace and key that a projection keeps for
-- itself (what a join remembers of one side while it waits for the other). Written in the
-- projection's batch transaction with its views and checkpoint, so a crash never loses or
-- repeats a change to it.
--
-- `scope` is the schema of the view tables the state goes with: the live schema, or the
-- shadow schema while a rebuild builds the next version (the swap moves it to the live scope).

create table tributary.projection_state (
  projection  text not null,
  scope       text not null,
  namespace   text not null,
  key         text not null,
  value       jsonb not null,
  primary key (projection, scope, namespace, key)
);
