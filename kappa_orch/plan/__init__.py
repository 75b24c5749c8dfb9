"""What each pipeline needs, decided before anything is done: from the spec, the
registry and the jobs' states (`decide`: deploy, reprocess, repair, retire, blocked),
the replay checks that compare a candidate with the live version (`replay_checks`), and
what a plan shows a person before it acts (`report`). Applies nothing.

May import: `registry`, `config`, `engine`, `resources`, `lineage`, `spec`, `errors`,
`progress`.
"""
