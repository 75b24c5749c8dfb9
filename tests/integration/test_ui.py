"""The operator's view in a real browser: headless Chromium against `dagster dev` on the
demo's story (daily_spend's previous release live, its fix shipped as a reprocess),
asserting from the rendered pages that the graph shows topic -> versions -> alias, the
alias page the live version and the swap history, and that a stopped Flink job turns
its check red, and that a run whose gate failed shows the failed check, its summary and
its fix with no frame of kappa_orch's code (Dagster prints a two-line stack of its own
framework under every failed step; that is all). Screenshots are kept under
.kappa/ui-screenshots (CI artifacts)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from assets.sample_events import sample_events
from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.registry import store as registry
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.stack.config import StackConfig
from tests.integration.browser import page_text, screenshot, wait_for_page
from tests.integration.platform import (
    ALL_STATUSES,
    KAPPA,
    ORIGINAL,
    Platform,
    cli_env,
    count_declined_too,
    isolated_platform,
    produce_authorizations,
)

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / ".kappa" / "ui-screenshots"
DAGSTER = str(Path(KAPPA).with_name("dagster"))
OTHER_SENSORS = [
    "kappa_reprocess_sensor",
    "kappa_repair_sensor",
    "kappa_retire_sensor",
    "kappa_late_data_sensor",
    "kappa_failed_day_sensor",
]
DEFINITIONS = f"""
import os
from kappa_orch import AutomationSettings, PlatformConfig, build_kappa_definitions

# only the observer runs: the repair sensor would redeploy the job this test stops
defs = build_kappa_definitions(
    os.environ["KAPPA_SPECS"],
    config=PlatformConfig.from_env(os.environ),
    automation=AutomationSettings(observe_interval_s=5, stopped_sensors={OTHER_SENSORS!r}),
)
"""


def cli(env: dict[str, str], *args: str) -> None:
    done = subprocess.run([KAPPA, *args], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def dagster_dev(folder: Path, env: dict[str, str]) -> Iterator[str]:
    """`dagster dev` (webserver and daemon) on the platform; its URL. Stopped with its
    process group (the code server and daemon it started) at the end."""
    (folder / "defs.py").write_text(DEFINITIONS)
    port = free_port()
    log = (folder / "dagster-dev.log").open("w")
    proc = subprocess.Popen(
        [DAGSTER, "dev", "-f", "defs.py", "-h", "127.0.0.1", "-p", str(port)],
        cwd=folder,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, (folder / "dagster-dev.log").read_text()[-3000:]
            try:
                urllib.request.urlopen(f"{url}/server_info", timeout=5)
                break
            except OSError:
                assert time.monotonic() < deadline, "dagster dev did not start in 180s"
                time.sleep(2)
        # the UI's community pop-up would cover the screenshots: mark it seen
        request = urllib.request.Request(
            f"{url}/graphql",
            data=json.dumps({"query": "mutation { setNuxSeen }"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(request, timeout=30)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def the_demos_story(platform: Platform, kafka: KafkaResource, env: dict[str, str]) -> None:
    """daily_spend's previous release (declined counted too) goes live; the fix (the
    reference SQL) is reprocessed through `plan --apply`, a Dagster run: v1 -> v2."""
    produce_authorizations(platform, kafka, sample_events(5_000).authorizations, event_timestamps=True)
    count_declined_too(platform)
    cli(env, "deploy", "daily_spend")
    sql = platform.pipelines()["daily_spend"].sql_text
    platform.set_sql("daily_spend", sql.replace(ALL_STATUSES, ORIGINAL))
    cli(env, "plan", "--apply")


def a_failed_gate(platform: Platform, env: dict[str, str], dagster_home: Path) -> str:
    """The next release negates the spend: its candidate fails the spec's expectation
    (spend_cents >= 0), so `reprocess --wait` exits 1 without a swap. The run's id."""
    sql = platform.pipelines()["daily_spend"].sql_text
    platform.set_sql("daily_spend", sql.replace("SUM(amount_cents) AS", "-SUM(amount_cents) AS"))
    done = subprocess.run(
        [KAPPA, "reprocess", "daily_spend", "--wait"], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 1 and "check expectations failed" in done.stderr, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    instance = DagsterInstance.from_config(str(dagster_home))
    [run] = instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.FAILURE]))
    return run.run_id


def test_the_ui_shows_the_graph_the_swaps_and_a_stopped_job(
    stack: StackConfig, kafka: KafkaResource, flink: FlinkResource, tmp_path: Path
) -> None:
    with isolated_platform(stack, kafka, flink, tmp_path, only=["daily_spend"]) as platform:
        env = cli_env(platform, stack, DAGSTER_HOME=str(tmp_path / "dagster"))
        the_demos_story(platform, kafka, env)
        failed_run = a_failed_gate(platform, env, tmp_path / "dagster")
        with registry.session(platform.warehouse) as conn:
            live = {r.version: r for r in registry.pipeline_versions(conn, "daily_spend")}
        with dagster_dev(tmp_path, env) as ui:
            alias = f"{ui}/assets/analytics/daily_spend"
            versions = (
                f"{ui}/assets/analytics/daily_spend__versions?view=checks&checkDetail=flink_job_running"
            )
            lineage = f"{alias}?view=lineage&lineageScope=upstream&lineageDepth=3"
            # the observer's first tick reports the alias: live version and swap history
            alias_page = wait_for_page(alias, lambda text: "swap_history" in text and "reprocess" in text)
            screenshot(alias, SHOTS / "alias.png", height=2400)
            graph = page_text(lineage)
            screenshot(lineage, SHOTS / "lineage.png")
            healthy = wait_for_page(versions, lambda text: "every job alive" in text)
            # someone stops the live job in the Flink UI: the next tick turns the check red
            flink.cancel(live[2].flink_job_id or "")
            failed = wait_for_page(versions, lambda text: "is CANCELED" in text)
            screenshot(versions, SHOTS / "checks-failed.png")
            run_page = f"{ui}/runs/{failed_run}"
            gate = wait_for_page(run_page, lambda text: "blocking asset check failed" in text)
            screenshot(run_page, SHOTS / "gate-failed-run.png", height=2400)

    # the graph: the topic feeds the versions, which feed the alias
    for node in ("authorizations", "daily_spend__versions", "daily_spend"):
        assert node in graph, graph[:3000]
    # the alias page: the live version, its table and the swaps, newest first
    assert "live_version" in alias_page and "daily_spend__v2" in alias_page, alias_page[:3000]
    assert (
        "v1 -> v2 (reprocess" in alias_page and "swap_history" in alias_page and "last_swap_run" in alias_page
    )
    assert "flink_job_running" in healthy and "Passed" in healthy and "every job alive" in healthy
    # the failed check names the version and the job, with the fix
    assert "Failed" in failed and "v2 is live but its Flink job" in failed, failed[:3000]
    assert "kappa-orch repair daily_spend" in failed
    # the failed gate's run: which check failed, why, and the fix; no kappa_orch frame
    assert "blocking asset check failed" in gate and "expectations" in gate, gate[:3000]
    assert "kappa-orch reprocess daily_spend --wait --accept expectations" in gate, gate[:3000]
    assert "kappa_orch" not in gate and "Traceback" not in gate, gate[:3000]
