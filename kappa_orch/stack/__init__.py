"""The local stack: Kafka, Flink and PostgreSQL started on this machine by `kappa-orch
stack up` (`manager`, one `service` per server, `process` for the pids they keep), the
jars from Maven (`jars`), per-stack secrets, roles and certificates (`warehouse_roles`,
`flink_security`) and the object store for checkpoints (`object_store`).

May import: `config`, `engine`, `resources`, `lineage`, `spec`, `errors`, `progress`.
"""
