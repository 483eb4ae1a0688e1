"""CLI commands for sampled traces: ``sample`` (draw perf-mem-like samples) and ``estimate`` (intervals)."""

from __future__ import annotations

from pathlib import Path

import typer

from memmodel.cli import app
from memmodel.cli.common import UserError, emit_json, user_errors


@app.command()
def sample(
    trace: Path = typer.Argument(..., help="A full trace: store Parquet file or raw lackey trace."),
    period: int = typer.Option(..., "--period", min=1, help="Translations per sample (N); each is sampled w.p. 1/N."),
    jitter: bool = typer.Option(False, "--jitter", help="One sample at a random position in each block of N "
                                "(IBS-style randomisation) instead of every N-th translation."),
    bernoulli: bool = typer.Option(False, "--bernoulli", help="Sample each translation independently w.p. 1/N."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the start offset, jitter or Bernoulli draws."),
    filter_: str | None = typer.Option(None, "--filter", help="'latency>=T': keep samples whose nominal latency "
                                       "is >= T cycles (L1 hit 4, L2 hit 11, walk 31), like Intel's ldlat."),
    native_config: str = typer.Option("native-4k", "--native-config", help="Native config whose TLB labels "
                                      "the samples (preset name or TOML file)."),
    cpu: str | None = typer.Option(None, "--cpu", help="CPU preset overriding the native config's cpu."),
    output: Path = typer.Option(..., "-o", "--output", help="Sample store file to write (.parquet)."),
) -> None:
    """Draw perf-mem-like samples from a full trace, each labelled with its exact native TLB outcome."""
    with user_errors():
        from memmodel.analysis.sample import sample_trace

        if jitter and bernoulli:
            raise UserError("--jitter and --bernoulli are two sampling methods: give at most one")
        if not trace.is_file():
            raise UserError(f"{trace}: no such trace file")
        if not output.parent.is_dir():
            raise UserError(f"{output}: cannot write: directory {output.parent} does not exist")
        method = "jitter" if jitter else "bernoulli" if bernoulli else "fixed"
        s = sample_trace(trace, output, period, method=method, seed=seed, latency_filter=filter_,
                         native_config=native_config, cpu=cpu)
        typer.echo(f"wrote {s.samples:,} samples of {s.translations:,} translations ({method}, period {period}, "
                   f"labels from {s.metadata['native_config']}) to {output}")


@app.command()
def estimate(
    samples: Path = typer.Argument(..., help="Sampled trace: `memmodel sample` output or ingested perf mem."),
    config: list[str] = typer.Option(..., "-c", "--config", help="Target preset name or TOML file; repeatable."),
    cpu: str | None = typer.Option(None, "--cpu", help="CPU preset overriding each config's cpu."),
    confidence: float = typer.Option(0.95, "--confidence", help="Two-sided coverage of the intervals, in (0, 1)."),
    json_out: str | None = typer.Option(None, "--json", help="Write estimates as JSON to PATH ('-' = stdout)."),
) -> None:
    """Estimate walks, walk loads and L2 TLB hits of target configs from sampled native labels, with intervals."""
    with user_errors():
        from memmodel.analysis.estimate import estimate as run_estimate
        from memmodel.analysis.estimate import estimates_to_json

        frame = run_estimate(samples, config, confidence=confidence, cpu=cpu)
        if json_out is not None:
            if json_out != "-" and not Path(json_out).parent.is_dir():
                raise UserError(f"{json_out}: cannot write: directory {Path(json_out).parent} does not exist")
            emit_json(estimates_to_json(frame), json_out, len(set(frame["config"])))
        if json_out != "-":
            _print(frame, samples, confidence)


def _fmt(v: float | None) -> str:
    return "—" if v is None else f"{v:,.0f}"


def _print(frame: object, samples: Path, confidence: float) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"{samples}: estimates with {confidence:.0%} intervals (not exact counters)",
                  title_justify="left")
    for col in ("config", "quantity", "value", "low", "high", "method"):
        table.add_column(col, justify="right" if col in ("value", "low", "high") else "left")
    last = None
    for row in frame.iter_rows(named=True):  # type: ignore[attr-defined]
        if last is not None and row["config"] != last:
            table.add_section()
        last = row["config"]
        table.add_row(row["config"], row["quantity"], _fmt(row["value"]), _fmt(row["low"]), _fmt(row["high"]),
                      row["method"])
    console.print(table)
    notes = {r["config"]: r["config_method"] for r in frame.iter_rows(named=True)}  # type: ignore[attr-defined]
    for name, note in notes.items():
        console.print(f"[dim]{name}: {note}[/dim]")
