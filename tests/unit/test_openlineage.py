"""OpenLineage events (issue 14): standard names and facets, the alias's symlink, the
graph read back from the events equal to the Dagster asset graph's, classifications in
the events, transports from configuration, and emission that never holds up or fails a
run (a consumer that is down, slow or rejects; SQL whose lineage cannot be computed).

The consumers here are real HTTP servers on loopback (the standard library's), not
mocks of Kafka, Flink or PostgreSQL."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from openlineage.client.serde import Serde
from openlineage.client.transport import get_default_factory

from kappa_orch import PlatformConfig, build_kappa_definitions
from kappa_orch.errors import SpecError
from kappa_orch.lifecycle.gate import Outcome
from kappa_orch.lineage import emit as lineage_emit
from kappa_orch.lineage import ops as lineage_ops
from kappa_orch.lineage.emit import Emitter, Retry, transport_config
from kappa_orch.lineage.events import Names, columns_of
from kappa_orch.lineage.graph import lineage_graph
from kappa_orch.lineage.static import edges_of, graph_events, read_events, served_by
from kappa_orch.registry.states import LIVE, READY
from kappa_orch.registry.store import VersionRow
from kappa_orch.spec.load import load_pipelines

ASSETS = Path(__file__).resolve().parents[2] / "assets"
PIPELINES = load_pipelines(ASSETS)
BY_NAME = {p.name: p for p in PIPELINES}
URL = "postgresql+psycopg2://kappa:secret@db.internal:6543/warehouse"
NAMES = Names.of(deployment="prod", bootstrap="broker-1:9092,broker-2:9092", warehouse_url=URL)
TVF_SQL = """SELECT merchant, window_start, COUNT(*) AS authorizations,
  SUM(CASE WHEN status = 'declined' THEN 1 ELSE 0 END) AS declines, SUM(amount_cents) AS amount_cents
FROM TABLE(TUMBLE(TABLE authorizations, DESCRIPTOR(event_time), INTERVAL '1' HOUR))
GROUP BY merchant, window_start, window_end"""


def _dicts(events: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(Serde.to_json(e)) for e in events]


def test_the_events_draw_the_edges_of_the_lineage_graph_and_the_dagster_asset_graph() -> None:
    events = _dicts(graph_events(PIPELINES, NAMES))
    graph = lineage_graph(PIPELINES, bootstrap="broker-1:9092,broker-2:9092", warehouse_url=URL)
    # lineage_graph's edges are held equal to the Dagster asset graph's in test_lineage_graph
    assert edges_of(events) == {(e.source, e.target) for e in graph.edges}
    config = PlatformConfig(kafka_bootstrap="broker-1:9092", warehouse_url=URL, openlineage="none")
    asset_graph = build_kappa_definitions(ASSETS, config=config).resolve_asset_graph()
    dagster_edges = sum(len(asset_graph.get(k).parent_keys) for k in asset_graph.get_all_asset_keys())
    assert len(edges_of(events)) == dagster_edges


def test_names_namespaces_and_facets_follow_the_openlineage_spec() -> None:
    [stream, swap, backfill] = _dicts(
        graph_events([BY_NAME["daily_spend"]], NAMES, {"daily_spend": "daily_spend__v2"})
    )
    assert stream["job"]["namespace"] == "kappa-orch.prod" and stream["job"]["name"] == "daily_spend.stream"
    assert stream["inputs"][0]["namespace"] == "kafka://broker-1:9092"
    assert stream["inputs"][0]["name"] == "payments.authorizations"
    assert stream["outputs"][1] == {
        "namespace": "kafka://broker-1:9092",
        "name": "kappa.dead-letters.daily_spend",
        "facets": {},
        "outputFacets": {},
    }
    alias = swap["outputs"][0]
    assert (alias["namespace"], alias["name"]) == (
        "postgres://db.internal:6543",
        "warehouse.analytics.daily_spend",
    )
    assert alias["facets"]["symlinks"]["identifiers"] == [
        {
            "namespace": "postgres://db.internal:6543",
            "name": "warehouse.analytics.daily_spend__v2",
            "type": "TABLE",
        }
    ]
    assert backfill["outputs"][0]["name"] == "warehouse.analytics.daily_spend_daily"
    facets = stream["job"]["facets"]
    assert facets["ownership"]["owners"] == [{"name": BY_NAME["daily_spend"].spec.owner, "type": "OWNER"}]
    assert facets["jobType"]["processingType"] == "STREAMING"
    assert "GROUP BY" in facets["sourceCode"]["sourceCode"] and facets["sql"]["query"]
    version = stream["outputs"][0]["facets"]
    assert [f["name"] for f in version["schema"]["fields"]] == [
        c.name for c in BY_NAME["daily_spend"].spec.target.columns
    ]
    for facet in [*facets.values(), *version.values()]:
        assert facet["_schemaURL"].startswith("https://openlineage.io/spec/facets/")
    assert "secret" not in json.dumps([stream, swap, backfill])


def test_classifications_follow_the_columns_into_the_events() -> None:
    [stream, swap, _] = _dicts(
        graph_events([BY_NAME["daily_spend"]], NAMES, {"daily_spend": "daily_spend__v2"})
    )
    source_tags = stream["inputs"][0]["facets"]["tags"]["tags"]
    assert {"key": "pii", "value": "true", "source": "kappa_orch", "field": "account"} in source_tags
    for dataset in (stream["outputs"][0], swap["outputs"][0]):  # the version table and the alias
        tagged = {(t["field"], t["key"]) for t in dataset["facets"]["tags"]["tags"]}
        assert tagged == {("account", "pii")}


def test_column_lineage_goes_through_window_table_functions() -> None:
    pipeline = BY_NAME["merchant_risk"].model_copy(update={"sql_text": TVF_SQL})
    columns = columns_of(pipeline)
    assert columns.problem is None
    [stream, *_] = _dicts(graph_events([pipeline], NAMES))
    fields = stream["outputs"][0]["facets"]["columnLineage"]["fields"]
    assert [f["field"] for f in fields["window_start"]["inputFields"]] == ["ts"]  # the event time's field
    assert [f["field"] for f in fields["amount_cents"]["inputFields"]] == ["amount_cents"]
    assert [f["field"] for f in fields["declines"]["inputFields"]] == ["status"]
    assert "authorizations" not in fields  # COUNT(*) reads no field


def test_transports_come_from_the_configuration(tmp_path: Path) -> None:
    assert transport_config("none", home=tmp_path) is None
    assert transport_config("console", home=tmp_path) == {"type": "console"}
    assert transport_config("file:openlineage/events.jsonl", home=tmp_path)["log_file_path"] == str(
        tmp_path / "openlineage/events.jsonl"
    )
    http = transport_config("http://marquez:5000", home=tmp_path)
    assert (http["url"], http["endpoint"]) == ("http://marquez:5000", "api/v1/lineage")
    kafka = transport_config("kafka://127.0.0.1:1/openlineage.events", home=tmp_path)
    assert (kafka["topic"], kafka["config"]["bootstrap.servers"]) == ("openlineage.events", "127.0.0.1:1")
    for config in (http, kafka, transport_config("file:/tmp/x.jsonl", home=tmp_path)):
        assert get_default_factory().create(config) is not None  # openlineage-python takes each
    with pytest.raises(SpecError) as refused:
        transport_config("marquez:5000", home=tmp_path)
    assert "KAPPA_OPENLINEAGE" in refused.value.fix
    with pytest.raises(SpecError, match="not a transport"):
        PlatformConfig(openlineage="ftp://x")


class _Consumer(http.server.BaseHTTPRequestHandler):
    status = 200
    hold: threading.Event | None = None
    received: list[dict[str, Any]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.hold is not None:
            self.hold.wait(30)
        self.received.append(json.loads(body))
        self.send_response(self.status)
        self.end_headers()
        self.wfile.write(b'{"error": "rejected by the test consumer"}')

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def consumer(status: int = 200, hold: threading.Event | None = None) -> Iterator[tuple[str, list[Any]]]:
    received: list[dict[str, Any]] = []
    handler = type("Handler", (_Consumer,), {"status": status, "hold": hold, "received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        if hold is not None:
            hold.set()
        server.shutdown()


def _emitter(url: str, warnings: list[str]) -> Emitter:
    transport = get_default_factory().create(transport_config(url, home=Path(".")))
    return Emitter(transport, NAMES, retry=Retry(attempts=2, backoff_s=0.05), warn=warnings.append)


def _swap_events() -> list[Any]:
    return graph_events([BY_NAME["daily_spend"]], NAMES, {"daily_spend": "daily_spend__v2"})


def test_a_consumer_that_answers_gets_every_event() -> None:
    warnings: list[str] = []
    with consumer() as (url, received):
        emitter = _emitter(url, warnings)
        for event in _swap_events():
            emitter.emit(event, "daily_spend")
        assert emitter.flush(10.0)
    assert [e["job"]["name"] for e in received] == [
        "daily_spend.stream",
        "daily_spend.swap",
        "daily_spend.backfill",
    ]
    assert not warnings and emitter.sent == 3


def test_a_slow_consumer_never_holds_up_the_run() -> None:
    warnings: list[str] = []
    hold = threading.Event()
    with consumer(hold=hold) as (url, received):
        emitter = _emitter(url, warnings)
        for event in _swap_events():
            emitter.emit(event, "daily_spend")  # returns while the consumer still holds the first
        assert received == [] and not hold.is_set()
        assert not emitter.flush(0.2)  # the wait at exit is bounded
        hold.set()
        assert emitter.flush(10.0)
    assert len(received) == 3


def test_a_consumer_that_rejects_or_is_down_gets_a_warning_naming_the_pipeline() -> None:
    warnings: list[str] = []
    with consumer(status=400) as (url, received):
        emitter = _emitter(url, warnings)
        emitter.emit(_swap_events()[1], "daily_spend")
        assert emitter.flush(10.0)
    assert len(received) == 1  # rejected: not retried
    [warning] = warnings
    assert "daily_spend" in warning and "HTTP 400" in warning and "the run goes on" in warning
    down: list[str] = []
    emitter = _emitter(url, down)  # the server is gone
    emitter.emit(_swap_events()[1], "daily_spend")
    assert emitter.flush(10.0)
    [warning] = down
    assert "daily_spend" in warning and "after 2 attempt(s)" in warning and emitter.dropped == 1


def _row(version: int, state: str) -> VersionRow:
    return VersionRow(
        pipeline="daily_spend",
        version=version,
        fingerprint="0123456789abcdef",
        physical_table=f"daily_spend__v{version}",
        state=state,
        flink_job_id=f"{version:032x}",
        group_id="g",
        deployed_offsets=None,
        error=None,
    )


@pytest.fixture
def file_emitter(tmp_path: Path) -> Iterator[tuple[Path, list[str], lineage_ops.Lineage]]:
    warnings: list[str] = []
    config = PlatformConfig(
        home=tmp_path, kafka_bootstrap="broker-1:9092", warehouse_url=URL, openlineage="file:events.jsonl"
    )
    openlineage = config.resources()["openlineage"]
    yield tmp_path / "events.jsonl", warnings, openlineage.lineage(warn=warnings.append)


def test_operations_tell_openlineage_and_the_alias_follows_each_swap(
    file_emitter: tuple[Path, list[str], lineage_ops.Lineage],
) -> None:
    path, warnings, lineage = file_emitter
    pipeline = BY_NAME["daily_spend"]
    lineage_emit.cli_command("kappa-orch.rollback")
    lineage.swapped(pipeline, to=_row(1, LIVE), previous=None, reason="first deploy")
    lineage.swapped(pipeline, to=_row(2, LIVE), previous=_row(1, READY), reason="reprocess")
    lineage.swapped(pipeline, to=_row(1, LIVE), previous=_row(2, READY), reason="rollback")
    lineage.retired(pipeline, _row(2, READY))
    failed = Outcome("serving_expectations", False, "1 of 3 expectations failed")
    lineage.checked(pipeline, _row(1, LIVE), [failed])
    lineage.backfill(pipeline, "0b7c6f0e-1111-4222-8333-444455556666", "START", [date(2026, 11, 2)])
    assert lineage.emitter is not None and lineage.emitter.flush(10.0)
    events = read_events(str(path))
    alias = "postgres://db.internal:6543/warehouse.analytics.daily_spend"
    moved = [served_by([e])[alias] for e in events if e["eventType"] == "COMPLETE" and served_by([e])]
    assert [m.rsplit("__", 1)[1] for m in moved] == ["v1", "v2", "v1"]
    assert [e["job"]["name"] for e in events if e["eventType"] == "COMPLETE"][2:] == [
        "daily_spend.rollback",
        "daily_spend.retire",
        "daily_spend.data_quality",
    ]
    retire = next(
        e for e in events if e["job"]["name"] == "daily_spend.retire" and e["eventType"] == "COMPLETE"
    )
    assert retire["outputs"][0]["facets"]["lifecycleStateChange"]["lifecycleStateChange"] == "DROP"
    aborted = next(e for e in events if e["eventType"] == "ABORT")
    assert aborted["job"]["name"] == "daily_spend.stream"
    assert all(
        e["run"]["facets"]["parent"]["job"]["name"] == "cli.kappa-orch.rollback"
        for e in events
        if e["eventType"] != "ABORT"
    )
    checks = next(
        e for e in events if e["job"]["name"] == "daily_spend.data_quality" and e["eventType"] == "COMPLETE"
    )
    [checked] = checks["inputs"]
    assert served_by([{"outputs": [checked]}])[alias].endswith("daily_spend__v1")  # the live table
    assert checked["inputFacets"]["dataQualityAssertions"]["assertions"] == [
        {
            "assertion": "serving_expectations",
            "success": False,
            "severity": "error",
            "description": "1 of 3 expectations failed",
            "params": {},
        }
    ]
    assert events[-1]["run"]["facets"]["nominalTime"]["nominalStartTime"].startswith("2026-11-02T00:00:00")
    assert not warnings


def test_sql_whose_lineage_cannot_be_computed_still_emits_what_is_known(
    file_emitter: tuple[Path, list[str], lineage_ops.Lineage],
) -> None:
    path, warnings, lineage = file_emitter
    sql = TVF_SQL.replace("SUM(amount_cents) AS amount_cents", "RISK_SCORE(amount_cents) AS amount_cents")
    pipeline = BY_NAME["merchant_risk"].model_copy(update={"sql_text": sql})
    lineage.deployed(pipeline, 3, "0123456789abcdef", "merchant_risk__v3", "ab" * 16)
    lineage.deployed(pipeline, 3, "0123456789abcdef", "merchant_risk__v3", "ab" * 16)
    assert lineage.emitter is not None and lineage.emitter.flush(10.0)
    [event, _] = read_events(str(path))
    [warning] = warnings  # once per pipeline and SQL
    assert "merchant_risk" in warning and "RISK_SCORE" in warning
    fields = event["outputs"][0]["facets"]["columnLineage"]["fields"]
    assert [f["field"] for f in fields["merchant"]["inputFields"]] == ["merchant"]
    assert [f["name"] for f in event["outputs"][0]["facets"]["schema"]["fields"]][:2] == [
        "merchant",
        "window_start",
    ]


def test_openlineage_is_a_resource_without_credentials_and_nothing_process_wide(tmp_path: Path) -> None:
    config = PlatformConfig(
        home=tmp_path, kafka_bootstrap="broker-1:9092", warehouse_url=URL, openlineage="file:events.jsonl"
    )
    defs = build_kappa_definitions(ASSETS, config=config)
    resource = (defs.resources or {})["openlineage"]
    assert (resource.transport, resource.deployment) == ("file:events.jsonl", "default")
    assert (resource.postgres_namespace, resource.database) == ("postgres://db.internal:6543", "warehouse")
    assert "secret" not in resource.model_dump_json()  # the warehouse password is not in it
    # building definitions sets nothing up: events go where a run's resource sends them
    assert not (tmp_path / "events.jsonl").exists()
    assert not hasattr(lineage_emit, "configure") and not hasattr(lineage_emit, "current")
    # a definitions file with resources of its own gets the deployment's openlineage too
    given = dict(config.resources(dagster=True))
    given.pop("openlineage")
    own = build_kappa_definitions(ASSETS, config=config, resources=given)
    assert (own.resources or {})["openlineage"].transport == "file:events.jsonl"
