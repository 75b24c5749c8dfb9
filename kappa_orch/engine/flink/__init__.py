"""Flink as kappa_orch's engine: the SQL of a version's sources, sink and INSERT (`sources`,
`sql`), how its jobs checkpoint and restart (`policy`), Flink's planner run on a spec
(`planner`, in a JVM), the statement set checked against Flink's reading of it
(`statements`), a compiled plan made canonical, with operator ids derived from content
(`compiled`), the SQL Gateway's sessions, statement sets and plans (`gateway`), and the
Dagster resource that submits and watches jobs (`resource`).

May import: `engine.protocol`, `spec`, `errors`, `progress`.
"""
