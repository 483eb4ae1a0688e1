"""The Python API: replay traces through configs and get polars DataFrames.

>>> import memmodel
>>> df = memmodel.simulate("traces/pchase.lackey.xz", ["baseline-thp", "memctl-2m"])  # doctest: +SKIP

A trace is read once and every config replays the same batches (the page-run pre-processing is
shared), so comparing N configs costs one parse plus N kernel passes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from memmodel.config import ModelConfig, load_config
from memmodel.engine import Replay, SimResult, derived_metrics, translations_to_runs
from memmodel.engine.replay import DEFAULT_WINDOW

if TYPE_CHECKING:  # pragma: no cover
    import polars as pl

TraceLike = str | Path | Any  # a path (store Parquet or raw trace) or a frame with kind/gva/size
ConfigLike = str | Path | ModelConfig


@dataclass(frozen=True)
class Run:
    """One (trace, config) replay with its provenance.

    Attributes:
        trace: the trace as the user named it (a path, or ``<frame>``).
        trace_identity: source identity (path, bytes, sha256) for reports and reproducibility.
        config: the resolved config.
        result: counters, walk histogram and time series.
    """

    trace: str
    trace_identity: dict[str, Any]
    config: ModelConfig
    result: SimResult
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON object of ``memmodel simulate --json``: trace, config, counters, derived and more."""
        from memmodel import __version__

        r = self.result
        return {
            "trace": self.trace,
            "config": self.config.name,
            "counters": r.counters,
            "derived": derived_metrics(r.counters),
            "cpu": self.config.cpu,
            "virtualized": self.config.virtualized,
            "walk_hist": {str(i): int(n) for i, n in enumerate(r.walk_hist) if n},
            "window": r.window,
            "series": {k: v.tolist() for k, v in r.series.items()},
            "host_nr_free": [int(x) for x in r.host_nr_free],
            "guest_nr_free": [int(x) for x in r.guest_nr_free],
            "trace_identity": self.trace_identity,
            "config_toml": self.config.to_toml(),
            "memmodel_version": __version__,
        }


def resolve_configs(configs: ConfigLike | Sequence[ConfigLike], cpu: str | None = None) -> list[ModelConfig]:
    """Preset names, TOML paths or ModelConfig objects -> resolved configs (``cpu`` overrides each)."""
    if isinstance(configs, str | Path | ModelConfig):
        configs = [configs]
    out = []
    for spec in configs:
        if isinstance(spec, ModelConfig):
            if cpu is not None and cpu != spec.cpu:
                raise ValueError("cpu override needs config names or files, not ModelConfig objects")
            out.append(spec)
        else:
            out.append(load_config(spec, cpu=cpu))
    return out


def _batches(trace: TraceLike, batch_rows: int) -> tuple[str, dict[str, Any], Iterator[Mapping[str, np.ndarray]]]:
    if isinstance(trace, str | Path):
        from memmodel.trace import iter_batches, trace_identity

        return str(trace), trace_identity(trace), iter_batches(trace, ("kind", "gva", "size"), batch_rows)
    # a polars/pandas frame or a mapping of arrays
    cols = {name: np.asarray(trace[name]) for name in ("kind", "gva", "size")}
    if cols["kind"].dtype.kind in "OUS":
        codes = {"I": 0, "L": 1, "S": 2, "M": 3}
        cols["kind"] = np.array([codes[str(k)] for k in cols["kind"]], dtype=np.uint8)
    return "<frame>", {"path": "<frame>", "records": int(cols["kind"].shape[0])}, iter([cols])


def run(
    traces: TraceLike | Sequence[TraceLike],
    configs: ConfigLike | Sequence[ConfigLike],
    cpu: str | None = None,
    window: int = DEFAULT_WINDOW,
    batch_rows: int = 1 << 20,
    progress: Any = None,
) -> list[Run]:
    """Replay every trace through every config; one :class:`Run` per (trace, config), trace-major.

    Args:
        traces: paths (Parquet store files or raw lackey/perf traces) or frames with kind/gva/size.
        configs: preset names, TOML files or ModelConfig objects.
        cpu: CPU preset overriding each config's ``cpu``.
        window: translations per time-series window.
        batch_rows: records per batch read from the trace (bounds memory).
        progress: optional callable ``progress(records_done)`` called after each batch.
    """
    if isinstance(traces, str | Path) or not isinstance(traces, Sequence):
        traces = [traces]
    cfgs = resolve_configs(configs, cpu)
    runs: list[Run] = []
    for trace in traces:
        name, identity, batches = _batches(trace, batch_rows)
        replays = [Replay(cfg, window) for cfg in cfgs]
        done = 0
        for batch in batches:
            p4, counts, instructions = translations_to_runs(batch["kind"], batch["gva"], batch["size"])
            for r in replays:
                r.feed_translations(p4, counts, instructions)
            done += int(batch["kind"].shape[0])
            if progress is not None:
                progress(done)
        runs.extend(Run(name, identity, cfg, r.result()) for cfg, r in zip(cfgs, replays, strict=True))
    return runs


def runs_to_frame(runs: Iterable[Run]) -> pl.DataFrame:
    """One row per run: trace, config, cpu, every counter (exact), then derived metrics."""
    import polars as pl

    from memmodel.engine.result import COUNTER_NAMES

    rows = []
    for r in runs:
        row: dict[str, Any] = {"trace": r.trace, "config": r.config.name, "cpu": r.config.cpu,
                               "virtualized": r.config.virtualized}
        for k in COUNTER_NAMES:
            row[k] = r.result.counters.get(k)
        row.update(derived_metrics(r.result.counters))
        rows.append(row)
    schema: dict[str, Any] = {"trace": pl.String, "config": pl.String, "cpu": pl.String,
                              "virtualized": pl.Boolean}
    for k in COUNTER_NAMES:
        schema[k] = pl.Float64 if "_index_" in k else pl.Int64
    return pl.DataFrame(rows, schema_overrides=schema, infer_schema_length=None)


def simulate(
    traces: TraceLike | Sequence[TraceLike],
    configs: ConfigLike | Sequence[ConfigLike],
    cpu: str | None = None,
    window: int = DEFAULT_WINDOW,
) -> pl.DataFrame:
    """Replay traces through configs and return one row per (trace, config) as a polars DataFrame.

    Counter columns are exact MODEL.md section 6 values (the four host fragmentation indices are
    null for native configs); derived columns (hit rates, loads per walk, MPKI) follow.
    """
    return runs_to_frame(run(traces, configs, cpu=cpu, window=window))


def runs_to_json(runs: Iterable[Run]) -> str:
    """The ``--json`` document: a JSON array with one object per (trace, config)."""
    return json.dumps([r.to_json() for r in runs], indent=1, sort_keys=False) + "\n"
