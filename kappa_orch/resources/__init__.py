"""Kafka and the warehouse as Dagster resources: topics, offsets, lag, produce and
consume with delivery reports and failover-safe offset reads (`kafka`,
`kafka_delivery`, `kafka_offsets`); one SQLAlchemy engine for the warehouse
(`warehouse`).

May import: `spec`, `errors`, `progress`.
"""
