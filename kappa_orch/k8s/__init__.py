"""Kubernetes packaging: `kappa-orch k8s render` writes, from the same configuration the
local stack uses, a Flink session cluster for the Flink Kubernetes Operator, the SQL
Gateway, Dagster Helm values with the K8sRunLauncher, Strimzi topics and the images'
Dockerfiles; `kappa-orch k8s validate` checks them offline.

May import: `config`, `engine`, `resources`, `lineage`, `spec`, `errors`, `progress`.
"""
