"""The example a Kubernetes render is made from in the tests: the reference pipelines, a
platform with a secret that must never be rendered, and the render's settings."""

from __future__ import annotations

from pathlib import Path

from kappa_orch import PlatformConfig
from kappa_orch.spec.load import load_pipelines

ROOT = Path(__file__).resolve().parents[1]
PIPELINES = load_pipelines(ROOT / "assets")
JARS = ROOT / ".kappa" / "jars" / "k8s"  # `kappa-orch stack jars` (the set-up) fetches the operator's API jar
PASSWORD = "s3cr3t-do-not-render"
PLATFORM = PlatformConfig(
    deployment="prod",
    kafka_bootstrap="kafka-0.kafka:9092,kafka-1.kafka:9092",
    warehouse_url=f"postgresql+psycopg2://kappa:{PASSWORD}@pg.db.svc:5432/warehouse",
    openlineage="http://marquez.lineage.svc:5000",
)
SETTINGS = {
    "namespace": "kappa",
    "user_code_image": "registry.example.com/kappa-user-code:0.1.0",
    "flink": {"taskmanagers": 3, "s3_endpoint": "http://minio.kappa.svc:9000"},
    "topics": {"strimzi_cluster": "events"},
    "secrets": {
        "warehouse_url": {"name": "kappa-warehouse", "key": "url"},
        "warehouse_sink_url": {"name": "kappa-warehouse", "key": "sink-url"},
        "s3_access_key": {"name": "kappa-s3", "key": "access-key"},
        "s3_secret_key": {"name": "kappa-s3", "key": "secret-key"},
        "job_key": {"name": "kappa-jobs", "key": "key"},
    },
}
