"""CLI commands of the config and engine layers: ``configs`` and ``simulate``."""

from __future__ import annotations

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

configs_app = typer.Typer(help="List the shipped presets, or show one resolved as TOML.", no_args_is_help=False)
app.add_typer(configs_app, name="configs")


@configs_app.callback(invoke_without_command=True)
def configs_list(ctx: typer.Context) -> None:
    """List the VM presets (use with -c) and the CPU presets (use with --cpu)."""
    if ctx.invoked_subcommand is not None:
        return
    from memmodel.config import preset_document, preset_names

    with user_errors():
        typer.echo("VM presets (memmodel simulate -c NAME):")
        for name in preset_names("vm"):
            desc = preset_document(name, "vm").get("description", "")
            typer.echo(f"  {name:<14} {desc}")
        typer.echo("CPU presets (--cpu NAME, or cpu = \"NAME\" in a config):")
        for name in preset_names("cpu"):
            desc = preset_document(name, "cpu").get("description", "")
            typer.echo(f"  {name:<16} {desc}")


@configs_app.command("show")
def configs_show(
    name: str = typer.Argument(..., help="A VM preset name or a config TOML file."),
    cpu: str | None = typer.Option(None, "--cpu", help="CPU preset overriding the config's cpu."),
) -> None:
    """Print a config fully resolved (CPU preset tables inlined) as TOML, with the \\[cost] table that applies."""
    import dataclasses

    from memmodel.analysis.costs import COST_SOURCES, CostModel
    from memmodel.config import load_config

    with user_errors():
        cfg = load_config(name, cpu=cpu)
        own = dict(cfg.cost)
        model = CostModel.for_config(cfg)  # validates the config's own [cost] keys
        notes = {k: ("set by this config" if k in own else f"default, {COST_SOURCES[k].kind}; {COST_SOURCES[k].unit}")
                 for k in CostModel.key_names()}
        typer.echo(dataclasses.replace(cfg, cost=()).to_toml(), nl=False)
        typer.echo("\n# The cost model that applies (estimates only; derivations and sources: docs/costs.md)")
        typer.echo(model.to_toml(notes), nl=False)


@app.command()
def simulate(
    traces: list[Path] = typer.Argument(..., help="Traces: store Parquet files or raw lackey/perf traces."),
    config: list[str] = typer.Option(..., "-c", "--config", help="Preset name or TOML file; repeatable."),
    cpu: str | None = typer.Option(None, "--cpu", help="CPU preset overriding each config's cpu."),
    json_out: str | None = typer.Option(None, "--json", help="Write results as JSON to PATH ('-' = stdout)."),
    window: int = typer.Option(10_000, "--window", min=1, help="Translations per time-series window."),
    allow_sampled: bool = typer.Option(
        False, "--allow-sampled", help="Replay sampled traces (perf mem) too, every number labelled 'replay of "
        "samples, not an estimate of the program' (for estimates: `memmodel estimate`)."),
    cost: Path | None = typer.Option(
        None, "--cost", metavar="FILE", help="A TOML file with a \\[cost] table (e.g. from `memmodel calibrate`) "
        "applied to every config; it changes only the estimated seconds (est_*), never a counter."),
) -> None:
    """Replay traces through configs of the canonical model (docs/model.md) and print exact counters."""
    with user_errors():
        from memmodel.analysis.api import runs_to_json

        check_traces_exist(traces, "simulate")
        check_outputs(json_out, what="JSON results")
        if cost is not None:
            from memmodel.analysis.costs import read_cost_file

            read_cost_file(cost)  # a bad cost file fails before the replay
        runs = _run_with_progress(traces, config, cpu, window, allow_sampled, cost=cost)
        empty = warn_zero_translations(runs)
        if json_out is not None:
            text = with_warnings_json(label_sampled_json(runs_to_json(runs), runs), empty)
            emit_json(text, json_out, len(runs))
        if json_out != "-":
            _print_table(runs)


def zero_translation_warning(trace: str) -> str:
    """The warning for a trace that gave no translation (every counter is then 0)."""
    return (f"{trace}: 0 translations (no L/S/M record reached the model): every counter is 0; "
            "is it the right trace, and was lackey run with --trace-mem=yes?")


def warn_zero_translations(runs: list) -> dict[str, str]:
    """Print a warning on stderr for each trace with 0 translations; returns {trace: warning}."""
    out: dict[str, str] = {}
    for r in runs:
        if r.trace not in out and int(r.result.counters.get("accesses", 0) or 0) == 0:
            out[r.trace] = zero_translation_warning(r.trace)
            typer.echo(f"warning: {out[r.trace]}", err=True)
    return out


def with_warnings_json(text: str, warnings: dict[str, str]) -> str:
    """Add ``"warnings": [...]`` to every JSON object of a trace that has one (unchanged text otherwise)."""
    import json

    if not warnings:
        return text
    docs = json.loads(text)
    for d in docs:
        if d.get("trace") in warnings:
            d.setdefault("warnings", []).append(warnings[d["trace"]])
    return json.dumps(docs, indent=1, sort_keys=False) + "\n"


def check_config_names(configs: list[str], cpu: str | None) -> list:
    """Resolve the configs and refuse two with the same name (their results would share one column)."""
    from memmodel.analysis.api import resolve_configs

    cfgs = resolve_configs(configs, cpu)
    seen: dict[str, str] = {}
    for spec, cfg in zip(configs, cfgs, strict=True):
        if cfg.name in seen:
            raise UserError(
                f"configs {seen[cfg.name]} and {spec} have the same name {cfg.name!r}: their results would be "
                "two columns with one header; give each config file its own name = \"...\" (or drop the duplicate)"
            )
        seen[cfg.name] = str(spec)
    return cfgs


def name_config_in_oom(message: str, cfgs: list) -> str:
    """An out-of-memory message with the config file (or preset) that ran out appended."""
    hits = [c for c in cfgs if f"'{c.name}'" in message or message.startswith(f"{c.name}:")]
    if not hits:
        hits = [c for c in cfgs if c.name in message]
    if len(hits) > 1:  # 'memctl-2m' is also inside 'memctl-2m-big': keep the longest name
        longest = max(len(c.name) for c in hits)
        hits = [c for c in hits if len(c.name) == longest]
    src = lambda c: c.source.replace("preset:", "preset ") or c.name  # noqa: E731
    if len(hits) == 1:
        return f"{message} [config file: {src(hits[0])}]"
    return f"{message} [config files: {', '.join(src(c) for c in cfgs)}]"



def sampled_traces(runs: list) -> set[str]:
    """Names of the runs' traces that hold samples (their numbers carry :data:`SAMPLED_LABEL`)."""
    from memmodel.analysis.api import is_sampled_trace

    return {r.trace for r in runs if r.trace != "<frame>" and is_sampled_trace(r.trace)}


def label_sampled_json(text: str, runs: list) -> str:
    """Add ``"label": SAMPLED_LABEL`` to every JSON object of a sampled trace (unchanged text otherwise)."""
    import json

    from memmodel.analysis.api import SAMPLED_LABEL

    sampled = sampled_traces(runs)
    if not sampled:
        return text
    docs = json.loads(text)
    for d in docs:
        if d.get("trace") in sampled:
            d["label"] = SAMPLED_LABEL
    return json.dumps(docs, indent=1, sort_keys=False) + "\n"


def _run_with_progress(traces: list[Path], configs: list[str], cpu: str | None, window: int,
                       allow_sampled: bool = False, cost: Path | None = None, on_batch: Any = None) -> list:
    """Replay with a progress bar; distinct config names first, an out-of-memory stop names its file.

    ``cost`` is a ``--cost FILE`` whose ``[cost]`` table overrides every config's; ``on_batch`` is
    passed to :func:`memmodel.analysis.api.run` (``compare --mrc`` reads the replays' outcomes).
    """
    from memmodel.errors import OutOfMemoryError

    cfgs = check_config_names(list(configs), cpu)
    try:
        return _run_raw(traces, configs, cpu, window, allow_sampled, cost, on_batch)
    except OutOfMemoryError as exc:
        raise OutOfMemoryError(name_config_in_oom(str(exc), cfgs)) from None


def _run_raw(traces: list[Path], configs: list[str], cpu: str | None, window: int,
             allow_sampled: bool = False, cost: Path | None = None, on_batch: Any = None) -> list:
    from memmodel.analysis.api import run

    if not stdout_is_terminal():
        return run(traces, configs, cpu=cpu, window=window, allow_sampled=allow_sampled, cost=cost,
                   on_batch=on_batch)
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]simulate"), BarColumn(), TextColumn("{task.completed:,} records"),
                  TimeElapsedColumn(), transient=True) as bar:
        task = bar.add_task("simulate", total=None)
        return run(traces, configs, cpu=cpu, window=window, progress=lambda n: bar.update(task, completed=n),
                   allow_sampled=allow_sampled, cost=cost, on_batch=on_batch)


def _print_table(runs: list) -> None:
    from rich.console import Console
    from rich.table import Table

    from memmodel.engine import COUNTER_NAMES, derived_metrics

    console = Console()
    by_trace: dict[str, list] = {}
    for r in runs:
        by_trace.setdefault(r.trace, []).append(r)
    from memmodel.analysis.api import SAMPLED_LABEL

    sampled = sampled_traces(runs)
    for trace, trace_runs in by_trace.items():
        what = f"every number is a {SAMPLED_LABEL}" if trace in sampled else "exact counters (docs/model.md §6)"
        table = Table(title=f"{trace}: {what}", title_justify="left")
        table.add_column("counter")
        for r in trace_runs:
            table.add_column(r.config.name, justify="right")
        for name in COUNTER_NAMES:
            cells = []
            for r in trace_runs:
                v = r.result.counters.get(name)
                cells.append("—" if v is None else (f"{v:.6f}" if isinstance(v, float) else f"{v:,}"))
            table.add_row(name, *cells)
        table.add_section()
        for name in ("l1_hit_rate", "tlb_miss_rate", "loads_per_walk", "walks_mpki", "bloat_bytes"):
            cells = []
            for r in trace_runs:
                v = derived_metrics(r.result.counters)[name]
                cells.append("—" if v is None else (f"{v:,.0f}" if name == "bloat_bytes" else f"{v:.4f}"))
            table.add_row(f"[dim]{name}[/dim]", *cells)
        _add_estimate_rows(table, trace_runs)
        console.print(table)


def _add_estimate_rows(table: object, runs: list) -> None:
    """The estimated seconds (each config's cost model, or --cost FILE), set apart from the counters."""
    from memmodel.analysis.costs import estimate_run
    from memmodel.report.html import format_seconds

    ests = [estimate_run(r) for r in runs]
    table.add_section()  # type: ignore[attr-defined]
    for key, label in (("setup_s", "est. set-up (zeroing + faults)"), ("walk_s", "est. page-walk time")):
        table.add_row(f"[yellow]{label}[/yellow]",  # type: ignore[attr-defined]
                      *(format_seconds(getattr(e, key)) for e in ests))
