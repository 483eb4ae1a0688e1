"""Helpers shared by the command modules: user-facing errors without tracebacks, checked outputs.

Every command body runs inside :func:`user_errors`: a bad input, a bad config, a failed write or
Ctrl-C ends in one line on stderr (``error: ...`` / ``interrupted: ...``) and a non-zero exit code,
never a traceback. Output paths are checked before the long work (:func:`check_outputs`) and written
atomically through :mod:`memmodel.io`.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import typer

#: Longest error message printed (characters): a 10 MB bad token must not flood the terminal.
MAX_MESSAGE_CHARS = 2000
#: Exit code after Ctrl-C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """An error caused by the user's input (a file, a line, a config key): printed, never a traceback."""


@dataclass
class Activity:
    """What a command is doing, for the one line printed on Ctrl-C (commands update it as they go).

    Attributes:
        doing: what was interrupted ("simulate of t.parquet").
        kept: what is left on disk ("nothing was written", "12 finished points kept in OUT.parts/").
    """

    doing: str
    kept: str | Callable[[], str] = "nothing was written"

    def kept_now(self) -> str:
        """What is kept, evaluated now (``kept`` may be a function, e.g. counting finished parts)."""
        return self.kept() if callable(self.kept) else self.kept


def _command_name(depth: int = 3) -> str:
    """``memmodel <command>`` from the command function that entered :func:`user_errors`.

    typer calls command functions outside a click context, so the name comes from the caller's frame
    (``ingest_cmd`` -> ``ingest``).
    """
    try:
        name = sys._getframe(depth).f_code.co_name
    except ValueError:
        return "memmodel"
    name = name.removesuffix("_cmd").replace("_", " ")
    return f"memmodel {name}" if name.isidentifier() or " " in name else "memmodel"


def _say(prefix: str, message: str) -> None:
    from memmodel.errors import shorten

    typer.echo(f"{prefix}: {shorten(message, MAX_MESSAGE_CHARS)}", err=True)


@contextmanager
def user_errors(doing: str | None = None, kept: str = "nothing was written") -> Iterator[Activity]:
    """Turn input errors, failed writes and Ctrl-C into one clean line and a non-zero exit code.

    :class:`UserError` and every :class:`memmodel.errors.MemmodelError` (ConfigError, TraceError,
    OutputError, OutOfMemoryError...) exit with code 2; an ``OSError`` reading an input too; Ctrl-C
    prints what was interrupted and what was kept (see :class:`Activity`) and exits with 130.

    Args:
        doing: what the command does, for the Ctrl-C line (default: the command's name).
        kept: what is on disk if it is interrupted now (the command may update it as it goes).
    """
    from memmodel.errors import MemmodelError

    act = Activity(doing or _command_name(), kept)
    try:
        yield act
    except (UserError, MemmodelError) as exc:
        _say("error", str(exc))
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        _say("interrupted", f"{act.doing} was stopped by Ctrl-C; {act.kept_now()}")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except MemoryError:
        _say("error", f"{act.doing}: this machine ran out of memory (not the modelled machine); {act.kept_now()}")
        raise typer.Exit(2) from None
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        _say("error", f"{where}{exc.strerror or exc}")
        raise typer.Exit(2) from None


def stdout_is_terminal() -> bool:
    """Whether progress bars should be shown (only on an interactive terminal)."""
    return sys.stdout.isatty()


def input_kind(path: Path) -> str:
    """``"file"``, ``"pipe"`` (FIFO, ``/dev/fd/N`` of a pipe, character device, socket), ``"dir"`` or ``"missing"``."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return "missing"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    return "pipe"


def check_traces_exist(traces: list[Path], command: str = "this command") -> None:
    """A clear error for a trace path that is not a regular file (before any work starts).

    Pipes are refused with the reason: replaying reads a trace twice (its identity hash, then the
    records), which a pipe cannot do; ``memmodel ingest`` streams pipes into a store file.
    """
    for t in traces:
        kind = input_kind(t)
        if kind == "missing":
            raise UserError(f"{t}: no such trace file")
        if kind == "dir":
            raise UserError(f"{t}: is a directory, not a trace file")
        if kind == "pipe":
            raise UserError(
                f"{t}: is a pipe, not a regular file; {command} reads a trace twice (its sha256 identity, "
                f"then the records), which a pipe cannot replay. Stream it into a store first: "
                f"memmodel ingest {t} -o TRACE.parquet"
            )


def check_outputs(*paths: Path | str | None, what: str = "output") -> None:
    """Cheap checks of output paths before the long work (``None`` and ``-`` = stdout are skipped)."""
    from memmodel.io import check_output

    for p in paths:
        if p is not None and str(p) != "-":
            check_output(p, what)


def emit_json(text: str, json_out: str, n_results: int) -> None:
    """Write a results document to ``json_out`` ('-' = stdout) atomically, saying where it went on stderr."""
    if json_out == "-":
        typer.echo(text, nl=False)
    else:
        from memmodel.io import write_text

        write_text(json_out, text, "JSON results")
        typer.echo(f"wrote {n_results} result(s) to {json_out}", err=True)
