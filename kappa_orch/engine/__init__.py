"""The stream engine that runs a version's job. `protocol` is what the rest of kappa_orch
asks of an engine (`StreamEngine`); `flink/` is the engine kappa_orch ships: the Flink SQL
of a version, Flink's own planner, and the SQL Gateway and REST client.

May import: `spec`, `errors`, `progress`.
"""
