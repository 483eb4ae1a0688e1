"""Baseline vs memctl side by side: one row per (trace, config) with metrics, estimated costs and ratios.

>>> from memmodel.analysis.compare import compare
>>> df = compare("traces/pchase.lackey.xz", baseline="baseline-thp")  # doctest: +SKIP

Counter columns are the exact MODEL.md section 6 values; ``est_*`` columns are estimates
(:mod:`memmodel.analysis.costs`); ``*_vs_base`` columns divide each metric by the baseline
config's value on the same trace (null where the baseline's value is 0 or missing).
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from memmodel.analysis.costs import CostModel, estimate_run

if TYPE_CHECKING:  # pragma: no cover
    import polars as pl

    from memmodel.analysis.api import ConfigLike, Run, TraceLike

#: Configs compared when none are given.
DEFAULT_CONFIGS: Final = ("native-thp", "baseline-4k", "baseline-thp", "memctl-4k", "memctl-2m")
#: The default baseline of the ratios.
DEFAULT_BASELINE: Final = "baseline-thp"

#: The metrics of the comparison: (column, label, unit, format kind). Kinds: "rate", "int", "bytes",
#: "float", "index", "s" (seconds, an estimate).
METRICS: Final = (
    ("l1_hit_rate", "L1 TLB hit rate", "fraction of translations", "rate"),
    ("l2_hit_rate", "L2 TLB hit rate", "fraction of translations", "rate"),
    ("walks", "page walks", "count", "int"),
    ("walk_loads", "walk loads", "page-table loads", "int"),
    ("loads_per_walk", "loads per walk", "loads", "float"),
    ("guest_faults", "guest faults", "count", "int"),
    ("host_faults", "host faults", "count", "int"),
    ("guest_zeroed_bytes", "guest zeroed", "bytes", "bytes"),
    ("host_zeroed_bytes", "host zeroed", "bytes", "bytes"),
    ("host_backed_bytes", "host backed", "bytes", "bytes"),
    ("touched_bytes", "touched", "bytes", "bytes"),
    ("bloat_bytes", "bloat (backed - touched)", "bytes", "bytes"),
    ("host_unusable_index_2m", "host unusable index 2M", "0..1", "index"),
    ("host_extfrag_index_2m", "host extfrag index 2M", "-1 or 0..1", "index"),
    ("host_unusable_index_1g", "host unusable index 1G", "0..1", "index"),
    ("host_extfrag_index_1g", "host extfrag index 1G", "-1 or 0..1", "index"),
    ("est_guest_zero_s", "est. guest zeroing", "s", "s"),
    ("est_host_zero_s", "est. host zeroing", "s", "s"),
    ("est_guest_fault_s", "est. guest fault overhead", "s", "s"),
    ("est_host_fault_s", "est. host fault overhead", "s", "s"),
    ("est_walk_s", "est. page-walk time", "s", "s"),
    ("est_setup_s", "est. memory set-up (zero + faults)", "s", "s"),
    ("est_total_s", "est. total (set-up + walks)", "s", "s"),
)

#: Metrics whose ratio to the baseline is reported (fragmentation indices are compared by value).
RATIO_METRICS: Final = tuple(m[0] for m in METRICS if m[3] != "index")


def run_row(run: Run) -> dict[str, Any]:
    """The comparison metrics of one run (exact counters, derived rates, estimated seconds)."""
    c = run.result.counters
    d = run.result.derived()
    est = estimate_run(run).to_dict()
    row: dict[str, Any] = {"trace": run.trace, "config": run.config.name, "virtualized": run.config.virtualized}
    for col, _label, _unit, _kind in METRICS:
        if col.startswith("est_"):
            row[col] = est[col[4:]]
        elif col in c:
            row[col] = c[col]
        elif col in d:
            row[col] = d[col]
        else:
            row[col] = None  # host indices of native runs
    for k in ("guest_zero_bytes_4k", "guest_zero_bytes_2m", "guest_zero_bytes_1g",
              "host_zero_bytes_4k", "host_zero_bytes_2m", "host_zero_bytes_1g"):
        row[k] = est[k]
    return row


def compare_runs(runs: Sequence[Run], baseline: str = DEFAULT_BASELINE) -> pl.DataFrame:
    """The comparison frame of already replayed runs.

    Args:
        runs: replays (as from :func:`memmodel.analysis.api.run`).
        baseline: config name the ``*_vs_base`` ratios divide by (per trace).

    Raises:
        ValueError: ``baseline`` is not among the runs' configs.
    """
    import polars as pl

    names = [r.config.name for r in runs]
    if baseline not in names:
        raise ValueError(f"baseline {baseline!r} is not among the compared configs: {', '.join(dict.fromkeys(names))}")
    rows = [run_row(r) for r in runs]
    base = {row["trace"]: row for row in rows if row["config"] == baseline}
    for row in rows:
        b = base.get(row["trace"])
        for col in RATIO_METRICS:
            v, bv = row[col], (b or {}).get(col)
            row[f"{col}_vs_base"] = (float(v) / float(bv)) if (v is not None and bv) else None
    schema: dict[str, Any] = {}
    for col, _l, _u, kind in METRICS:
        schema[col] = pl.Int64 if kind in ("int", "bytes") and col != "bloat_bytes" else pl.Float64
    for col in RATIO_METRICS:
        schema[f"{col}_vs_base"] = pl.Float64
    return pl.DataFrame(rows, schema_overrides=schema, infer_schema_length=None)


def compare(
    traces: TraceLike | Sequence[TraceLike],
    configs: ConfigLike | Sequence[ConfigLike] = DEFAULT_CONFIGS,
    baseline: str = DEFAULT_BASELINE,
    cpu: str | None = None,
    window: int | None = None,
) -> pl.DataFrame:
    """Replay traces through configs and return the comparison frame (one row per trace x config).

    Args:
        traces: trace paths or frames (see :func:`memmodel.analysis.api.run`).
        configs: preset names, TOML files or ModelConfig objects (default :data:`DEFAULT_CONFIGS`).
        baseline: the config name ratios are taken against.
        cpu: CPU preset overriding each config's.
        window: translations per time-series window (default: the engine's).
    """
    from memmodel.analysis.api import run

    kwargs: dict[str, Any] = {} if window is None else {"window": window}
    return compare_runs(run(traces, configs, cpu=cpu, **kwargs), baseline=baseline)


# --- JSON round trip -------------------------------------------------------------------------------


def runs_to_compare_json(runs: Iterable[Run]) -> str:
    """The ``compare --json`` document: ``simulate --json`` objects plus ``cost`` (the cost model
    used, per key) and ``estimates`` (seconds and zeroed bytes by size; ESTIMATES)."""
    out = []
    for r in runs:
        obj = r.to_json()
        obj["cost"] = CostModel.for_config(r.config).to_dict()
        obj["estimates"] = estimate_run(r).to_dict()
        out.append(obj)
    return json.dumps(out, indent=1) + "\n"


def runs_from_json(doc: str | Path | list[dict[str, Any]]) -> list[Run]:
    """Rebuild runs from a ``simulate --json`` / ``compare --json`` document (a path, text or list).

    The config comes back from the resolved ``config_toml`` (so ``[cost]`` overrides survive).
    """
    from memmodel.analysis.api import Run
    from memmodel.config import parse_config
    from memmodel.engine.result import SimResult
    from memmodel.errors import MemmodelError

    source = "<json>"
    data: Any = doc
    if isinstance(doc, Path) or (isinstance(doc, str) and not doc.lstrip().startswith(("[", "{"))):
        source = str(doc)
        try:
            data = Path(doc).read_text()
        except OSError as exc:
            raise MemmodelError(f"{source}: cannot read: {exc.strerror}") from None
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise MemmodelError(f"{source}: not JSON ({exc})") from None
    if isinstance(data, dict):
        data = [data]
    runs = []
    for i, obj in enumerate(data):
        try:
            raw = tomllib.loads(obj["config_toml"])
            cfg = parse_config(raw, f"{source}[{i}]")
            cfg = dataclasses.replace(cfg, cpu=obj.get("cpu") or cfg.cpu)
            hist = np.zeros(1 + max((int(k) for k in obj["walk_hist"]), default=0), dtype=np.int64)
            for k, v in obj["walk_hist"].items():
                hist[int(k)] = v
            result = SimResult(
                config_name=obj["config"],
                counters=obj["counters"],
                walk_hist=hist,
                series={k: np.asarray(v, dtype=np.int64) for k, v in obj["series"].items()},
                window=int(obj["window"]),
                host_nr_free=np.asarray(obj.get("host_nr_free", [0] * 19), dtype=np.int64),
                guest_nr_free=np.asarray(obj.get("guest_nr_free", [0] * 19), dtype=np.int64),
            )
        except (KeyError, TypeError, ValueError, tomllib.TOMLDecodeError) as exc:
            raise MemmodelError(
                f"{source}[{i}]: not a result of `memmodel simulate --json` / `compare --json` ({exc!r})"
            ) from None
        extra = {"memmodel_version": obj.get("memmodel_version", "?")}
        runs.append(Run(obj["trace"], obj.get("trace_identity", {}), cfg, result, extra))
    return runs
