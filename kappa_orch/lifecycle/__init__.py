"""The steps of a version's life, in the order a change meets them; each reads its state
from the registry, so a run killed anywhere is finished by running it again:
`deploy` (after `deploy_checks` and the source `topics`' contract; resuming from
`restore`), `catch_up`, `gate` (with `log_parity`), `swap` (also rollback and retire),
`reprocess` (the Kappa replay, end to end), `repair` (lost jobs, `orphans`), `batch`
(batch days from the same SQL); `dead_letters` and `status` read what the steps left.

May import: `plan`, `registry`, `config`, `engine`, `resources`, `lineage`, `spec`,
`errors`, `progress`.
"""
