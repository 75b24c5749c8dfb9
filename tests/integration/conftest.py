"""Integration fixtures: resources pointed at the stack that `kappa-orch stack up` started.

The tests never start or mock services themselves; scripts/test.sh brings the real
stack up first. A missing stack is an error, not a skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.lineage import emit as lineage_emit
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.resources.warehouse import WarehouseResource
from kappa_orch.stack.config import StackConfig
from kappa_orch.stack.manager import status
from tests.openlineage_events import EventFile, event_file

ROOT = Path(__file__).resolve().parents[2]
# The integration tests run in parallel, one pytest-xdist worker per process (scripts/test.sh).
# Each worker is a deployment of its own, so its jobs are named `it-gw0/kappa:...`: a test's
# deploy or repair cancels the unknown jobs of its own deployment only, never another
# worker's. Every platform already has its own database, topics and consumer groups.
DEPLOYMENT = f"it-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"


def _config() -> StackConfig:
    # the stack the environment names (KAPPA_HOME, KAPPA_*_PORT), as the CLI and the benches read it
    return StackConfig.from_environment(os.environ, ROOT / ".kappa")


@pytest.fixture(scope="session", autouse=True)
def deployment() -> Iterator[str]:
    """This worker's deployment, also for the `kappa-orch` commands the tests start."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KAPPA_DEPLOYMENT", DEPLOYMENT)
        yield DEPLOYMENT


@pytest.fixture(scope="session")
def stack() -> StackConfig:
    config = _config()
    down = [s for s in status(config) if s.state != "running"]
    if down:
        pytest.fail(
            "the local stack is not running: "
            + ", ".join(f"{s.name} is {s.state}" for s in down)
            + ". Start it with `kappa-orch stack up` (scripts/test.sh does)."
        )
    return config


@pytest.fixture(scope="session")
def kafka(stack: StackConfig) -> KafkaResource:
    resource: KafkaResource = stack.platform().resources()["kafka"]
    return resource


@pytest.fixture(scope="session")
def flink(stack: StackConfig) -> FlinkResource:
    # no checkpoint folder: tests that restore from checkpoints say so (test_faults)
    return FlinkResource(
        rest_url=stack.flink_rest_url,
        sql_gateway_url=stack.sql_gateway_url,
        tls_ca=str(stack.flink_tls_ca),
        tls_cert=str(stack.flink_tls_cert),
        deployment=DEPLOYMENT,
        plan_dir=stack.platform().plan_dir(),  # jobs start from compiled plans, as the CLI's do
    )


@pytest.fixture(scope="session")
def warehouse(stack: StackConfig) -> Iterator[WarehouseResource]:
    resource: WarehouseResource = stack.platform().resources()["warehouse"]
    yield resource
    resource.dispose()


@pytest.fixture(scope="session")
def openlineage_events(stack: StackConfig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EventFile]:
    """Every OpenLineage event this worker emits, in one file: its own process's and its
    `kappa-orch` commands' (KAPPA_OPENLINEAGE)."""
    path = tmp_path_factory.getbasetemp() / f"openlineage-{DEPLOYMENT}.jsonl"
    events = event_file(path)  # fails at once when the schemas are not found
    with pytest.MonkeyPatch.context() as patch:
        # runs in this process get it as their openlineage resource (platform.resources_for)
        patch.setenv("KAPPA_OPENLINEAGE", f"file:{path}")
        yield events


@pytest.fixture(autouse=True)
def valid_openlineage(openlineage_events: EventFile) -> Iterator[None]:
    """The OpenLineage events a test emitted are valid against the specification's JSON
    schemas (an invalid one fails the test, at its teardown)."""
    openlineage_events.skip_to_end()
    yield
    lineage_emit.flush()
    count, problems = openlineage_events.check_new()
    if problems:
        pytest.fail(
            f"{len(problems)} problem(s) in the {count} OpenLineage event(s) this test emitted "
            f"({openlineage_events.path}):\n" + "\n".join(problems[:20]),
            pytrace=False,
        )
