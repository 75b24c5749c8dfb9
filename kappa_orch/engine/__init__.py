"""The stream engine that runs a version's job. `protocol` is what the rest of kappa_orch
asks of an engine (`StreamEngine`: build a version's or a batch's job as a
`JobDefinition` for a `JobTarget`, submit it, ask about it, stop it) in engine terms;
`flink/` is the engine kappa_orch ships: the Flink SQL of a version and of a batch, Flink's
own planner, and the SQL Gateway and REST client. Nothing outside `engine/` and the
wiring layers (`dagster`, `stack`, `k8s`, `cli`) imports `flink/`.

May import: `spec`, `errors`, `progress`.
"""
