"""The ``memmodel`` command line: a thin typer front end.

Each layer's commands live in their own module and register themselves on :data:`app`; every heavy
import (polars, pyarrow, plotly, dask) happens inside a command body so that
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


def _type_in_words(param: object, ctx: object) -> str | None:
    """The type column of ``--help`` in words (TEXT, INTEGER, NUMBER, PATH), never a Python type.

    typer >= 0.16 prints the annotation (``<list[Path]>``, ``<str>``, ``<bool>``); readers of a CLI
    expect click's words. Flags show no type; repeatable options and variadic arguments add "...".
    """
    import types
    import typing
    from pathlib import Path

    metavar = getattr(param, "metavar", None)
    if metavar is not None:
        return str(metavar)
    if getattr(param, "is_flag", False):
        return None
    ann = getattr(getattr(param, "type_descriptor", None), "annotation", str)
    many = bool(getattr(param, "multiple", False)) or getattr(param, "nargs", 1) != 1
    if typing.get_origin(ann) in (typing.Union, types.UnionType):  # X | None
        ann = next((a for a in typing.get_args(ann) if a is not type(None)), str)
    if typing.get_origin(ann) in (list, tuple):
        many = True
        ann = (typing.get_args(ann) or (str,))[0]
    words = {str: "TEXT", int: "INTEGER", float: "NUMBER", bool: "BOOLEAN", Path: "PATH"}
    word = words.get(ann, getattr(ann, "__name__", "TEXT").upper()) if isinstance(ann, type) else "TEXT"
    return word + ("..." if many else "")


def _use_words_for_types() -> None:
    import typer.core

    for cls in (typer.core.TyperOption, typer.core.TyperArgument):
        if hasattr(cls, "display_type_rich"):
            cls.display_type_rich = _type_in_words  # type: ignore[method-assign,assignment]


_use_words_for_types()


def _print_version(value: bool) -> None:
    if value:
        from memmodel._version import __version__

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
from memmodel.cli import estimate_cmds as _estimate_cmds  # noqa: E402,F401
# isort: on


def main() -> None:
    """Console-script entry point."""
    app()
