"""Helpers shared by the command modules: user-facing errors without tracebacks."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer


class UserError(Exception):
    """An error caused by the user's input (a file, a line, a config key): printed, never a traceback."""


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn :class:`UserError` (and the library's own input errors) into a clean message and exit code 2."""
    try:
        yield
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except Exception as exc:
        # Library layers raise their own error types (ConfigError, TraceError, OutOfMemoryError...);
        # they all derive from MemmodelError so the CLI can show them without a traceback.
        from memmodel.errors import MemmodelError

        if isinstance(exc, MemmodelError):
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        raise


def stdout_is_terminal() -> bool:
    """Whether progress bars should be shown (only on an interactive terminal)."""
    return sys.stdout.isatty()


def check_traces_exist(traces: list[Path]) -> None:
    """A clear error for a trace path that is not a file (before any work starts)."""
    for t in traces:
        if not t.is_file():
            raise UserError(f"{t}: no such trace file")


def emit_json(text: str, json_out: str, n_results: int) -> None:
    """Write a results document to ``json_out`` ('-' = stdout), saying where it went on stderr."""
    if json_out == "-":
        typer.echo(text, nl=False)
    else:
        Path(json_out).write_text(text)
        typer.echo(f"wrote {n_results} result(s) to {json_out}", err=True)
