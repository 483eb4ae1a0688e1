"""Baseline vs memctl side by side: one row per (trace, config) with metrics, estimated costs and ratios.

>>> from memmodel.analysis.compare import compare
>>> df = compare("traces/pchase.lackey.xz", baseline="baseline-thp")  # doctest: +SKIP

Counter columns are the exact docs/model.md section 6 values; ``est_*`` columns are estimates
(:mod:`memmodel.analysis.costs`); ``*_vs_base`` columns divide each metric by the baseline
config's value on the same trace (null where the baseline's value is 0 or missing).
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from memmodel.analysis.costs import CostModel, estimate_run, per_event
from memmodel.config.model import DEFAULT_COMPARE_CONFIGS

if TYPE_CHECKING:  # pragma: no cover
    import polars as pl

    from memmodel.analysis.api import ConfigLike, Run, TraceLike

#: Configs compared when none are given: native THP, the pairs declared in the memctl presets, and
#: baseline-thp with free page reporting (how much of memctl's footprint saving reporting recovers).
DEFAULT_CONFIGS: Final = DEFAULT_COMPARE_CONFIGS
#: The default baseline of the ``*_vs_base`` ratios (the pairing of each memctl config is its own).
DEFAULT_BASELINE: Final = "baseline-thp"
#: Host fragmentation values of the default fragmentation study of ``memmodel compare``.
DEFAULT_FRAGMENTATION: Final = (0.0, 0.9, 0.99)

#: The metrics of the comparison: (column, label, unit, format kind). Kinds: "rate", "int", "bytes",
#: "float", "index", "s" (seconds, an estimate), "ns" (nanoseconds, an estimate). Lifecycle metrics
#: (:data:`LIFECYCLE_METRICS`) are null where the engine does not report them, and reports drop a
#: row that is null for every run.
METRICS: Final = (
    ("l1_hit_rate", "L1 TLB hit rate", "fraction of translations", "rate"),
    ("l2_hit_rate", "L2 TLB hit rate", "fraction of translations", "rate"),
    ("walks", "page walks", "count", "int"),
    ("walk_loads", "walk loads", "page-table loads", "int"),
    ("loads_per_walk", "loads per walk", "loads", "float"),
    ("walk_loads_per_access", "walk loads per access", "loads", "float"),
    ("steady_walk_loads_per_access", "walk loads per access, 2nd half (steady state)", "loads", "float"),
    ("guest_faults", "guest faults", "count", "int"),
    ("host_faults", "host faults", "count", "int"),
    ("guest_zeroed_bytes", "guest zeroed", "bytes", "bytes"),
    ("host_zeroed_bytes", "host zeroed", "bytes", "bytes"),
    ("guest_zeroed_refault_bytes", "guest zeroed on re-fault", "bytes, of guest zeroed", "bytes"),
    ("host_zeroed_refault_bytes", "host zeroed on re-fault", "bytes, of host zeroed", "bytes"),
    ("host_backed_bytes", "host backed (cumulative)", "bytes", "bytes"),
    ("host_resident_peak_bytes", "host footprint at peak", "bytes", "bytes"),
    ("host_resident_bytes", "host footprint at end", "bytes", "bytes"),
    ("touched_bytes", "touched", "bytes", "bytes"),
    ("bloat_bytes", "bloat (backed - touched)", "bytes", "bytes"),
    ("tlb_flushes", "guest TLB flushes", "count", "int"),
    ("host_discards", "host discards (full flushes)", "count", "int"),
    ("host_unusable_index_2m", "host unusable index 2M", "0..1", "index"),
    ("host_extfrag_index_2m", "host extfrag index 2M", "-1 or 0..1", "index"),
    ("host_unusable_index_1g", "host unusable index 1G", "0..1", "index"),
    ("host_extfrag_index_1g", "host extfrag index 1G", "-1 or 0..1", "index"),
    ("est_guest_zero_s", "est. guest zeroing", "s", "s"),
    ("est_host_zero_s", "est. host zeroing", "s", "s"),
    ("est_guest_fault_s", "est. guest fault overhead", "s", "s"),
    ("est_host_fault_s", "est. host fault overhead", "s", "s"),
    ("est_setup_s", "est. set-up (one-time: zeroing + faults)", "s", "s"),
    ("est_walk_s", "est. page-walk time", "s", "s"),
    ("est_total_s", "est. total (set-up + walks)", "s", "s"),
    ("est_setup_ns_per_access", "est. set-up per access", "ns", "ns"),
    ("est_walk_ns_per_access", "est. walk time per access", "ns", "ns"),
    ("est_steady_walk_ns_per_access", "est. walk time per access, 2nd half (steady state)", "ns", "ns"),
    ("est_setup_ns_per_kinstr", "est. set-up per 1000 instructions", "ns", "ns"),
    ("est_walk_ns_per_kinstr", "est. walk time per 1000 instructions", "ns", "ns"),
)

#: Metrics that only engines with the memory lifecycle (unmaps, frees, reporting) produce.
LIFECYCLE_METRICS: Final = ("guest_zeroed_refault_bytes", "host_zeroed_refault_bytes", "host_resident_peak_bytes",
                            "host_resident_bytes", "tlb_flushes", "host_discards")
#: Lifecycle outputs that live in ``SimResult.extras`` (not canonical counters).
EXTRA_METRICS: Final = ("guest_zeroed_refault_bytes", "host_zeroed_refault_bytes")

#: Metrics whose ratio to the baseline is reported. Rates are left out: a ratio of two hit rates, one
#: of them a handful of hits, reads as a huge effect when it is none; fragmentation indices are
#: compared by value.
RATIO_METRICS: Final = tuple(m[0] for m in METRICS if m[3] not in ("index", "rate"))


@dataclass(frozen=True)
class Pairing:
    """A memctl run and the run of the baseline its config declares (``baseline = "..."``), one trace.

    Attributes:
        trace: the trace both replayed.
        memctl: the run of the config that declares the pairing.
        baseline: the run of the declared baseline on the same trace (same fragmentation study point).
    """

    trace: str
    memctl: Run
    baseline: Run


def declared_baseline(config: Any) -> str:
    """The baseline a config declares with its top-level ``baseline`` key ("" if none)."""
    return str(getattr(config, "baseline", "") or "")


def _base_name(run: Run) -> str:
    """The config name a run was made from (a fragmentation-study run carries its preset's name)."""
    return str(run.extra.get("base_config", run.config.name))


def pairings(runs: Sequence[Run]) -> list[Pairing]:
    """Every (memctl, declared baseline) pair present in ``runs``, in run order.

    A run pairs with the run of the same trace (and, for fragmentation-study runs, the same host
    fragmentation) whose config name is the ``baseline`` its config declares. Runs whose declared
    baseline was not compared are left out.
    """
    out = []
    for r in runs:
        want = declared_baseline(r.config)
        if not want:
            continue
        f = r.extra.get("fragmentation")
        for b in runs:
            if b.trace == r.trace and _base_name(b) == want and b.extra.get("fragmentation") == f:
                out.append(Pairing(r.trace, r, b))
                break
    return out


def steady_walk_loads_per_access(result: Any) -> float | None:
    """Walk loads per translation over the second half of the run's time series (None if empty).

    The first half holds the warm-up (cold TLBs, first-touch faults); the second half is what a
    longer run of the same program would keep paying per access.
    """
    s = result.series
    tr = np.asarray(s.get("translations", ()), dtype=np.int64)
    wl = np.asarray(s.get("walk_loads", ()), dtype=np.int64)
    if tr.size == 0 or tr[-1] == 0:
        return None
    mid = tr.size // 2
    t0, w0 = (int(tr[mid - 1]), int(wl[mid - 1])) if mid > 0 else (0, 0)
    dt = int(tr[-1]) - t0
    return (int(wl[-1]) - w0) / dt if dt > 0 else None


def lifecycle_value(result: Any, name: str) -> Any:
    """A lifecycle output of a result: a counter, or an extra (None when the engine has none)."""
    if name in EXTRA_METRICS:
        return (getattr(result, "extras", None) or {}).get(name)
    return result.counters.get(name)


def run_row(run: Run) -> dict[str, Any]:
    """The comparison metrics of one run (exact counters, derived rates, estimated seconds)."""
    c = run.result.counters
    d = run.result.derived()
    est = estimate_run(run)
    ed = est.to_dict()
    cost = CostModel.for_config(run.config)
    acc = c.get("accesses", 0)
    kinstr = c.get("instructions", 0) / 1000.0
    steady = steady_walk_loads_per_access(run.result)
    norm = {
        "est_setup_ns_per_access": per_event(est.setup_s, acc),
        "est_walk_ns_per_access": per_event(est.walk_s, acc),
        "est_steady_walk_ns_per_access": None if steady is None else steady * cost.walk_load_ns,
        "est_setup_ns_per_kinstr": per_event(est.setup_s, kinstr),
        "est_walk_ns_per_kinstr": per_event(est.walk_s, kinstr),
    }
    row: dict[str, Any] = {"trace": run.trace, "config": run.config.name, "virtualized": run.config.virtualized,
                           "paired_with": declared_baseline(run.config) or None}
    for col, _label, _unit, _kind in METRICS:
        if col in norm:
            row[col] = norm[col]
        elif col.startswith("est_"):
            row[col] = ed[col[4:]]
        elif col == "steady_walk_loads_per_access":
            row[col] = steady
        elif col in LIFECYCLE_METRICS:
            row[col] = lifecycle_value(run.result, col)
        elif col in c:
            row[col] = c[col]
        elif col in d:
            row[col] = d[col]
        else:
            row[col] = None  # host indices of native runs
    for k in ("guest_zero_bytes_4k", "guest_zero_bytes_2m", "guest_zero_bytes_1g",
              "host_zero_bytes_4k", "host_zero_bytes_2m", "host_zero_bytes_1g"):
        row[k] = ed[k]
    return row


def _ratio(v: Any, b: Any) -> float | None:
    return (float(v) / float(b)) if (v is not None and b) else None


def compare_runs(runs: Sequence[Run], baseline: str = DEFAULT_BASELINE) -> pl.DataFrame:
    """The comparison frame of already replayed runs.

    Columns: ``trace``, ``config``, ``virtualized``, ``paired_with`` (the declared baseline, or
    null), every metric of :data:`METRICS`, zeroed bytes by page size, then ``{metric}_vs_base``
    (divided by ``baseline`` on the same trace) and ``{metric}_vs_pair`` (divided by the declared
    baseline on the same trace; null for configs that declare none) for :data:`RATIO_METRICS`.
    Ratios are null where the divisor is 0 or missing.

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
    by_name = {(row["trace"], row["config"]): row for row in rows}
    for row in rows:
        b = by_name.get((row["trace"], baseline), {})
        p = by_name.get((row["trace"], row["paired_with"]), {}) if row["paired_with"] else {}
        for col in RATIO_METRICS:
            row[f"{col}_vs_base"] = _ratio(row[col], b.get(col))
            row[f"{col}_vs_pair"] = _ratio(row[col], p.get(col)) if p else None
    schema: dict[str, Any] = {"paired_with": pl.String}
    for col, _l, _u, kind in METRICS:
        schema[col] = pl.Int64 if kind in ("int", "bytes") and col != "bloat_bytes" else pl.Float64
    for col in RATIO_METRICS:
        schema[f"{col}_vs_base"] = pl.Float64
        schema[f"{col}_vs_pair"] = pl.Float64
    return pl.DataFrame(rows, schema_overrides=schema, infer_schema_length=None)


# --- the quotable summary ---------------------------------------------------------------------------


def format_bytes(n: float) -> str:
    """Bytes in binary units (``"12.5 MiB"``; negative values with a minus sign)."""
    sign = "−" if n < 0 else ""
    n = abs(n)
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{sign}{n / (1 << shift):,.1f} {unit}"
    return f"{sign}{n:,.0f} B"


def format_change(v: float, b: float) -> str:
    """The change from ``b`` to ``v`` in words a reader can quote.

    ``"−43.2 %"`` or ``"+12 %"`` for changes below 2×, ``"19,896×"`` from 2× up, ``"±0 %"`` when
    equal, ``"−100 %"`` when ``v`` is 0. Percentages keep two significant digits below 1 %.
    """
    if v == b:
        return "±0 %"
    if b == 0:
        return "new"
    r = v / b
    if r >= 2:
        return f"{r:,.{0 if r >= 10 else 1}f}×"
    pct = (r - 1) * 100
    sign = "−" if pct < 0 else "+"
    a = abs(pct)
    digits = 0 if a >= 10 else (1 if a >= 1 else 2)
    if a < 0.01:
        return f"{sign}{a:.2g} %"
    return f"{sign}{a:.{digits}f} %"


def summary_sentence(pair: Pairing, trace_name: str | None = None) -> str:
    """One plain-text sentence a reader can quote: what the memctl config changes against its baseline.

    ``"memctl-2m vs baseline-thp on pchase.lackey.xz: −12 % walk loads, 0 B guest zeroing
    (−44.0 MiB), host footprint −2.0 MiB at peak; est. −47 % memory set-up time."`` Lifecycle parts
    (footprint at peak, zeroing on re-fault, flushes) join when the engine reports them; the
    footprint falls back to host-backed bytes otherwise.
    """
    m, b = run_row(pair.memctl), run_row(pair.baseline)
    name = trace_name if trace_name is not None else Path(pair.trace).name
    parts = [f"{format_change(m['walk_loads'], b['walk_loads'])} walk loads"
             if m["walk_loads"] != b["walk_loads"] else f"same walk loads ({m['walk_loads']:,})"]
    gz, bgz = m["guest_zeroed_bytes"], b["guest_zeroed_bytes"]
    parts.append(f"{format_bytes(gz)} guest zeroing" + (f" ({format_bytes(gz - bgz)})" if gz != bgz else ""))
    peak, bpeak = m["host_resident_peak_bytes"], b["host_resident_peak_bytes"]
    if peak is not None and bpeak is not None:
        end, bend = m["host_resident_bytes"], b["host_resident_bytes"]
        fp = (f"same host footprint at peak ({format_bytes(peak)})" if peak == bpeak
              else f"host footprint {_signed_bytes(peak - bpeak)} at peak")
        if end is not None and bend is not None and end - bend != peak - bpeak:
            fp += f", {_signed_bytes(end - bend)} at end"
        parts.append(fp)
    elif m["host_backed_bytes"] == b["host_backed_bytes"]:
        parts.append(f"same host memory backed ({format_bytes(m['host_backed_bytes'])})")
    else:
        parts.append(f"host memory backed {_signed_bytes(m['host_backed_bytes'] - b['host_backed_bytes'])}")
    for col, what in (("host_zeroed_refault_bytes", "host zeroing on re-fault"),):
        if m[col] is not None and b[col] is not None and (m[col] or b[col]):
            parts.append(f"{format_bytes(m[col])} {what} ({_signed_bytes(m[col] - b[col])})")
    if m["host_discards"] is not None and b["host_discards"] is not None and (m["host_discards"] or b["host_discards"]):
        parts.append(f"{m['host_discards']:,} vs {b['host_discards']:,} host flushes")
    setup = f"est. {format_change(m['est_setup_s'], b['est_setup_s'])} memory set-up time"
    return (f"{pair.memctl.config.name} vs {pair.baseline.config.name} on {name}: "
            + ", ".join(parts) + f"; {setup}.")


def _signed_bytes(d: float) -> str:
    return "±0 B" if d == 0 else ("+" if d > 0 else "") + format_bytes(d)


# --- fragmentation study ----------------------------------------------------------------------------


def study_host_memory(runs: Sequence[Run]) -> int:
    """The bounded host share of a fragmentation study, in bytes: twice the most host memory any of
    ``runs`` (the unfragmented replays) held, rounded up to whole GiB, at least 1 GiB.

    A 64 GiB host at fragmentation f keeps (1 − f) × 64 GiB in whole 2 MiB blocks, far more than a
    trace needs, so f alone shows nothing; on a share twice the need, f = 0.9 leaves a fifth of the
    need in whole blocks and the host falls back to 4 KiB pages.
    """
    gib = 1 << 30
    need = 0
    for r in runs:
        c = r.result.counters
        # the footprint peak where the engine reports it (frees lower the need), else all backed bytes
        need = max(need, int(c.get("host_resident_peak_bytes") or c.get("host_backed_bytes") or 0))
    return max(gib, -(-2 * need // gib) * gib)


def fragmentation_study(
    trace: TraceLike,
    runs: Sequence[Run],
    fractions: Sequence[float] = DEFAULT_FRAGMENTATION,
    window: int | None = None,
    progress: Any = None,
) -> list[Run]:
    """Replay the pairs whose host uses pages larger than 4 KiB at every host fragmentation ``f``, on
    a bounded host share (:func:`study_host_memory`).

    Args:
        trace: the trace of ``runs`` (it is read once more for the whole study).
        runs: the unfragmented runs of that trace (their pairings pick the configs).
        fractions: host fragmentation values in [0, 1).
        window: translations per time-series window (default: the engine's).
        progress: as in :func:`memmodel.analysis.api.run`.

    Returns:
        One run per (config, f), f-major; each run's ``extra`` holds ``fragmentation``,
        ``host_memory`` and ``base_config`` (the config's own name). Empty when no pair qualifies.
    """
    from memmodel.analysis.api import run as _run

    pairs = [p for p in pairings(runs) if p.memctl.config.virtualized and p.memctl.config.host.page_shift > 12]
    if not pairs or not fractions:
        return []
    for f in fractions:
        if not 0.0 <= f < 1.0:
            raise ValueError(f"host fragmentation {f!r} is outside [0, 1)")
    configs: list[Any] = []
    for p in pairs:
        for c in (p.baseline.config, p.memctl.config):
            if c not in configs:
                configs.append(c)
    host = study_host_memory([r for p in pairs for r in (p.memctl, p.baseline)])
    todo = []
    for f in fractions:
        for c in configs:
            host_side = dataclasses.replace(c.host, fragmentation=float(f), memory=host)
            todo.append(dataclasses.replace(c, name=f"{c.name} @ f={f:g}", host=host_side))
    kwargs: dict[str, Any] = {} if window is None else {"window": window}
    out = _run(trace, todo, progress=progress, **kwargs)
    k = 0
    for f in fractions:
        for c in configs:
            out[k].extra.update({"fragmentation": float(f), "host_memory": host, "base_config": c.name,
                                 "study": "fragmentation"})
            k += 1
    return out


def compare(
    traces: TraceLike | Sequence[TraceLike],
    configs: ConfigLike | Sequence[ConfigLike] = DEFAULT_CONFIGS,
    baseline: str = DEFAULT_BASELINE,
    cpu: str | None = None,
    window: int | None = None,
    cost: str | Path | Mapping[str, float] | None = None,
) -> pl.DataFrame:
    """Replay traces through configs and return the comparison frame (one row per trace x config).

    Args:
        traces: trace paths or frames (see :func:`memmodel.analysis.api.run`).
        configs: preset names, TOML files or ModelConfig objects (default :data:`DEFAULT_CONFIGS`).
        baseline: the config name ``*_vs_base`` ratios are taken against.
        cpu: CPU preset overriding each config's.
        window: translations per time-series window (default: the engine's).
        cost: a ``[cost]`` TOML file or table applied to every config (its keys win over the configs').
    """
    from memmodel.analysis.api import run

    kwargs: dict[str, Any] = {} if window is None else {"window": window}
    return compare_runs(run(traces, configs, cpu=cpu, cost=cost, **kwargs), baseline=baseline)


# --- JSON round trip -------------------------------------------------------------------------------


def runs_to_compare_json(runs: Iterable[Run]) -> str:
    """The ``compare --json`` document: ``simulate --json`` objects plus ``cost`` (the cost model
    used, per key) and ``estimates`` (seconds and zeroed bytes by size; ESTIMATES)."""
    out = []
    for r in runs:
        obj = r.to_json()
        obj["cost"] = CostModel.for_config(r.config).to_dict()
        obj["estimates"] = estimate_run(r).to_dict()
        extras = getattr(r.result, "extras", None)
        if extras and "extras" not in obj:
            obj["extras"] = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in extras.items()}
        study = {k: r.extra[k] for k in _STUDY_KEYS if k in r.extra}
        if study:
            obj["study"] = study
        out.append(obj)
    return json.dumps(out, indent=1) + "\n"


#: ``Run.extra`` keys of fragmentation-study runs kept in the JSON document.
_STUDY_KEYS: Final = ("study", "fragmentation", "host_memory", "base_config")


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
            more: dict[str, Any] = {}
            if "extras" in obj and any(f.name == "extras" for f in dataclasses.fields(SimResult)):
                more["extras"] = dict(obj["extras"])
            result = SimResult(
                **more,
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
        extra.update({k: v for k, v in (obj.get("study") or {}).items() if k in _STUDY_KEYS})
        runs.append(Run(obj["trace"], obj.get("trace_identity", {}), cfg, result, extra))
    return runs
