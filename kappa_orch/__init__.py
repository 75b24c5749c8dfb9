"""kappa_orch: Dagster orchestration for Kappa (streaming-first) data platforms."""

from kappa_orch.errors import (
    FlinkJobError as FlinkJobError,
)
from kappa_orch.errors import (
    KappaError as KappaError,
)
from kappa_orch.errors import (
    ServiceUnavailable as ServiceUnavailable,
)
from kappa_orch.errors import (
    StackError as StackError,
)
from kappa_orch.resources.flink import FlinkJob as FlinkJob
from kappa_orch.resources.flink import FlinkResource as FlinkResource
from kappa_orch.resources.kafka import KafkaResource as KafkaResource
from kappa_orch.resources.warehouse import WarehouseResource as WarehouseResource
