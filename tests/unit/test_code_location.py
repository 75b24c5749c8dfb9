"""`kappa-orch reprocess --wait --definitions <file>` runs the deployment's own code
location (its translator's keys, its resources), not kappa_orch's rebuilt defaults."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kappa_orch.cli.code_location import load_definitions, reprocess_selection
from kappa_orch.errors import OperationRefused

ROOT = Path(__file__).resolve().parents[2]
LOCATION = """
from dagster import AssetKey
from kappa_orch import KappaTranslator, PlatformConfig, build_kappa_definitions


class Serving(KappaTranslator):
    def get_asset_spec(self, asset):
        default = super().get_asset_spec(asset)
        if asset.role == "alias":
            return default.replace_attributes(key=AssetKey(["serving", asset.spec.target.table_name]))
        return default


defs = build_kappa_definitions("specs", config=PlatformConfig(specs="specs"), translator=Serving())
"""


def _location(tmp_path: Path, text: str = LOCATION) -> Path:
    shutil.copytree(ROOT / "assets", tmp_path / "specs", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    (tmp_path / "definitions.py").write_text(text)
    return tmp_path / "definitions.py"


def test_the_run_selects_the_code_locations_own_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = _location(tmp_path)
    selection, op = reprocess_selection(load_definitions(path), "daily_spend", path)
    assert [k.to_user_string() for k in selection] == [
        "analytics/daily_spend__versions",
        "serving/daily_spend",
    ]
    assert op == "analytics__daily_spend__versions"


def test_the_reference_deployment_is_a_code_location() -> None:
    defs = load_definitions(ROOT / "definitions.py")
    selection, _ = reprocess_selection(defs, "merchant_risk", ROOT / "definitions.py")
    keys = [k.to_user_string() for k in selection]
    assert keys == ["features/merchant_risk_hourly__versions", "features/merchant_risk_hourly"]


def test_a_wrong_file_or_pipeline_is_one_clear_refusal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OperationRefused, match="there is no code location file"):
        load_definitions(tmp_path / "missing.py")
    (tmp_path / "empty.py").write_text("x = 1\n")
    with pytest.raises(OperationRefused, match="defines 0 Definitions objects"):
        load_definitions(tmp_path / "empty.py")
    path = _location(tmp_path)
    with pytest.raises(OperationRefused, match="defines no reprocess assets of pipeline 'daily_spnd'"):
        reprocess_selection(load_definitions(path), "daily_spnd", path)
