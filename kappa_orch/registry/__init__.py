"""The registry: the source of truth that makes every step resumable, kept in the
warehouse in a schema of its own. `store` holds the versions, their states and jobs, the
aliases and swaps (`store.session(warehouse)` opens it, migrated); `schema` its tables
and migrations; `states` the one table of moves a version may make; `transitions` every
change of a version's row, by name (`mark_caught_up`, `mark_gated`, `mark_failed`, ...),
over the one writer that locks the row and checks the move; `claims` one
reprocess per alias at a time; `check_history` the scheduled checks' last outcomes;
`serving` the warehouse objects a version is served through (its table, the alias view).

May import: `spec`, `engine`, `resources`, `lineage`, `config`, `errors`, `progress`.
"""
