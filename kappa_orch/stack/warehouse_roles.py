"""The warehouse's roles and their grants on the local stack: the orchestrator owns the
warehouse, the reader reads the pipelines' tables (never kappa_orch's own schemas), the
sinks' role reaches the schemas and writes only what it is granted (each job's own role is
made by kappa_grants.job_role)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from importlib import resources
from typing import Any

from kappa_orch.config import LOCAL_ROLES
from kappa_orch.errors import StackError
from kappa_orch.spec.rules import COUNTS_SCHEMA, GRANTS_SCHEMA, REGISTRY_SCHEMA
from kappa_orch.stack.config import StackConfig


# A role per Flink job, made by the orchestrator through these functions (it cannot
# create roles itself): the job writes its own tables and its own input-count rows, and
# reads what it is given, nothing else. They run as the superuser that defines them and
# check every argument: only tables the orchestrator owns, outside kappa_orch's own and
# PostgreSQL's schemas; role names of one pattern.
def job_role_functions(orchestrator: str) -> str:
    """The SQL that defines kappa_grants.job_role and drop_job_role for `orchestrator`."""
    text = (resources.files("kappa_orch.stack") / "sql" / "job_roles.sql").read_text(encoding="utf-8")
    return text.replace("{orchestrator}", orchestrator)


def role_password(cfg: StackConfig, role: str) -> str:
    """The password of one of the stack's roles: its file's, made at random the first time
    (readable by the stack's owner only, in a folder only the owner enters)."""
    path = cfg.password_file(role)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        path.chmod(0o600)
    else:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(24) + "\n")
    password = path.read_text().strip()
    if not password or any(c in password for c in ":@/?#%\\ '\""):
        raise StackError(
            f"the password in {path} is empty or has a character a URL or SQL literal would need "
            "escaped (: @ / ? # % \\ quotes or spaces)",
            f"write a password of letters, digits, '-', '_' and '.' there, or remove {path} to get "
            "a random one, and run `kappa-orch stack up` again",
        )
    return password


def provision_roles(conn: Any, cfg: StackConfig) -> None:
    """The three roles with their passwords (a superuser connection): each role's password
    is the one in its file (`stack up` sets it again, so a changed file takes effect)."""
    conn.autocommit = True
    with conn.cursor() as cur:
        roles = [(LOCAL_ROLES[role], role_password(cfg, role)) for role in ("orchestrator", "reader", "sink")]
        for role, password in roles:
            cur.execute("select 1 from pg_roles where rolname = %s", (role,))
            verb = "alter" if cur.fetchone() else "create"
            cur.execute(
                f'{verb} role "{role}" login nosuperuser nocreatedb nocreaterole '
                "noreplication nobypassrls password %s",
                (password,),
            )
        cur.execute(f'alter role "{cfg.warehouse_reader_user}" set default_transaction_read_only = on')


def provision_database(connect: Callable[[str], Any], cfg: StackConfig, name: str) -> None:
    """A database the orchestrator owns: the reader reads the tables the orchestrator makes
    in the pipelines' schemas (never kappa_orch's own), the sink reaches the schemas and
    writes only what it is granted. `connect(dbname)`: a superuser connection."""
    conn = connect("postgres")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("select 1 from pg_database where datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(f'create database "{name}" owner "{cfg.warehouse_user}"')
            cur.execute(f'alter database "{name}" owner to "{cfg.warehouse_user}"')
            cur.execute(f'revoke all on database "{name}" from public')
            cur.execute(
                f'grant connect on database "{name}" to "{cfg.warehouse_reader_user}", '
                f'"{cfg.warehouse_sink_user}"'
            )
    finally:
        conn.close()
    conn = connect(name)
    conn.autocommit = True
    orchestrator, reader, sink = cfg.warehouse_user, cfg.warehouse_reader_user, cfg.warehouse_sink_user
    try:
        with conn.cursor() as cur:
            cur.execute("revoke create on schema public from public")
            cur.execute(
                f'alter default privileges for role "{orchestrator}" grant select on tables to "{reader}"'
            )
            cur.execute(
                f'alter default privileges for role "{orchestrator}" '
                f'grant usage on schemas to "{reader}", "{sink}"'
            )
            # what the orchestrator made before these defaults (an older stack)
            cur.execute(
                "select nspname from pg_namespace n join pg_roles r on r.oid = n.nspowner "
                "where r.rolname = %s",
                (orchestrator,),
            )
            for (schema,) in cur.fetchall():
                cur.execute(f'grant usage on schema "{schema}" to "{reader}", "{sink}"')
                cur.execute(f'grant select on all tables in schema "{schema}" to "{reader}"')
            cur.execute(job_role_functions(orchestrator))
            # the reader reads the pipelines' tables only, never in kappa_orch's own schemas
            # (every spec's SQL, the counters, the role functions; made here, so never granted)
            for schema in (REGISTRY_SCHEMA, COUNTS_SCHEMA, GRANTS_SCHEMA):
                cur.execute(
                    f'create schema if not exists "{schema}" authorization "{orchestrator}"; '
                    f'revoke all on schema "{schema}" from "{reader}"; '
                    f'revoke all on all tables in schema "{schema}" from "{reader}"'
                )
    finally:
        conn.close()
