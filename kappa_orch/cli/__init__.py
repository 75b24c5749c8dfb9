"""The `kappa-orch` command line. Flags fall back to KAPPA_* environment variables.

`stack` commands run the local services; the others operate pipelines.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from kappa_orch.errors import KappaError

F = TypeVar("F", bound=Callable[..., Any])


@click.group()
def main() -> None:
    """kappa-orch: Dagster orchestration for Kappa data platforms."""


def fail(exc: KappaError) -> None:
    """Print a KappaError as problem + fix and exit 1."""
    click.secho(f"error: {exc.problem}", fg="red", err=True)
    if exc.fix:
        click.secho(f"fix: {exc.fix}", fg="yellow", err=True)
    sys.exit(1)


# the commands register themselves on `main`
from kappa_orch.cli import pipelines as _pipelines  # noqa: E402, F401
from kappa_orch.cli import stack as _stack  # noqa: E402, F401

if __name__ == "__main__":
    main()
