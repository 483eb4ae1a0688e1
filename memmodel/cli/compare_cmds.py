"""CLI commands of the analysis/report layers: ``compare``, ``report`` and ``calibrate``.

Heavy modules (polars, plotly, numba) are imported inside the command bodies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from memmodel.cli import app
from memmodel.cli.common import UserError, check_traces_exist, emit_json, stdout_is_terminal, user_errors

_DEFAULT_CONFIGS = ("native-thp", "baseline-4k", "baseline-thp", "memctl-4k", "memctl-2m")


@app.command()
def compare(
    traces: list[Path] = typer.Argument(..., help="Traces: store Parquet files or raw lackey/perf traces."),
    config: list[str] | None = typer.Option(
        None, "-c", "--config",
        help=f"Preset name or TOML file; repeatable (default: {', '.join(_DEFAULT_CONFIGS)}).",
    ),
    cpu: str | None = typer.Option(None, "--cpu", help="CPU preset overriding each config's cpu."),
    report: Path | None = typer.Option(
        None, "--report", help="Write a self-contained HTML report (e.g. reports/NAME.html)."
    ),
    json_out: str | None = typer.Option(
        None, "--json", help="Write results (with cost estimates) as JSON to PATH ('-' = stdout)."
    ),
    baseline: str = typer.Option("baseline-thp", "--baseline", help="Config the ratios are taken against."),
    window: int = typer.Option(10_000, "--window", min=1, help="Translations per time-series window."),
    mrc: bool = typer.Option(
        False, "--mrc", help="Add TLB miss-ratio curves (one LRU array at every capacity) to the report."
    ),
) -> None:
    """Replay traces through baseline and memctl configs side by side: TLB, walks, faults, zeroing, estimated costs."""
    with user_errors():
        from memmodel.analysis.compare import runs_to_compare_json
        from memmodel.cli.engine_cmds import _run_with_progress

        configs = list(config) if config else list(_DEFAULT_CONFIGS)
        check_traces_exist(traces)
        _check_baseline(baseline, configs)
        runs = _run_with_progress(traces, configs, cpu, window)
        _check_baseline(baseline, [r.config.name for r in runs])
        if json_out is not None:
            emit_json(runs_to_compare_json(runs), json_out, len(runs))
        if json_out != "-":
            print_compare_table(runs, baseline)
        if mrc and report is None:
            raise UserError("--mrc adds curves to the HTML report: give --report too")
        if report is not None:
            from memmodel.report.html import write_report

            extra = _mrc_sections(traces, [r.config for r in runs[: len(runs) // len(traces)]]) if mrc else []
            write_report(runs, report, baseline=baseline, extra_figures=extra)
            typer.echo(f"wrote report to {report}", err=True)


def _mrc_sections(traces: list[Path], configs: list[Any]) -> list[tuple[str, str, Any]]:
    """One miss-ratio-curve figure per trace: a fully associative LRU TLB holding every page size each
    config produces (splintering shows as curves shifted to larger capacities)."""
    import polars as pl

    from memmodel.analysis.mrc import miss_ratio_curves
    from memmodel.report.mrc_figure import mrc_figure

    out = []
    for i, trace in enumerate(traces):
        frame = pl.concat([miss_ratio_curves(trace, cfg) for cfg in configs])
        fig = mrc_figure(frame, title=f"TLB miss ratio vs capacity, fully associative LRU ({trace.name})")
        out.append((f"mrc-{i}", f"TLB miss-ratio curves: {trace.name}", fig))
    return out


def _check_baseline(baseline: str, names: list[str]) -> None:
    # names may be file paths before loading; a preset name or a config's name must match
    if baseline not in names and not any(Path(n).stem == baseline for n in names):
        raise UserError(f"--baseline {baseline!r} is not one of the compared configs: {', '.join(names)}")


@app.command("report")
def report_cmd(
    results: Path = typer.Argument(..., help="JSON written by `memmodel simulate --json` or `compare --json`."),
    output: Path = typer.Option(..., "-o", "--output", help="HTML file to write."),
    baseline: str = typer.Option("baseline-thp", "--baseline", help="Config the summary compares against."),
    title: str | None = typer.Option(None, "--title", help="Page title."),
) -> None:
    """Write the self-contained HTML report of saved results (no replay)."""
    with user_errors():
        from memmodel.analysis.compare import runs_from_json
        from memmodel.report.html import write_report

        if not results.is_file():
            raise UserError(f"{results}: no such file")
        runs = runs_from_json(results)
        _check_baseline(baseline, [r.config.name for r in runs])
        write_report(runs, output, baseline=baseline, title=title)
        typer.echo(f"wrote report to {output}", err=True)


@app.command()
def calibrate(
    output: Path | None = typer.Option(None, "-o", "--output", help="Write the \\[cost] table to this TOML file."),
    repeats: int = typer.Option(5, "--repeats", min=1, help="Runs per measurement (the median is kept)."),
    size_mib: int = typer.Option(1024, "--size-mib", min=2, help="Size of the large zeroing buffer, MiB."),
    touch_mib: int = typer.Option(
        256, "--touch-mib", min=2, help="Fresh memory first-touched per fault test, MiB (even)."
    ),
) -> None:
    """Measure this machine's zeroing bandwidth and page-fault cost and write a \\[cost] table."""
    with user_errors():
        from memmodel.analysis.calibrate import calibrate as _calibrate

        if touch_mib % 2:
            raise UserError("--touch-mib must be even (whole 2 MiB pages)")
        kwargs: dict[str, Any] = {"repeats": repeats, "big_bytes": size_mib << 20, "touch_bytes": touch_mib << 20}
        if stdout_is_terminal():
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            with Progress(SpinnerColumn(), TextColumn("[bold]calibrate[/bold] {task.description}"),
                          TimeElapsedColumn(), transient=True) as bar:
                task = bar.add_task("", total=None)
                cal = _calibrate(progress=lambda s: bar.update(task, description=s), **kwargs)
        else:
            cal = _calibrate(progress=lambda s: typer.echo(f"calibrate: {s}", err=True), **kwargs)
        text = cal.to_toml()
        if output is None:
            typer.echo(text, nl=False)
        else:
            output.write_text(text)
            typer.echo(f"wrote {output}", err=True)


def print_compare_table(runs: list, baseline: str) -> None:
    """Print the comparison (metrics x configs, each with its ratio to ``baseline``) as rich tables."""
    from rich.console import Console
    from rich.table import Table

    from memmodel.analysis.compare import METRICS, compare_runs
    from memmodel.report.html import format_bytes, format_seconds

    df = compare_runs(runs, baseline=baseline)
    console = Console()
    by_trace: dict[str, list[dict[str, Any]]] = {}
    for row in df.iter_rows(named=True):
        by_trace.setdefault(row["trace"], []).append(row)
    for trace, rows in by_trace.items():
        table = Table(title=f"{trace}: side by side (×r = ratio to {baseline}; est. = ESTIMATE)", title_justify="left")
        table.add_column("metric")
        for r in rows:
            table.add_column(r["config"] + (" (base)" if r["config"] == baseline else ""), justify="right")
        for col, label, unit, kind in METRICS:
            cells = []
            for r in rows:
                v = r[col]
                if v is None:
                    cells.append("—")
                    continue
                s = {"rate": f"{v:.2%}", "int": f"{int(v):,}", "bytes": format_bytes(float(v)),
                     "index": f"{v:.4f}", "s": format_seconds(float(v))}.get(kind, f"{v:.3f}")
                ratio = r.get(f"{col}_vs_base")
                if ratio is not None and r["config"] != baseline:
                    s += f" [dim]×{ratio:.3g}[/dim]"
                cells.append(s)
            name = f"[yellow]{label}[/yellow]" if kind == "s" else label
            if col == "est_guest_zero_s":
                table.add_section()
            table.add_row(f"{name} [dim]({unit})[/dim]", *cells)
        console.print(table)
