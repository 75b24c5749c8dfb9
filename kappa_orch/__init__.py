"""kappa_orch: Dagster orchestration for Kappa (streaming-first) data platforms.

The entry point: `defs = build_kappa_definitions("specs")`.
"""

from kappa_orch.config import PlatformConfig as PlatformConfig
from kappa_orch.dagster.assets import alias_key as alias_key
from kappa_orch.dagster.assets import pipeline_assets as pipeline_assets
from kappa_orch.dagster.assets import topic_key as topic_key
from kappa_orch.dagster.assets import version_key as version_key
from kappa_orch.dagster.automation import repair_job as repair_job
from kappa_orch.dagster.automation import repair_sensor as repair_sensor
from kappa_orch.dagster.automation import reprocess_job as reprocess_job
from kappa_orch.dagster.automation import reprocess_sensor as reprocess_sensor
from kappa_orch.dagster.automation import retire_job as retire_job
from kappa_orch.dagster.automation import retire_sensor as retire_sensor
from kappa_orch.dagster.backfill import failed_day_sensor as failed_day_sensor
from kappa_orch.dagster.backfill import late_data_sensor as late_data_sensor
from kappa_orch.dagster.component import KappaPipelinesComponent as KappaPipelinesComponent
from kappa_orch.dagster.definitions import AutomationSettings as AutomationSettings
from kappa_orch.dagster.definitions import build_kappa_definitions as build_kappa_definitions
from kappa_orch.dagster.observe import stream_observation_sensor as stream_observation_sensor
from kappa_orch.dagster.quality import data_quality_checks as data_quality_checks
from kappa_orch.dagster.quality import data_quality_schedule as data_quality_schedule
from kappa_orch.dagster.stream_checks import health_checks as health_checks
from kappa_orch.dagster.translator import KappaAsset as KappaAsset
from kappa_orch.dagster.translator import KappaTranslator as KappaTranslator
from kappa_orch.engine.flink.resource import FlinkResource as FlinkResource
from kappa_orch.engine.protocol import EngineJob as EngineJob
from kappa_orch.errors import ClaimHeld as ClaimHeld
from kappa_orch.errors import FlinkJobError as FlinkJobError
from kappa_orch.errors import GateFailed as GateFailed
from kappa_orch.errors import KappaError as KappaError
from kappa_orch.errors import OperationRefused as OperationRefused
from kappa_orch.errors import ServiceError as ServiceError
from kappa_orch.errors import ServiceUnavailable as ServiceUnavailable
from kappa_orch.errors import SpecError as SpecError
from kappa_orch.errors import StackError as StackError
from kappa_orch.lifecycle.deploy import deploy as deploy
from kappa_orch.plan.decide import DeployPlan as DeployPlan
from kappa_orch.registry.states import VersionState as VersionState
from kappa_orch.resources.kafka import KafkaResource as KafkaResource
from kappa_orch.resources.warehouse import WarehouseResource as WarehouseResource
from kappa_orch.spec.fingerprint import fingerprint as fingerprint
from kappa_orch.spec.load import SpecErrors as SpecErrors
from kappa_orch.spec.load import load_pipelines as load_pipelines
from kappa_orch.spec.model import LoadedPipeline as LoadedPipeline
from kappa_orch.spec.model import PipelineSpec as PipelineSpec
