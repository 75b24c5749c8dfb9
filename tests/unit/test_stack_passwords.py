"""The local stack's roles have random per-stack passwords, kept in files only the
stack's owner reads (found: `kappa`/`kappa`, `kappa_reader`/`kappa-reader` and
`kappa_sink`/`kappa-sink` were the same on every stack)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from kappa_orch.errors import StackError
from kappa_orch.stack.config import StackConfig
from kappa_orch.stack.warehouse_roles import role_password

ROLES = ("orchestrator", "reader", "sink")


def test_each_role_gets_its_own_random_password_readable_by_the_owner_only(tmp_path: Path) -> None:
    config = StackConfig(home=tmp_path)
    passwords = {role: role_password(config, role) for role in ROLES}
    assert len(set(passwords.values())) == 3
    assert all(len(p) >= 32 for p in passwords.values())
    assert not {"kappa", "kappa-reader", "kappa-sink"} & set(passwords.values())
    for role in ROLES:
        path = config.password_file(role)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert role_password(config, role) == passwords[role]  # made once, then kept
    assert stat.S_IMODE(config.password_file("reader").parent.stat().st_mode) == 0o700
    # another stack, other passwords
    other = StackConfig(home=tmp_path / "other")
    assert role_password(other, "orchestrator") != passwords["orchestrator"]
    # what `stack env` prints carries them
    platform = config.platform()
    assert f"kappa:{passwords['orchestrator']}@" in platform.warehouse_url
    assert f"kappa_reader:{passwords['reader']}@" in str(platform.warehouse_reader_url)
    assert f"kappa_sink:{passwords['sink']}@" in str(platform.warehouse_sink_url)


def test_a_team_sets_its_own_password_in_the_file(tmp_path: Path) -> None:
    config = StackConfig(home=tmp_path)
    path = config.password_file("reader")
    path.parent.mkdir(parents=True)
    path.write_text("Our-own_password.1\n")
    path.chmod(0o644)
    assert role_password(config, "reader") == "Our-own_password.1"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # tightened
    path.write_text("p@ss word\n")
    with pytest.raises(StackError, match="escaped") as refused:
        role_password(config, "reader")
    assert str(path) in refused.value.fix
