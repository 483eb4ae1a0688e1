"""The ``memmodel`` command line: a thin typer front end.

Each layer's commands live in their own module and register themselves on :data:`app`; every heavy
import (numba, polars, pyarrow, plotly, dask) happens inside a command body so that
``memmodel --help`` stays instant.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="memmodel",
    help=(
        "What does a virtual machine pay for address translation and memory setup, and how much "
        "would memory passthrough (memctl) save? Ingest real traces, replay them through the "
        "canonical model, compare configurations."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from memmodel import __version__

        typer.echo(f"memmodel {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", help="Print the version and exit.", is_eager=True, callback=_print_version
    ),
) -> None:
    """Global options."""


# Registration order is the order of `memmodel --help`: trace -> engine -> compare -> sweep.
# isort: off
from memmodel.cli import trace_cmds as _trace_cmds  # noqa: E402,F401
from memmodel.cli import engine_cmds as _engine_cmds  # noqa: E402,F401
from memmodel.cli import compare_cmds as _compare_cmds  # noqa: E402,F401
from memmodel.cli import sweep_cmds as _sweep_cmds  # noqa: E402,F401
# isort: on


def main() -> None:
    """Console-script entry point."""
    app()
