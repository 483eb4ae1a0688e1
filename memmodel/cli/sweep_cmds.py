"""CLI commands of the sweep layer: ``mrc`` (one-pass miss-ratio curves) and ``sweep`` (parameter sweeps).

Heavy imports (polars, plotly, dask) happen inside the command bodies.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from memmodel.cli import app
from memmodel.cli.common import UserError, check_outputs, check_traces_exist, stdout_is_terminal, user_errors

if TYPE_CHECKING:  # pragma: no cover
    from memmodel.analysis.sweep import Failure, SweepResult


def _parse_sizes(values: list[str]) -> list[int] | None:
    """``--sizes 16,32 --sizes 64`` -> [16, 32, 64] entries (None if not given)."""
    if not values:
        return None
    out: list[int] = []
    for v in values:
        for part in v.split(","):
            part = part.strip()
            if not part:
                continue
            if not part.isdigit() or int(part) < 1:
                raise UserError(f"--sizes: {part!r} is not a positive number of entries")
            out.append(int(part))
    return out


@app.command()
def mrc(
    trace: Path = typer.Argument(..., help="A trace: store Parquet file or raw lackey/perf trace."),
    config: str = typer.Option("baseline-4k", "-c", "--config",
                               help="Preset or TOML file deciding the page size of every translation."),
    level: str | None = typer.Option(None, "--level",
                                     help="l1|l2: curves for the config's arrays of that level (their page "
                                          "sizes and sets); default: one array holding every page size produced."),
    sets: list[int] = typer.Option([1], "--sets", min=1,
                                   help="Set counts of the unified array (repeatable; 1 = fully associative)."),
    sizes: list[str] = typer.Option([], "--sizes", help="Capacities in entries, e.g. 16,32,64 (repeatable)."),
    cpu: str | None = typer.Option(None, "--cpu", help="CPU preset overriding the config's cpu."),
    out: Path | None = typer.Option(None, "-o", "--out", help="Write the curves to OUT.parquet or OUT.json."),
    html: Path | None = typer.Option(None, "--html", help="Write a plotly figure of the curves to FIG.html."),
) -> None:
    """Miss counts of an LRU TLB array at every capacity, in one pass (per-set Mattson stack distances)."""
    with user_errors():
        check_traces_exist([trace], "mrc")
        if level is not None and level not in ("l1", "l2"):
            raise UserError(f"--level {level!r}: allowed values: l1, l2")
        if out is not None and out.suffix not in (".parquet", ".json"):
            raise UserError(f"-o {out}: the file must end in .parquet or .json")
        check_outputs(out, what="curves")
        check_outputs(html, what="figure")
        want = _parse_sizes(sizes)
        from memmodel.analysis.mrc import miss_ratio_curves

        frame = miss_ratio_curves(str(trace), config, level=level, sets=sets, sizes=want, cpu=cpu)
        from memmodel.io import atomic_output, write_text

        if out is not None:
            if out.suffix == ".parquet":
                with atomic_output(out, "curves") as tmp:
                    frame.write_parquet(tmp)
            else:
                write_text(out, frame.write_json() + "\n", "curves")  # JSON ends with a newline
            typer.echo(f"wrote {frame.height} curve points to {out}", err=True)
        if html is not None:
            from memmodel.report.mrc_figure import mrc_figure

            with atomic_output(html, "figure") as tmp:
                mrc_figure(frame).write_html(tmp, include_plotlyjs=True, full_html=True)
            typer.echo(f"wrote the figure to {html}", err=True)
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"{trace}: LRU TLB misses by capacity ({frame['config'][0] if frame.height else config})",
                      title_justify="left")
        for col in ("array", "page_sizes", "sets", "ways", "entries", "misses", "miss_ratio"):
            table.add_column(col, justify="left" if col in ("array", "page_sizes") else "right")
        for r in frame.iter_rows(named=True):
            table.add_row(r["array"], r["page_sizes"], str(r["sets"]), str(r["ways"]), f"{r['entries']:,}",
                          f"{r['misses']:,}",
                          f"{r['miss_ratio']:.4f}" if r["accesses"] else "—")  # no translations: nothing to measure
        Console().print(table)


@app.command()
def sweep(
    traces: list[Path] = typer.Argument(..., help="Trace paths (on a filesystem every worker can read)."),
    config: list[str] = typer.Option(..., "-c", "--config", help="Preset name or TOML file; repeatable."),
    grid: list[str] = typer.Option([], "--grid",
                                   help="KEY=V1,V2,...: a dotted TOML key (host.fragmentation) or cpu; repeatable; "
                                        "values are TOML scalars (0.3, 4, true) or plain strings (4K, zen4)."),
    out: Path = typer.Option(Path("results.parquet"), "-o", "--out",
                             help="Result table (.parquet); parts are kept in OUT.parts/ and reused on re-runs."),
    engine: str = typer.Option("local", "--engine", help="local (process pool), dask, or slurm (dask-jobqueue)."),
    scheduler: str | None = typer.Option(None, "--scheduler", help="A running Dask scheduler, tcp://host:port."),
    workers: int | None = typer.Option(None, "--workers", min=1, help="Worker processes (default: CPU count)."),
    window: int = typer.Option(10_000, "--window", min=1, help="Translations per time-series window."),
    slurm_script: bool = typer.Option(False, "--slurm-script",
                                      help="Print the sbatch script of one SLURM worker job and exit."),
    slurm_queue: str | None = typer.Option(None, "--slurm-queue", help="SLURM partition (-p)."),
    slurm_account: str | None = typer.Option(None, "--slurm-account", help="SLURM account (-A)."),
    slurm_cores: int = typer.Option(4, "--slurm-cores", min=1, help="Cores per job (one worker process each)."),
    slurm_memory: str = typer.Option("16GB", "--slurm-memory", help="Memory per job, e.g. 16GB."),
    slurm_walltime: str = typer.Option("01:00:00", "--slurm-walltime", help="Wall time per job."),
    slurm_jobs: int = typer.Option(1, "--slurm-jobs", min=1, help="Jobs to submit (engine slurm)."),
    slurm_prologue: list[str] = typer.Option([], "--slurm-prologue",
                                             help="Shell line run before the workers (repeatable)."),
    slurm_python: str | None = typer.Option(None, "--slurm-python", help="Python executable on the nodes."),
    cost: Path | None = typer.Option(
        None, "--cost", metavar="FILE", help="A TOML file with a \\[cost] table (e.g. from `memmodel calibrate`) "
        "applied to every point; it changes only the est_* columns."),
) -> None:
    """Run the cross product traces x configs x grid values; one exact result row per point.

    The result table holds every counter exactly, derived rates, and the estimated seconds
    (``est_*``, with each config's cost model or ``--cost FILE``); a summary table is printed.
    """
    with user_errors() as act:
        from memmodel.analysis.sweep import (
            ENGINES,
            SweepError,
            build_points,
            make_executor,
            parse_grid,
            parts_dir,
            sweep,
            validate_points,
        )

        slurm = {"queue": slurm_queue, "account": slurm_account, "cores": slurm_cores, "memory": slurm_memory,
                 "walltime": slurm_walltime, "prologue": slurm_prologue, "python": slurm_python}
        try:
            if slurm_script:
                from memmodel.analysis.sweep import slurm_job_script

                script = slurm_job_script(**slurm)
                typer.echo(script if script.endswith("\n") else script + "\n", nl=False)
                return
            if engine not in ENGINES:
                raise UserError(f"--engine {engine!r}: allowed values: {', '.join(ENGINES)}")
            if scheduler is not None and engine != "dask":
                raise UserError("--scheduler needs --engine dask")
            if out.suffix != ".parquet":
                raise UserError(f"-o {out}: the result table must end in .parquet")
            check_traces_exist(traces, "sweep")  # workers open traces by path: a pipe cannot be shared
            check_outputs(out, what="sweep table")
            g = parse_grid(grid)
            points = build_points([str(t) for t in traces], config, g)
            if cost is not None:
                points = with_cost_overrides(points, cost)
            validate_points(points)  # a misspelt --grid key stops here, before any worker starts
            pdir = parts_dir(out)
            act.doing = f"memmodel sweep of {len(points)} point(s)"
            act.kept = lambda: (f"{sum(1 for _ in pdir.glob('*.parquet')) if pdir.is_dir() else 0} finished "
                                f"point(s) are kept in {pdir}/ and reused by a re-run of the same command; "
                                f"{out} was not written")

            def report(f: Failure) -> None:
                typer.echo(f"failed: {f.point.describe()}: {f.error}", err=True)

            with make_executor(engine, workers, scheduler, slurm=slurm, slurm_jobs=slurm_jobs) as ex:
                result = _run_with_progress(sweep, points, ex, out, list(g), window, report)
        except SweepError as exc:
            raise UserError(str(exc)) from None
        typer.echo(
            f"{result.frame.height} of {len(points)} point(s) in {out} "
            f"({result.computed} computed, {result.skipped} reused from {out.name}.parts/, "
            f"{len(result.failures)} failed)",
            err=True,
        )
        print_sweep_summary(result.frame, list(g))
        if result.failures:
            typer.echo("re-run the same command to retry the failed points; finished ones are kept", err=True)
            raise typer.Exit(1)


def with_cost_overrides(points: list[Any], cost_file: Path) -> list[Any]:
    """Every point with the ``[cost]`` keys of ``cost_file`` as extra overrides (``cost.KEY``).

    The keys become part of each point's identity, so parts computed with other costs are not reused.
    """
    import dataclasses

    from memmodel.analysis.costs import read_cost_file

    table = read_cost_file(cost_file)
    extra = tuple((f"cost.{k}", v) for k, v in sorted(table.items()))
    return [dataclasses.replace(p, overrides=tuple(p.overrides) + extra) for p in points]


#: Columns of the printed sweep summary: (column, header, format kind of memmodel.report.html.fmt_value).
SUMMARY_COLUMNS = (("walk_loads", "walk loads", "int"), ("walks", "walks", "int"),
                   ("loads_per_walk", "loads/walk", "float"), ("host_faults", "host faults", "int"),
                   ("guest_zeroed_bytes", "guest zeroed", "bytes"), ("host_zeroed_bytes", "host zeroed", "bytes"),
                   ("est_setup_s", "est. set-up", "s"), ("est_walk_s", "est. walks", "s"))


def print_sweep_summary(frame: Any, grid_keys: list[str]) -> None:
    """One line per finished point: trace, config, grid values, the headline counters and estimates.

    On a terminal the table fits the window; otherwise it keeps its natural width (no broken lines).
    """
    import io

    from rich.console import Console
    from rich.table import Table

    from memmodel.report.html import fmt_value

    if frame.height == 0:
        return
    table = Table(title=f"sweep: {frame.height} point(s) (est. = ESTIMATE)", title_justify="left")
    table.add_column("trace")
    table.add_column("config")
    for k in grid_keys:
        table.add_column(k, justify="right")
    cols = [c for c in SUMMARY_COLUMNS if c[0] in frame.columns]
    for _c, head, _k in cols:
        table.add_column(head, justify="right")
    for row in frame.iter_rows(named=True):
        table.add_row(Path(row["trace"]).name, str(row["config_name"] or row["config"]),
                      *(str(row[k]) for k in grid_keys), *(fmt_value(row[c], kind) for c, _h, kind in cols))
    if stdout_is_terminal():
        Console().print(table)
    else:
        width = Console(width=10_000, file=io.StringIO()).measure(table).maximum
        Console(width=max(width, 80), no_color=True).print(table)


def _run_with_progress(sweep_fn: Callable[..., SweepResult], points: list[Any], ex: Any, out: Path,
                       grid_keys: list[str], window: int, report: Callable[[Failure], None]) -> SweepResult:
    """Run the sweep with a rich progress bar on the driver when attached to a terminal."""
    if not stdout_is_terminal() or not sys.stderr.isatty():
        return sweep_fn(points, ex, out, grid_keys=grid_keys, window=window, on_failure=report)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  transient=True) as bar:
        task = bar.add_task("sweep", total=len(points))
        return sweep_fn(points, ex, out, grid_keys=grid_keys, window=window, on_failure=report,
                        progress=lambda done, total: bar.update(task, completed=done, total=total))
