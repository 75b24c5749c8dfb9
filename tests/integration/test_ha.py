"""A JobManager lost with HA on (issue 24, point 5), on a second Flink cluster started
as `stack up --ha` starts one: a ZooKeeper beside the JobManager (from flink-dist),
checkpoints and HA metadata in the cluster's folder.

After a JobManager kill -9, `stack up` starts it again and it recovers the live job
itself: the same job id, restored from its own latest checkpoint (at least as new as the
one the registry recorded). `kappa-orch repair` then finds nothing to do and deploys no
second job; the alias ends exact against the oracle. ZooKeeper takes no client that has
not authenticated (any local user could otherwise rewrite the cluster's HA state)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.stack.config import StackConfig
from kappa_orch.stack.jars import flink_home
from tests.integration.clusters import checkpointed, free_port, lose_the_jobmanager, repaired, second_cluster
from tests.integration.platform import isolated_platform, observe_once, own_jobs
from tests.integration.served import expected, versions, wait_exact

pytestmark = pytest.mark.integration


def _unauthenticated_listing(port: int) -> str:
    """What ZooKeeper's own CLI (flink-dist's shaded copy), without credentials, gets
    when it lists the cluster's HA nodes."""
    lib = flink_home() / "lib"
    classpath = ":".join(
        str(jar) for jar in sorted(lib.glob("*.jar")) if "flink-dist" in jar.name or "log4j" in jar.name
    )
    done = subprocess.run(
        [
            "java",
            "-cp",
            classpath,
            "org.apache.flink.shaded.zookeeper3.org.apache.zookeeper.ZooKeeperMain",
            "-server",
            f"127.0.0.1:{port}",
            "ls",
            "/flink/kappa",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.stdout + done.stderr


def test_with_ha_on_a_lost_jobmanager_recovers_its_job_itself_and_repair_leaves_it(
    stack: StackConfig, kafka: KafkaResource, tmp_path: Path
) -> None:
    home, folder = tmp_path / "ha-flink", tmp_path / "platform"
    home.mkdir()
    folder.mkdir()
    with (
        second_cluster(stack, home, ha=True, zookeeper_port=free_port()) as (config, flink),
        isolated_platform(stack, kafka, flink, folder, only=["daily_spend"]) as platform,
    ):
        events, old_job, recorded = checkpointed(platform, kafka, flink, seed=41)
        lose_the_jobmanager(config, platform, kafka, events, seed=42)  # ZooKeeper lives on

        # the new JobManager recovers the job from ZooKeeper; meanwhile the observation
        # sensor's tick reports it as it is (found: a job still INITIALIZING failed the tick)
        observe_once(platform, kafka, flink, None)
        deadline = time.monotonic() + 120
        while flink.job_state(old_job) != "RUNNING":
            assert time.monotonic() < deadline, f"the job came back {flink.job_state(old_job)}"
            time.sleep(2)
        # the same id, restored from its own latest checkpoint (no older than the registry's)
        restored = flink._call("GET", flink.rest_url, f"/jobs/{old_job}/checkpoints")["latest"]["restored"]
        assert f"/{old_job}/chk-" in restored["external_path"], restored
        assert int(restored["id"]) >= int(recorded["checkpoint_id"]), (restored, recorded)

        # repair has nothing to do: no second job for the version
        said = repaired(platform, config)
        assert "redeploying" not in said, said
        assert versions(platform, "daily_spend")[1].flink_job_id == old_job
        assert own_jobs(flink) == {old_job}
        wait_exact(platform, "daily_spend", expected(platform, "daily_spend"))

        # ZooKeeper's door: a client without the Flink processes' credentials is refused
        refused = _unauthenticated_listing(config.zookeeper_port)
        assert "failed to authenticate" in refused, refused[-2000:]
