"""The engine seam: today's session-cluster implementation meets the protocol the core uses."""

from __future__ import annotations

import ast
from pathlib import Path

from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.engine.protocol import StreamEngine

CORE = [
    "lifecycle/batch",
    "lifecycle/catch_up",
    "lifecycle/deploy",
    "plan/decide",
    "lifecycle/repair",
    "lifecycle/reprocess",
    "lifecycle/status",
]
LIBRARY = Path(__file__).resolve().parents[2] / "kappa_orch"


def test_the_session_cluster_is_a_stream_engine() -> None:
    assert isinstance(
        FlinkResource(rest_url="http://127.0.0.1:1", sql_gateway_url="http://127.0.0.1:1"), StreamEngine
    )


def test_the_core_asks_the_engine_only_what_the_protocol_offers() -> None:
    offered = {name for name in dir(StreamEngine) if not name.startswith("_")}
    asked = set()
    for module in CORE:
        for node in ast.walk(ast.parse((LIBRARY / f"{module}.py").read_text())):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "flink"
            ):
                asked.add(node.attr)
    assert asked <= offered, asked - offered
