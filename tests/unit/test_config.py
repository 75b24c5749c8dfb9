"""PlatformConfig: one place for every setting, one order of precedence."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import EnvVar

from kappa_orch import PlatformConfig
from kappa_orch.config import VARIABLES, local_url
from kappa_orch.errors import SpecError


def test_flags_win_over_variables_which_win_over_defaults() -> None:
    config = PlatformConfig.from_env(
        {"KAPPA_KAFKA_BOOTSTRAP": "env:9092", "KAPPA_FLINK_REST_URL": "http://env:8081"},
        flags={"kafka_bootstrap": "flag:9092", "sql_gateway_url": None},
        defaults={"flink_rest_url": "http://default:8081", "sql_gateway_url": "http://default:8083"},
    )
    assert config.kafka_bootstrap == "flag:9092"
    assert config.flink_rest_url == "http://env:8081"
    assert config.sql_gateway_url == "http://default:8083"
    assert config.warehouse_url == local_url(config.home)
    assert config.from_environment == {"flink_rest_url"}


def test_every_setting_has_one_variable() -> None:
    fields = set(PlatformConfig.model_fields) - {"from_environment"}
    assert fields == set(VARIABLES)
    assert all(v.startswith("KAPPA_") for v in VARIABLES.values())


def test_secrets_from_variables_stay_env_vars_in_dagster_and_out_of_repr() -> None:
    url = "postgresql+psycopg2://me:s3cret@db:5432/w"
    config = PlatformConfig.from_env({"KAPPA_WAREHOUSE_URL": url})
    assert "s3cret" not in repr(config)
    assert config.resources(dagster=True)["warehouse"].url == EnvVar("KAPPA_WAREHOUSE_URL")
    assert config.resources()["warehouse"].url == url
    # another warehouse: no local roles are guessed
    assert config.role_urls() == {}
    assert PlatformConfig().role_urls()["reader_url"] == local_url(Path(".kappa"), "reader")


def test_the_local_stack_s_roles_carry_its_own_passwords(tmp_path: Path) -> None:
    # no fixed password: the URLs of the local stack's roles read the files `stack up` made
    never_started = PlatformConfig(home=tmp_path)
    assert never_started.warehouse_url == "postgresql+psycopg2://kappa@127.0.0.1:5432/warehouse"
    folder = tmp_path / "secrets"
    folder.mkdir(parents=True)
    for user, password in (("kappa", "p-1"), ("kappa_reader", "p-2"), ("kappa_sink", "p-3")):
        (folder / user).write_text(password + "\n")
    config = PlatformConfig(home=tmp_path)
    assert config.warehouse_url == "postgresql+psycopg2://kappa:p-1@127.0.0.1:5432/warehouse"
    assert config.role_urls() == {
        "reader_url": "postgresql+psycopg2://kappa_reader:p-2@127.0.0.1:5432/warehouse",
        "sink_url": "postgresql+psycopg2://kappa_sink:p-3@127.0.0.1:5432/warehouse",
    }
    assert "p-1" not in repr(config)


def test_an_unknown_setting_is_refused() -> None:
    with pytest.raises(SpecError, match="unknown platform setting"):
        PlatformConfig.from_env({}, flags={"kafka": "x"})


def test_the_environment_of_a_child_process_round_trips(tmp_path: Path) -> None:
    config = PlatformConfig.from_env({}, flags={"specs": tmp_path, "git_commit": "abc"})
    again = PlatformConfig.from_env(config.environment())
    assert again.model_dump(exclude={"from_environment"}) == config.model_dump(exclude={"from_environment"})


def test_no_setting_names_a_checkpoint_folder() -> None:
    # a lost job resumes from the path Flink's REST API (or the registry) names; the
    # orchestrator never reads the checkpoint storage, so it is not configured here
    assert not [name for name in PlatformConfig.model_fields if "checkpoint" in name]
    assert not [v for v in VARIABLES.values() if "CHECKPOINT" in v]


def test_stack_env_describes_a_stack_on_other_ports_completely(tmp_path: Path) -> None:
    # what `eval "$(kappa-orch stack env)"` exports is the whole platform of that stack
    import shlex

    from click.testing import CliRunner

    from kappa_orch.cli import main
    from kappa_orch.stack.config import StackConfig

    flags = [
        "--home",
        str(tmp_path),
        "--kafka-port",
        "19092",
        "--postgres-port",
        "15432",
        "--flink-rest-port",
        "18081",
    ]
    out = CliRunner().invoke(main, ["stack", *flags, "env"]).output
    exported = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in out.splitlines())
    read = PlatformConfig.from_env(exported)
    stack = StackConfig(home=tmp_path, kafka_port=19092, postgres_port=15432, flink_rest_port=18081)
    assert read.kafka_bootstrap == "127.0.0.1:19092" and read.flink_rest_url == "https://127.0.0.1:18081"
    # the Flink cluster's certificate and the client's (mutual TLS): the stack's own files
    assert read.flink_tls_ca == tmp_path / "secrets" / "flink-ca.pem"
    assert read.flink_tls_cert == tmp_path / "secrets" / "flink-client.pem"
    assert read.warehouse_url == stack.warehouse_url and read.warehouse_sink_url == stack.warehouse_sink_url
    assert read.home == tmp_path


def test_dead_letter_topics_get_the_deployments_retention() -> None:
    # found: dead-letter topics kept the broker's default (7 days)
    assert PlatformConfig().resources()["kafka"].dead_letter_retention_ms == 30 * 86_400_000
    forever = PlatformConfig.from_env({"KAPPA_DEAD_LETTER_RETENTION": "forever"})
    assert forever.resources()["kafka"].dead_letter_retention_ms == -1
    with pytest.raises(ValueError, match="dead_letter_retention"):
        PlatformConfig.from_env({"KAPPA_DEAD_LETTER_RETENTION": "a while"})


def test_job_names_carry_the_deployment_name() -> None:
    # found: two deployments on one Flink cluster had jobs of the same names
    flink = PlatformConfig.from_env({"KAPPA_DEPLOYMENT": "staging"}).resources()["flink"]
    assert flink.job_name("kappa:daily_spend:v3") == "staging/kappa:daily_spend:v3"
    assert PlatformConfig().resources()["flink"].job_name("kappa:x:v1") == "default/kappa:x:v1"
    with pytest.raises(ValueError, match="deployment"):
        PlatformConfig.from_env({"KAPPA_DEPLOYMENT": "Prod West!"})


def test_compiled_plans_go_through_the_local_stacks_folder_unless_told_otherwise(tmp_path: Path) -> None:
    from kappa_orch.config import PLANS_DIR, PlatformConfig

    config = PlatformConfig(home=tmp_path)
    assert config.plan_dir() is None  # no stack started here: jobs run as statement sets
    (tmp_path / PLANS_DIR).mkdir(parents=True)
    assert config.plan_dir() == str((tmp_path / PLANS_DIR).resolve())
    assert config.resources()["flink"].plan_dir == config.plan_dir()
    # a SQL Gateway elsewhere cannot read this machine's folder
    remote = PlatformConfig(home=tmp_path, sql_gateway_url="https://flink-gateway.data:8083")
    assert remote.plan_dir() is None
    assert PlatformConfig(home=tmp_path, flink_plan_dir="none").plan_dir() is None
    assert (
        PlatformConfig(home=tmp_path, flink_plan_dir="file:///shared/plans").plan_dir()
        == "file:///shared/plans"
    )
    env = PlatformConfig.from_env({"KAPPA_FLINK_PLAN_DIR": "/shared/plans", "KAPPA_HOME": str(tmp_path)})
    assert env.plan_dir() == "/shared/plans"
