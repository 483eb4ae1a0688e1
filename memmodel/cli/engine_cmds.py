"""CLI commands of the config and engine layers: ``configs`` and ``simulate``."""

from __future__ import annotations

from pathlib import Path

import typer

from memmodel.cli import app
from memmodel.cli.common import check_traces_exist, emit_json, stdout_is_terminal, user_errors

configs_app = typer.Typer(help="List the shipped presets, or show one resolved as TOML.", no_args_is_help=False)
app.add_typer(configs_app, name="configs")


@configs_app.callback(invoke_without_command=True)
def configs_list(ctx: typer.Context) -> None:
    """List the VM presets (use with -c) and the CPU presets (use with --cpu)."""
    if ctx.invoked_subcommand is not None:
        return
    import tomllib

    from memmodel.config import preset_names, preset_text

    with user_errors():
        typer.echo("VM presets (memmodel simulate -c NAME):")
        for name in preset_names("vm"):
            desc = tomllib.loads(preset_text(name, "vm")).get("description", "")
            typer.echo(f"  {name:<14} {desc}")
        typer.echo("CPU presets (--cpu NAME, or cpu = \"NAME\" in a config):")
        for name in preset_names("cpu"):
            desc = tomllib.loads(preset_text(name, "cpu")).get("description", "")
            typer.echo(f"  {name:<16} {desc}")


@configs_app.command("show")
def configs_show(
    name: str = typer.Argument(..., help="A VM preset name or a config TOML file."),
    cpu: str | None = typer.Option(None, "--cpu", help="CPU preset overriding the config's cpu."),
) -> None:
    """Print a config fully resolved (CPU preset tables inlined) as TOML."""
    from memmodel.config import load_config

    with user_errors():
        typer.echo(load_config(name, cpu=cpu).to_toml(), nl=False)


@app.command()
def simulate(
    traces: list[Path] = typer.Argument(..., help="Traces: store Parquet files or raw lackey/perf traces."),
    config: list[str] = typer.Option(..., "-c", "--config", help="Preset name or TOML file; repeatable."),
    cpu: str | None = typer.Option(None, "--cpu", help="CPU preset overriding each config's cpu."),
    json_out: str | None = typer.Option(None, "--json", help="Write results as JSON to PATH ('-' = stdout)."),
    window: int = typer.Option(10_000, "--window", min=1, help="Translations per time-series window."),
) -> None:
    """Replay traces through configs of the canonical model (MODEL.md) and print exact counters."""
    with user_errors():
        from memmodel.analysis.api import runs_to_json

        check_traces_exist(traces)
        runs = _run_with_progress(traces, config, cpu, window)
        if json_out is not None:
            emit_json(runs_to_json(runs), json_out, len(runs))
        if json_out != "-":
            _print_table(runs)



def _run_with_progress(traces: list[Path], configs: list[str], cpu: str | None, window: int) -> list:
    from memmodel.analysis.api import run

    if not stdout_is_terminal():
        return run(traces, configs, cpu=cpu, window=window)
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]simulate"), BarColumn(), TextColumn("{task.completed:,} records"),
                  TimeElapsedColumn(), transient=True) as bar:
        task = bar.add_task("simulate", total=None)
        return run(traces, configs, cpu=cpu, window=window, progress=lambda n: bar.update(task, completed=n))


def _print_table(runs: list) -> None:
    from rich.console import Console
    from rich.table import Table

    from memmodel.engine import COUNTER_NAMES, derived_metrics

    console = Console()
    by_trace: dict[str, list] = {}
    for r in runs:
        by_trace.setdefault(r.trace, []).append(r)
    for trace, trace_runs in by_trace.items():
        table = Table(title=f"{trace}: exact counters (MODEL.md §6)", title_justify="left")
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
        console.print(table)
