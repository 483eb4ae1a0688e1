"""CLI commands of the trace layer: ``ingest``, ``info``, ``record`` (registered on :data:`memmodel.cli.app`).

Heavy modules (numpy, pyarrow, rich) are imported inside the command bodies so that
``memmodel --help`` stays instant.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from memmodel.cli import app
from memmodel.cli.common import (
    UserError,
    check_outputs,
    check_traces_exist,
    input_kind,
    stdout_is_terminal,
    user_errors,
)

_FORMAT_HELP = "Input format: lackey, perf-mem-raw or perf-script (default: detected from the content)."


def _check_format(fmt: str | None) -> None:
    if fmt is not None and fmt not in ("lackey", "perf-mem-raw", "perf-script"):
        raise UserError(f"--format {fmt!r}: expected one of lackey, perf-mem-raw, perf-script")


def _bytes(n: int) -> str:
    """``n`` bytes as an exact count and in binary units (GiB / MiB / KiB)."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n:,} ({n / (1 << shift):,.1f} {unit})"
    return f"{n:,}"


def _print_summary(d: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    t = Table(title=f"ingest -> {d['out']}", show_header=True)
    t.add_column("what")
    t.add_column("count", justify="right")
    t.add_row("lines read", f"{d['lines']:,}")
    t.add_row("records", f"{d['records']:,}")
    for k, v in d["by_kind"].items():
        t.add_row(f"  {k}" + ("  (unmaps)" if k == "U" else ""), f"{v:,}")
    if d.get("unmaps"):
        t.add_row("unmapped bytes (4 KiB-rounded ranges)", _bytes(d["unmapped_bytes"]))
    for k, v in sorted(d["non_records"].items()):
        t.add_row(f"non-record: {k}", f"{v:,}")
    for k, v in sorted(d["skipped"].items()):
        t.add_row(f"skipped: {k}", f"{v:,}")
    for k, v in sorted(d.get("notes", {}).items()):
        t.add_row(f"note: {k}", f"{v:,}")
    rec = "yes" if d["reconciled"] else "NO"
    t.add_row("lines = records + non-records + skipped", rec)
    fc = d["footer_check"]
    if fc["status"] == "absent":
        t.add_row("footer guest instrs", "no footer")
    else:
        t.add_row("footer guest instrs vs I records", f"{fc['footer']:,} vs {fc['I_records']:,}: {fc['status']}")
    t.add_row("input", f"{d['input_bytes'] / 1e6:,.1f} MB in {d['seconds']:.2f} s")
    t.add_row("speed", f"{d['mb_per_s']:,.0f} MB/s, {d['records_per_s'] / 1e6:,.1f} M records/s")
    if "client_exit_code" in d:
        t.add_row("client exit code", str(d["client_exit_code"]))
    con.print(t)
    for w in d["warnings"]:
        con.print(f"[yellow]warning:[/yellow] {w}", highlight=False)


_froze_at_exit = False


@contextlib.contextmanager
def _one_shot_ingest() -> Iterator[None]:
    """Process settings while ``memmodel ingest`` runs (restored after it, for in-process callers).

    Why (measured on this project's 2-vCPU benchmark machine, ``benchmarks/ingest.py``): ``memmodel
    ingest`` is a one-shot process whose fixed cost counts against its speed goal, and 0.1-0.15 s of
    it (of about 0.55 s) went to

    * OpenBLAS's thread pool, started by ``import numpy`` and spinning a while (about 40 ms of CPU
      taken from the parser and writer threads); ingest does no linear algebra, so one thread;
    * the cyclic garbage collector walking the objects that the numpy, pyarrow and rich imports
      allocate (they hold no cycles worth collecting) during the command, and all of them once more
      at interpreter exit: the collector is off while the command runs, and the objects alive at
      exit are frozen (``gc.freeze``) just before the final collection.
    """
    global _froze_at_exit
    set_blas = "OPENBLAS_NUM_THREADS" not in os.environ
    if set_blas:
        os.environ["OPENBLAS_NUM_THREADS"] = "1"  # read once, when numpy loads OpenBLAS
    was_enabled = gc.isenabled()
    gc.disable()
    if not _froze_at_exit:
        import atexit

        atexit.register(gc.freeze)  # atexit runs before the interpreter's last collections
        _froze_at_exit = True
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
        if set_blas:
            os.environ.pop("OPENBLAS_NUM_THREADS", None)


@app.command("ingest")
def ingest_cmd(
    inputs: list[Path] = typer.Argument(..., help="Raw traces (lackey / perf text, .gz/.xz/.zst ok), in order."),
    out: Path = typer.Option(..., "-o", "--out", help="Parquet store file to write."),
    format: str | None = typer.Option(None, "--format", help=_FORMAT_HELP),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Count bad lines as skipped instead of failing."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Parse raw traces (concatenated in order) into one Parquet store file; print the line accounting."""
    with _one_shot_ingest(), user_errors(f"memmodel ingest into {out}", f"{out} was not written (no partial file)"):
        _check_format(format)
        for p in inputs:
            kind = input_kind(p)  # pipes (FIFO, /dev/fd/N of `<(cmd)`) are streamed: read once, in order
            if kind == "missing":
                raise UserError(f"{p}: no such file")
            if kind == "dir":
                raise UserError(f"{p}: is a directory, not a trace file")
        check_outputs(out, what="trace store")
        from memmodel.trace.store import ingest

        s = ingest(list(inputs), out, format=format, skip_bad=skip_bad, progress=stdout_is_terminal())
        d = s.to_dict()
        if as_json:
            typer.echo(json.dumps(d, indent=2))
        else:
            _print_summary(d)


@app.command("info")
def info_cmd(
    trace: Path = typer.Argument(..., help="A store Parquet file or a raw trace."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Records by kind, distinct 4K/2M/1G pages touched, address span and footprint of a trace."""
    with user_errors():
        check_traces_exist([trace], "info")
        from memmodel.trace.info import trace_info

        if stdout_is_terminal() and not as_json:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            with Progress(SpinnerColumn(), TextColumn("[bold]info"), TextColumn("{task.completed:,} records"),
                          TimeElapsedColumn(), transient=True) as bar:
                task = bar.add_task("info", total=None)
                d = trace_info(trace, progress=lambda n: bar.update(task, completed=n))
        else:
            d = trace_info(trace)
        if as_json:
            typer.echo(json.dumps(d, indent=2))
            return
        from rich.console import Console
        from rich.table import Table

        t = Table(title=str(trace))
        t.add_column("what")
        t.add_column("value", justify="right")
        t.add_row("records", f"{d['records']:,}")
        for k, v in d["by_kind"].items():
            t.add_row(f"  {k}" + ("  (unmaps)" if k == "U" else ""), f"{v:,}")
        t.add_row("unmapped bytes (4 KiB-rounded ranges)", _bytes(d["unmapped_bytes"]))
        for k in ("4K", "2M", "1G"):
            pages = f"{d['pages']['data'][k]:,} / {d['pages']['all'][k]:,}"
            t.add_row(f"distinct {k} pages (data / incl. instr)", pages)
        sp = d["data_span"]
        if sp["min"] is not None:
            t.add_row("data address span", f"{sp['min']:#x} .. {sp['max']:#x} ({sp['bytes'] / 2**20:,.1f} MiB)")
        fp = d["footprint_bytes"]
        foot = f"{fp['data'] / 2**20:,.2f} / {fp['all'] / 2**20:,.2f} MiB"
        t.add_row("footprint, 4 KiB pages (data / incl. instr)", foot)
        Console().print(t)


@app.command(
    "record",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    options_metavar="[OPTIONS] -- CMD [ARGS]...",
)
def record_cmd(
    ctx: typer.Context,
    out: Path = typer.Option(..., "-o", "--out", help="Parquet store file to write."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON (client stdout goes to stderr)."),
    no_syscalls: bool = typer.Option(
        False, "--no-syscalls",
        help="Do not trace syscalls (no --trace-syscalls=yes): the trace then has no U (unmap) records.",
    ),
) -> None:
    """Run CMD under valgrind lackey and ingest its trace as it is produced: memmodel record -o T.parquet -- CMD ARGS.

    Valgrind runs with --tool=lackey --trace-mem=yes --trace-syscalls=yes, so munmap, madvise
    (DONTNEED/FREE/REMOVE), brk shrinks and mremap moves/shrinks become U (unmap) records. The trace
    travels through a dedicated pipe (--log-fd), never a temporary text file, and the client's own
    stdout never mixes into it. Exits with the client's exit code when it is non-zero.
    """
    with user_errors():
        argv = list(ctx.args)
        if argv and argv[0] == "--":
            argv = argv[1:]
        if not argv:
            raise UserError("no command given: memmodel record -o OUT.parquet -- CMD ARGS...")
        check_outputs(out, what="trace store")  # before the client runs
        import os
        import shutil
        import subprocess

        valgrind = shutil.which("valgrind")
        if valgrind is None:
            raise UserError(
                "valgrind is not installed (needed by `memmodel record`): install it with "
                "`sudo apt-get install valgrind` (Debian/Ubuntu) or `sudo dnf install valgrind` (Fedora)"
            )
        from memmodel.trace.store import ingest

        r, w = os.pipe()
        syscalls = [] if no_syscalls else ["--trace-syscalls=yes"]
        cmd = [valgrind, "--tool=lackey", "--trace-mem=yes", *syscalls, f"--log-fd={w}", *argv]
        try:
            proc = subprocess.Popen(cmd, pass_fds=(w,), stdout=2 if as_json else None)
        except OSError as exc:
            os.close(r)
            os.close(w)
            raise UserError(f"cannot run valgrind: {exc}") from None
        os.close(w)
        stream = os.fdopen(r, "rb", buffering=0)
        try:
            s = ingest(
                [],
                out,
                format="lackey",
                progress=False,
                _streams=[(stream, "valgrind lackey: " + " ".join(argv))],
            )
        finally:
            stream.close()
            if proc.poll() is None:
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
            rc = proc.wait()
        d = s.to_dict()
        d["client_exit_code"] = rc
        d["command"] = argv
        if as_json:
            typer.echo(json.dumps(d, indent=2))
        else:
            _print_summary(d)
        if rc != 0:
            raise typer.Exit(rc)
