"""Least privilege and secrets, on the real stack.

Found: the local stack's `kappa` role was a PostgreSQL superuser (an expectation ran
`pg_read_file('/etc/hostname')` during the gate), the socket trusted every local user,
the jobs' counters lived in the registry, and a quote in a password ended its literal in
the Flink DDL."""

from __future__ import annotations

import json
import os
import pwd
import stat
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from assets.sample_events import sample_events
from kappa_orch.engine.flink.resource import FlinkResource
from kappa_orch.registry import store as registry
from kappa_orch.resources.kafka import KafkaResource
from kappa_orch.resources.warehouse import job_password
from kappa_orch.stack.config import LOOPBACK, StackConfig
from kappa_orch.stack.flink import FlinkService
from kappa_orch.stack.flink_security import FLINK_ACCOUNT
from kappa_orch.stack.postgres import PostgresService
from tests.integration.platform import (
    KAPPA,
    Platform,
    cli_env,
    count_declined_too,
    isolated_platform,
    own_jobs,
    produce_authorizations,
    run_reprocess,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def platform(
    stack: StackConfig, kafka: KafkaResource, flink: FlinkResource, tmp_path: Path
) -> Iterator[Platform]:
    with isolated_platform(stack, kafka, flink, tmp_path, only=["daily_spend"]) as platform:
        produce_authorizations(
            platform, kafka, sample_events(5_000, step_ms=60_000).authorizations, event_timestamps=False
        )
        yield platform


def jdbc_users(stack: StackConfig, database: str) -> set[str]:
    """The roles of the JDBC connections (Flink's sinks) to the database, as the admin sees them."""
    admin = create_engine(PostgresService(stack).admin_url(database))
    try:
        with admin.connect() as conn:
            return set(
                conn.execute(
                    text(
                        "SELECT usename FROM pg_stat_activity "
                        "WHERE datname = :d AND application_name LIKE 'PostgreSQL JDBC%'"
                    ),
                    {"d": database},
                ).scalars()
            )
    finally:
        admin.dispose()


def _rest(stack: StackConfig, path: str) -> str:
    """What Flink's REST API answers kappa_orch (which presents the stack's certificate)."""
    tls = {"verify": str(stack.flink_tls_ca), "cert": str(stack.flink_tls_cert)}
    return requests.get(f"{stack.flink_rest_url}{path}", timeout=10, **tls).text  # type: ignore[arg-type]


def refused(url: str, sql: str) -> str:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(sql))
    except DBAPIError as exc:
        return str(exc.orig)
    finally:
        engine.dispose()
    raise AssertionError(f"{sql!r} was allowed")


def test_no_role_is_a_superuser_and_each_can_do_only_its_part(
    platform: Platform, stack: StackConfig, kafka: KafkaResource
) -> None:
    done = subprocess.run(
        [KAPPA, "reprocess", "daily_spend", "--wait"],
        env=cli_env(platform, stack),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    database = platform.warehouse_url.rsplit("/", 1)[1]
    admin = create_engine(PostgresService(stack).admin_url(database))
    with admin.connect() as conn:
        supers = dict(
            conn.execute(
                text(
                    "SELECT rolname, rolsuper OR rolcreaterole OR rolcreatedb "
                    "FROM pg_roles WHERE rolname = ANY(:r)"
                ),
                {"r": [stack.warehouse_user, stack.warehouse_reader_user, stack.warehouse_sink_user]},
            ).all()
        )
    admin.dispose()
    writers = jdbc_users(stack, database)  # the Flink job's JDBC connections
    assert supers == {
        stack.warehouse_user: False,
        stack.warehouse_reader_user: False,
        stack.warehouse_sink_user: False,
    }
    with platform.warehouse.begin() as conn:
        job_role = platform.warehouse.job_role(conn, "daily_spend:v1")
    assert writers == {job_role}  # the version's own role, made for its job

    reader = stack.warehouse_url_of(database, "reader")
    assert "permission denied" in refused(reader, "SELECT pg_read_file('/etc/hostname')")
    assert "read-only transaction" in refused(reader, "CREATE TABLE analytics.x (a int)")
    assert "read-only transaction" in refused(reader, "DELETE FROM analytics.daily_spend__v1")
    with create_engine(reader).connect() as conn:  # the gate's checks read every version
        assert conn.execute(text("SELECT count(*) FROM analytics.daily_spend__v1")).scalar()
        assert conn.execute(text("SELECT count(*) FROM analytics.daily_spend")).scalar()  # the alias
    # found: the reader read the whole registry, every spec's SQL included
    for table in ("kappa_registry.versions", "kappa_registry.aliases", "kappa_counts.input_counts"):
        assert "permission denied for schema" in refused(reader, f"SELECT * FROM {table}")

    # the job's role, tried from the admin's session (SET ROLE): its own table and its own
    # input-count rows, nothing else
    as_job = f"SET ROLE {job_role}; "
    admin_url = PostgresService(stack).admin_url(database)
    assert "permission denied" in refused(
        admin_url, as_job + "UPDATE kappa_registry.aliases SET live_version = 7"
    )
    assert "permission denied" in refused(admin_url, as_job + "SELECT * FROM kappa_registry.versions")
    assert "permission denied" in refused(admin_url, as_job + "CREATE TABLE analytics.x (a int)")
    assert "permission denied" in refused(admin_url, as_job + "SELECT pg_read_file('/etc/hostname')")
    forged = (
        "INSERT INTO kappa_counts.input_counts (pipeline, version, source_topic, kafka_partition, records, "
        "parsed, dead_lettered, first_offset, last_offset) VALUES "
        "('{p}', {v}, 't', 0, 1, 1, 0, 0, 0) ON CONFLICT DO NOTHING"
    )
    assert "row-level security" in refused(admin_url, as_job + forged.format(p="other_pipeline", v=1))
    assert "row-level security" in refused(admin_url, as_job + forged.format(p="daily_spend", v=2))
    with platform.warehouse.begin() as conn:
        counts = registry.input_counts_of(conn, "daily_spend", 1)
    assert counts and sum(c.records for c in counts) == 5_000  # written by the job, outside the registry

    # a retired version's role goes with it
    count_declined_too(platform)
    for args in (["reprocess", "daily_spend", "--wait"], ["retire", "daily_spend", "1"]):
        done = subprocess.run(
            [KAPPA, *args], env=cli_env(platform, stack), capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stdout + done.stderr
    with create_engine(admin_url).connect() as conn:
        assert (
            conn.execute(text("SELECT count(*) FROM pg_roles WHERE rolname = :r"), {"r": job_role}).scalar()
            == 0
        )


def test_the_socket_asks_for_a_password_and_is_the_servers_alone(stack: StackConfig) -> None:
    import psycopg2

    postgres = PostgresService(stack)
    socket_dir = postgres._socket_dir()
    socket = next(socket_dir.glob(".s.PGSQL.*"))
    assert stat.S_IMODE(socket.stat().st_mode) & 0o077 == 0
    with pytest.raises(psycopg2.OperationalError, match="password"):
        psycopg2.connect(
            host=str(socket_dir), port=stack.postgres_port, user=stack.warehouse_user, dbname="postgres"
        )


def _login(stack: StackConfig, user: str, password: str) -> None:
    import psycopg2

    psycopg2.connect(
        host=LOOPBACK,
        port=stack.postgres_port,
        user=user,
        password=password,
        dbname=stack.warehouse_db,
        connect_timeout=5,
    ).close()


def _stack_cli(stack: StackConfig, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KAPPA_HOME": str(stack.home), "KAPPA_POSTGRES_PORT": str(stack.postgres_port)}
    return subprocess.run([KAPPA, "stack", *args], env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.disruptive  # changes the reader's password of the shared stack
def test_no_role_has_a_fixed_password(stack: StackConfig) -> None:
    import psycopg2

    # the passwords every stack had before are refused
    for user, fixed in (("kappa", "kappa"), ("kappa_reader", "kappa-reader"), ("kappa_sink", "kappa-sink")):
        with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
            _login(stack, user, fixed)
    # each role's own is in a file only the stack's owner reads: not an unprivileged user
    files = {role: stack.password_file(role) for role in ("orchestrator", "reader", "sink")}
    assert stat.S_IMODE(files["reader"].parent.stat().st_mode) == 0o700
    for role, path in files.items():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.stat().st_uid == os.geteuid()
        as_nobody = subprocess.run(["cat", str(path)], user="nobody", capture_output=True, text=True)
        assert as_nobody.returncode != 0 and "Permission denied" in as_nobody.stderr, role
    passwords = {role: path.read_text().strip() for role, path in files.items()}
    assert len(set(passwords.values())) == 3
    # `stack env` prints them for eval
    printed = _stack_cli(stack, "env").stdout
    for role, password in passwords.items():
        assert f"{stack.warehouse_url_of(stack.warehouse_db, role)}" in printed, role
        assert password in printed
    # a team sets its own: the file, then `stack up`; the old password stops working
    try:
        files["reader"].write_text("our-own.reader_password\n")
        assert _stack_cli(stack, "up").returncode == 0
        _login(stack, "kappa_reader", "our-own.reader_password")
        with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
            _login(stack, "kappa_reader", passwords["reader"])
    finally:
        files["reader"].write_text(passwords["reader"] + "\n")
        assert _stack_cli(stack, "up").returncode == 0
    _login(stack, "kappa_reader", passwords["reader"])


def test_the_passwords_stay_secret(
    platform: Platform, stack: StackConfig, flink: FlinkResource, kafka: KafkaResource, tmp_path: Path
) -> None:
    # recognisable passwords for the orchestrator's and the sinks' roles (with a quote:
    # values in Flink DDL are escaped); the orchestrator's login acts as the stack's `kappa`
    secrets = {name: f"Secret'{name}-{uuid.uuid4().hex}" for name in ("orchestrator", "sink")}
    roles = {name: f"{name}_{uuid.uuid4().hex[:8]}" for name in secrets}
    database = platform.warehouse_url.rsplit("/", 1)[1]
    admin = create_engine(PostgresService(stack).admin_url(database), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for name, role in roles.items():
            conn.execute(text(f"CREATE ROLE {role} LOGIN PASSWORD :p"), {"p": secrets[name]})
            conn.execute(text(f'GRANT CONNECT ON DATABASE "{database}" TO {role}'))
        conn.execute(text(f"GRANT {stack.warehouse_user} TO {roles['orchestrator']}"))
        conn.execute(text(f"ALTER ROLE {roles['orchestrator']} SET role = '{stack.warehouse_user}'"))
    admin.dispose()
    from urllib.parse import quote

    def url(name: str) -> str:
        password = quote(secrets[name], safe="")
        return f"postgresql+psycopg2://{roles[name]}:{password}@{LOOPBACK}:{stack.postgres_port}/{database}"

    home = tmp_path / "dagster"
    home.mkdir()
    env = cli_env(
        platform,
        stack,
        KAPPA_WAREHOUSE_URL=url("orchestrator"),
        KAPPA_WAREHOUSE_SINK_URL=url("sink"),
        DAGSTER_HOME=str(home),
    )
    outputs = []
    for args in (["reprocess", "daily_spend", "--wait"], ["status", "--json"], ["plan"], ["status"]):
        done = subprocess.run([KAPPA, *args], env=env, capture_output=True, text=True, timeout=600)
        outputs.append(done.stdout + done.stderr)
        assert done.returncode == 0, outputs[-1]
        if args[0] == "reprocess":
            count_declined_too(platform)
            again = subprocess.run([KAPPA, *args], env=env, capture_output=True, text=True, timeout=600)
            outputs.append(again.stdout + again.stderr)
            assert again.returncode == 0, outputs[-1]
    assert json.loads(outputs[2])  # status --json is JSON
    with platform.warehouse.begin() as conn:
        jobs = [r.flink_job_id for r in registry.all_versions(conn) if r.flink_job_id]
    assert len(jobs) == 2
    # what Flink's REST API returns for the jobs (plan, config, exceptions) and its cluster config
    for job in jobs:
        for path in ("", "/config", "/exceptions", "/plan", "/checkpoints/config"):
            outputs.append(_rest(stack, f"/jobs/{job}{path}"))
    outputs.append(_rest(stack, "/jobmanager/config"))
    needles = [v for secret in secrets.values() for v in (secret, quote(secret, safe=""))]
    leaks = [i for i, output in enumerate(outputs) if any(n in output for n in needles)]
    assert leaks == [], [outputs[i][:300] for i in leaks]
    # the logs of every service and the Dagster instance's run and event storage
    folders = (stack.logs_dir, stack.flink_dir / "log", home)
    files = [p for folder in folders if folder.exists() for p in folder.rglob("*") if p.is_file()]
    assert any(p.suffix == ".db" for p in files)  # the runs were recorded
    leaked = [str(p) for p in files if any(n.encode() in p.read_bytes() for n in needles)]
    assert leaked == []
    assert os.environ.get("KAPPA_DEBUG") is None


SUBMITTED: list[str] = []


class RecordingFlink(FlinkResource):
    """The real FlinkResource, keeping the SQL text of every job it submits."""

    def submit_sql(self, *, setup: Any, inserts: Any, **options: Any) -> str:
        SUBMITTED.extend([*setup, *inserts])
        return super().submit_sql(setup=setup, inserts=inserts, **options)


def test_a_job_roles_password_is_in_no_sql_text(
    platform: Platform, stack: StackConfig, kafka: KafkaResource, flink: FlinkResource
) -> None:
    # issue 15, point 4: the job's SQL named its role's password ('password' = '...'); now
    # the sink derives it from the job key in Flink's environment (JobPassword)
    SUBMITTED.clear()
    recording = RecordingFlink(
        rest_url=flink.rest_url,
        sql_gateway_url=flink.sql_gateway_url,
        tls_ca=flink.tls_ca,
        tls_cert=flink.tls_cert,
    )
    assert run_reprocess(platform, platform.pipelines()["daily_spend"], kafka, recording).success
    with platform.warehouse.begin() as conn:
        role = platform.warehouse.job_role(conn, "daily_spend:v1")
        rows = conn.execute(text("SELECT count(*) FROM analytics.daily_spend__v1")).scalar()
    assert rows  # written by the job, logged in as its role
    password = job_password(stack.job_key_file.read_text().strip(), role)
    ddl = "\n".join(SUBMITTED)
    assert "CREATE TEMPORARY TABLE" in ddl and f"user={role}&authenticationPluginClassName=" in ddl
    assert "'password'" not in ddl and password not in ddl
    # the job's connections are its role's, authenticated with the derived password
    assert jdbc_users(stack, platform.warehouse_url.rsplit("/", 1)[1]) == {role}
    # and neither Flink's logs nor its REST answers hold it
    files = [p for p in (stack.flink_dir / "log").rglob("*") if p.is_file()]
    files += [p for p in stack.logs_dir.rglob("flink-*") if p.is_file()]
    assert [str(p) for p in files if password.encode() in p.read_bytes()] == []
    with platform.warehouse.begin() as conn:
        [job] = [r.flink_job_id for r in registry.all_versions(conn)]
    for path in ("", "/config", "/plan"):
        assert password not in _rest(stack, f"/jobs/{job}{path}")


def test_a_statement_hidden_behind_nested_comments_is_never_submitted(
    platform: Platform, kafka: KafkaResource, flink: FlinkResource, stack: StackConfig
) -> None:
    # found: sqlglot nests /* */ comments, Flink does not: this SELECT was refused by
    # `validate` but deployed by `deploy` (rc 0, gate passed), with extra rows in the
    # alias and a forged event written into the source topic
    sql = (platform.specs / "daily_spend.sql").read_text().rstrip().rstrip(";")
    hidden = (
        f"{sql}\n/* /* */ ;\nINSERT INTO `kafka_authorizations` (`payload_bytes`) "
        "VALUES (CAST('{\"forged\": true}' AS BYTES)) -- */\n"
    )
    platform.set_sql("daily_spend", hidden)
    topic = platform.topic("payments.authorizations")
    before = kafka.end_offsets(topic)
    jobs_before = own_jobs(flink)
    done = subprocess.run(
        [KAPPA, "deploy", "daily_spend"], env=cli_env(platform, stack), capture_output=True, text=True
    )
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "the SQL hides statements writing to ['kafka_authorizations']; nothing was submitted" in out
    assert "Traceback" not in out
    assert kafka.end_offsets(topic) == before  # no forged event
    assert own_jobs(flink) == jobs_before  # no job submitted
    with platform.warehouse.begin() as conn:
        [row] = registry.pipeline_versions(conn, "daily_spend")
    assert row.state == "failed" and "hides statements" in (row.error or "")


def _knock(url: str) -> tuple[int, str]:
    """POST to `url` as the unprivileged user nobody (certificates not checked, redirects
    followed); curl's exit code and the last HTTP status it got (000: none)."""
    post = ["-X", "POST", "-H", "Content-Type: application/json", "-d", "{}"]
    knocked = subprocess.run(
        ["curl", "-sSL", "-k", *post, "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}", url],
        user="nobody",
        capture_output=True,
        text=True,
        timeout=60,
    )
    return knocked.returncode, knocked.stdout.strip()


def _through_flink(flink: FlinkResource, name: str, source: str, sink: str) -> tuple[str, str]:
    """Run `INSERT INTO sink SELECT * FROM source` as a batch job that fails at once (no
    restarts); its final state and its failure."""
    job = flink.submit_sql(
        setup=[source, sink],
        inserts=["INSERT INTO probe_sink SELECT * FROM probe_source"],
        job_name=f"security-probe:{name}",
        configuration={"execution.runtime-mode": "batch", "restart-strategy.type": "none"},
    )
    deadline = time.monotonic() + 120
    while (state := flink.job_state(job)) not in ("FINISHED", "FAILED", "CANCELED"):
        assert time.monotonic() < deadline, f"the probe job {job} is still {state}"
        time.sleep(1)
    failure = json.dumps(flink._call("GET", flink.rest_url, f"/jobs/{job}/exceptions"))
    return state, failure


def test_the_engine_is_no_open_door(stack: StackConfig, flink: FlinkResource) -> None:
    """Found: Flink's REST API and SQL Gateway took any request from any local user, and
    Flink ran as root: a `filesystem` table over the admin's password file read it, and a
    job wrote a root-owned file anywhere."""
    # the Flink processes run under their own unprivileged account
    account = pwd.getpwnam(FLINK_ACCOUNT)
    for process, pid in FlinkService(stack).live_pids().items():
        assert os.stat(f"/proc/{pid}").st_uid == account.pw_uid != 0, process
    # an unprivileged local user gets no answer from either endpoint, over https or http
    urls = [f"{stack.flink_rest_url}/jars/upload", f"{stack.sql_gateway_url}/v1/sessions"]
    urls += [url.replace("https://", "http://") for url in urls]
    # (plain http is only redirected to https, where the handshake fails: curl's 35)
    knocked = {url: _knock(url) for url in urls}
    assert knocked == {url: (35, "000" if url.startswith("https") else "301") for url in urls}
    # nor reads the certificate, the stores or the cluster's configuration
    for path in (
        stack.flink_tls_cert,
        stack.flink_dir / "tls" / "keystore.p12",
        stack.flink_dir / "conf" / "config.yaml",
    ):
        read = subprocess.run(["cat", str(path)], user="nobody", capture_output=True, text=True)
        assert read.returncode != 0 and "Permission denied" in read.stderr, path
    # and Flink itself, asked by a client it accepts, reads no secret and writes nothing
    # outside its own folders
    secret = stack.postgres_dir / "admin-password"
    assert secret.is_file()  # (so "does not exist or insufficient permissions" means the latter)
    raw = "WITH ('connector' = 'filesystem', 'format' = 'raw', 'path' = '{}')"
    state, failure = _through_flink(
        flink,
        "read",
        f"CREATE TABLE probe_source (line STRING) {raw.format(secret.as_uri())}",
        "CREATE TABLE probe_sink (line STRING) WITH ('connector' = 'blackhole')",
    )
    # (a file it may not read, or a folder it may not enter: either way, access denied)
    denied = ("Permission denied", "AccessDenied", "insufficient permissions")
    assert state == "FAILED" and any(marker in failure for marker in denied), failure[-3000:]
    planted = stack.home / "secrets" / "planted"
    state, failure = _through_flink(
        flink,
        "write",
        "CREATE TABLE probe_source (line STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '1')",
        f"CREATE TABLE probe_sink (line STRING) {raw.format(planted.as_uri())}",
    )
    assert state == "FAILED" and not planted.exists(), failure[:2000]
