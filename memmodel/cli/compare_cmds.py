"""CLI commands of the analysis/report layers: ``compare``, ``report`` and ``calibrate``.

Heavy modules (polars, plotly) are imported inside the command bodies.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import typer

from memmodel.cli import app
from memmodel.cli.common import (
    UserError,
    check_outputs,
    check_traces_exist,
    emit_json,
    stdout_is_terminal,
    user_errors,
)
from memmodel.config.model import DEFAULT_COMPARE_CONFIGS as _DEFAULT_CONFIGS


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
    allow_sampled: bool = typer.Option(
        False, "--allow-sampled", help="Compare sampled traces (perf mem) too, every number labelled 'replay of "
        "samples, not an estimate of the program' (for estimates: `memmodel estimate`)."),
    cost: Path | None = typer.Option(
        None, "--cost", metavar="FILE", help="A TOML file with a \\[cost] table (e.g. from `memmodel calibrate`) "
        "applied to every config; its keys win over the configs' own."),
    fragmentation: str = typer.Option(
        "0,0.9,0.99", "--fragmentation", metavar="F,F,...",
        help="Host fragmentation values of the study 'and when the host is fragmented?': the memctl configs "
        "with 2M host pages and their baselines are replayed again at each f on a bounded host share (twice "
        "what they needed, whole GiB). 'none' skips the study."),
) -> None:
    """Replay traces through baseline and memctl configs side by side: TLB, walks, faults, zeroing, estimated costs.

    Prints one quotable sentence per memctl config against the baseline its preset declares
    (memctl-2m vs baseline-thp, memctl-4k vs baseline-4k), then the side-by-side tables.
    """
    with user_errors() as act:
        from memmodel.analysis.compare import runs_to_compare_json
        from memmodel.cli.engine_cmds import _run_with_progress, label_sampled_json, sampled_traces

        configs = list(config) if config else list(_DEFAULT_CONFIGS)
        check_traces_exist(traces, "compare")
        _check_baseline(baseline, configs)
        if mrc and report is None:
            raise UserError("--mrc adds curves to the HTML report: give --report too")
        check_outputs(json_out, what="JSON results")
        check_outputs(report, what="HTML report")
        _refuse_empty_stores(traces)
        fractions = parse_fractions(fragmentation)
        if cost is not None:
            from memmodel.analysis.costs import read_cost_file

            read_cost_file(cost)  # a bad cost file fails before the replay
        curves = None
        if mrc:
            from memmodel.analysis.mrc import CompareCurves

            curves = CompareCurves()  # the curves come from these replays' outcomes: no replay of their own
        runs = _run_with_progress(traces, configs, cpu, window, allow_sampled, cost=cost, on_batch=curves)
        _refuse_zero_translations(runs)
        _check_baseline(baseline, [r.config.name for r in runs])
        runs = runs + _study(traces, runs, fractions, window)
        if json_out is not None:
            emit_json(label_sampled_json(runs_to_compare_json(runs), runs), json_out, len(runs))
            if json_out != "-":
                act.kept = f"{json_out} was written" + (f"; {report} was not" if report is not None else "")
        if json_out != "-":
            from memmodel.analysis.api import SAMPLED_LABEL

            for name in sorted(sampled_traces(runs)):
                typer.echo(f"{name}: every number below is a {SAMPLED_LABEL}", err=True)
            print_summary(runs, baseline)
            print_compare_table([r for r in runs if "fragmentation" not in r.extra], baseline)
        if mrc and report is None:
            raise UserError("--mrc adds curves to the HTML report: give --report too")
        if report is not None:
            from memmodel.io import write_text
            from memmodel.report.html import build_report

            extra = _mrc_sections(traces, curves) if curves is not None else []
            write_text(report, build_report(runs, baseline, None, extra), "HTML report")
            typer.echo(f"wrote report to {report}", err=True)


def parse_fractions(text: str) -> list[float]:
    """``--fragmentation 0,0.9,0.99`` -> [0.0, 0.9, 0.99]; ``none`` (or empty) -> [] (no study)."""
    if text.strip().lower() in ("", "none", "off"):
        return []
    out = []
    for part in text.split(","):
        try:
            f = float(part)
        except ValueError:
            raise UserError(f"--fragmentation: {part.strip()!r} is not a number; expected values in [0, 1) "
                            "separated by commas, e.g. 0,0.9,0.99, or 'none'") from None
        if not 0.0 <= f < 1.0:
            raise UserError(f"--fragmentation: {f:g} is outside [0, 1) (the share of the host's 2 MiB blocks "
                            "broken)")
        out.append(f)
    return list(dict.fromkeys(out))


def _study(traces: list[Path], runs: list, fractions: list[float], window: int) -> list:
    """The fragmentation-study runs of every trace (none without fractions or a pair with 2M host pages)."""
    if not fractions:
        return []
    from memmodel.analysis.compare import fragmentation_study

    out: list = []
    for t in traces:
        mine = [r for r in runs if r.trace == str(t)]
        out += fragmentation_study(str(t), mine, fractions, window=window)
    return out


def print_summary(runs: list, baseline: str) -> None:
    """The quotable sentences first: each memctl config against its declared baseline, per trace."""
    from memmodel.analysis.compare import pairings, summary_sentence

    main = [r for r in runs if "fragmentation" not in r.extra]
    for p in pairings(main):
        typer.echo(summary_sentence(p))
    study = [r for r in runs if "fragmentation" in r.extra]
    if study:
        top = max(r.extra["fragmentation"] for r in study)
        for p in pairings(study):
            if p.memctl.extra["fragmentation"] == top:
                gib = int(p.memctl.extra["host_memory"]) >> 30
                s = summary_sentence(p).replace(p.memctl.config.name, str(p.memctl.extra["base_config"]), 1)
                s = s.replace(p.baseline.config.name, str(p.baseline.extra["base_config"]), 1)
                typer.echo(f"When the host is fragmented (f = {top:g}, {gib} GiB host share): {s}")
    typer.echo("")


def _refuse_empty_stores(traces: list[Path]) -> None:
    """Refuse, before any replay, a store file whose metadata says it has no L/S/M record."""
    from memmodel.trace.store import is_parquet, read_metadata

    for t in traces:
        if not is_parquet(t):
            continue
        by_kind = (read_metadata(t).get("accounting") or {}).get("by_kind") or {}
        if by_kind and sum(int(by_kind.get(k, 0)) for k in "LSM") == 0:
            raise UserError(f"{t}: the trace has no L/S/M record (0 translations): nothing to compare")


def _refuse_zero_translations(runs: list) -> None:
    from memmodel.cli.engine_cmds import zero_translation_warning

    for r in runs:
        if int(r.result.counters.get("accesses", 0) or 0) == 0:
            raise UserError(f"{zero_translation_warning(r.trace)}; nothing to compare")


def _mrc_sections(traces: list[Path], curves: Any) -> list[tuple[str, str, Any]]:
    """One miss-ratio-curve figure per trace: a fully associative LRU TLB holding every page size each
    config produces (splintering shows as curves shifted to larger capacities), read from the
    compare's replays (``curves``: a :class:`memmodel.analysis.mrc.CompareCurves`)."""
    from memmodel.report.mrc_figure import mrc_figure

    out = []
    for i, trace in enumerate(traces):
        fig = mrc_figure(curves.frame(i, trace.name), notes=curves.notes(i),
                         title=f"TLB miss ratio vs capacity, fully associative LRU ({trace.name})")
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
        from memmodel.io import write_text
        from memmodel.report.html import build_report

        if not results.is_file():
            raise UserError(f"{results}: no such file")
        check_outputs(output, what="HTML report")
        runs = runs_from_json(results)
        _check_baseline(baseline, [r.config.name for r in runs])
        write_text(output, build_report(runs, baseline, title), "HTML report")
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
        check_outputs(output, what="cost table")  # before minutes of measuring
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
            from memmodel.io import write_text

            write_text(output, text, "cost table")
            typer.echo(f"wrote {output}", err=True)


def print_compare_table(runs: list, baseline: str) -> None:
    """Print the comparison (metrics x configs) as rich tables, one per trace.

    Under a memctl config, the small print is its change against the baseline it declares. On a
    terminal the table fits the window (cells wrap); otherwise (a file, a pipe) it keeps its natural
    width, so no line is broken in the middle of a number.
    """
    from rich.console import Console
    from rich.table import Table

    from memmodel.analysis.compare import METRICS, compare_runs, format_change
    from memmodel.report.html import fmt_value, no_host

    df = compare_runs(runs, baseline=baseline)
    by_trace: dict[str, list[dict[str, Any]]] = {}
    for row in df.iter_rows(named=True):
        by_trace.setdefault(row["trace"], []).append(row)
    tables = []
    for trace, rows in by_trace.items():
        table = Table(title=f"{trace}: side by side (small print: change vs the declared baseline; est. = ESTIMATE)",
                      title_justify="left")
        table.add_column("metric", no_wrap=not stdout_is_terminal())
        for r in rows:
            head = r["config"] + (f"\n[dim]vs {r['paired_with']}[/dim]" if r["paired_with"] else "")
            table.add_column(head, justify="right")
        for col, label, unit, kind in METRICS:
            if all(r[col] is None for r in rows):
                continue
            cells = []
            for r in rows:
                v = None if no_host(r, col) else r[col]
                s = fmt_value(v, kind)
                pv = next((p[col] for p in rows if p["config"] == r["paired_with"]), None) if r["paired_with"] \
                    else None
                if v is not None and pv is not None and kind not in ("rate", "index", "float") and (pv or v == pv):
                    s += f" [dim]{format_change(float(v), float(pv))}[/dim]"
                cells.append(s)
            name = f"[yellow]{label}[/yellow]" if kind in ("s", "ns") else label
            if col == "est_guest_zero_s":
                table.add_section()
            table.add_row(f"{name} [dim]({unit})[/dim]", *cells)
        tables.append(table)
    if stdout_is_terminal():
        console = Console()
    else:
        probe = Console(width=10_000, file=io.StringIO())
        width = max((probe.measure(t).maximum for t in tables), default=80)
        console = Console(width=max(width, 80), no_color=True)
    for t in tables:
        console.print(t)
