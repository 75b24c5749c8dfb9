"""The `kappa-orch` command line. Flags fall back to KAPPA_* environment variables.

`stack` commands run the local services; the others operate pipelines.

A failure a user can meet (a spec problem, a service down, a gate that failed, a claim
held) is one message: what went wrong, where the fault lies (spec, infrastructure or
the operation), and the fix. `--debug` (or KAPPA_DEBUG=1) shows the traceback too.

May import: every other package.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from kappa_orch.errors import INFRASTRUCTURE, SPEC, KappaError, known_failure

F = TypeVar("F", bound=Callable[..., Any])

_LABELS = {SPEC: "error (spec)", INFRASTRUCTURE: "error (infrastructure)"}

# Dagster's notes on its own beta parameters are for Dagster code authors, not for a
# person running a command
warnings.filterwarnings("ignore", message=r".* is currently in (beta|preview)")


def debugging() -> bool:
    """--debug on this command line, or KAPPA_DEBUG=1."""
    context = click.get_current_context(silent=True)
    if context is not None and context.find_root().meta.get("kappa.debug"):
        return True
    return os.environ.get("KAPPA_DEBUG", "").strip().lower() in {"1", "true", "yes"}


def fail(exc: KappaError) -> NoReturn:
    """Print a KappaError as problem + fix (labelled with where the fault lies) and exit 1."""
    if debugging():
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    click.secho(f"{_LABELS.get(exc.blame, 'error')}: {exc.problem}", fg="red", err=True)
    if exc.fix:
        click.secho(f"fix: {exc.fix}", fg="yellow", err=True)
    sys.exit(1)


class KappaGroup(click.Group):
    """Turns every known failure into one message (no traceback unless --debug)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            click.secho("interrupted", fg="red", err=True)
            sys.exit(130)
        except BrokenPipeError:
            # the reader went away (`kappa-orch status | head`): not an error of ours
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(141)
        except Exception as exc:
            known = known_failure(exc)
            if known is not None:
                fail(known)
            if debugging():
                raise
            click.secho(f"internal error: {type(exc).__name__}: {exc}", fg="red", err=True)
            click.secho(
                "fix: this is a bug in kappa_orch, not in your spec: rerun with --debug for the "
                "traceback and report it",
                fg="yellow",
                err=True,
            )
            sys.exit(2)


@click.group(cls=KappaGroup)
@click.option("--debug", is_flag=True, help="Show Python tracebacks of failures [env KAPPA_DEBUG].")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """kappa-orch: Dagster orchestration for Kappa data platforms."""
    ctx.meta["kappa.debug"] = debug


# the commands register themselves on `main`
from kappa_orch.cli import k8s as _k8s  # noqa: E402, F401
from kappa_orch.cli import lineage as _lineage  # noqa: E402, F401
from kappa_orch.cli import operate as _operate  # noqa: E402, F401
from kappa_orch.cli import pipelines as _pipelines  # noqa: E402, F401
from kappa_orch.cli import plan as _plan  # noqa: E402, F401
from kappa_orch.cli import stack as _stack  # noqa: E402, F401
from kappa_orch.cli import status as _status  # noqa: E402, F401
from kappa_orch.cli import topics as _topics  # noqa: E402, F401

if __name__ == "__main__":
    main()
