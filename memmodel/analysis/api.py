"""The Python API: replay traces through configs and get polars DataFrames.

>>> import memmodel
>>> df = memmodel.simulate("traces/pchase.lackey.xz", ["baseline-thp", "memctl-2m"])  # doctest: +SKIP

A trace is read once and every config replays the same batches, so comparing N configs costs one
parse plus N engine passes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from memmodel.config import ModelConfig, load_config
from memmodel.engine import Replay, SimResult, derived_metrics
from memmodel.engine.replay import DEFAULT_WINDOW
from memmodel.errors import MemmodelError, TraceError

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
        from memmodel._version import __version__

        r = self.result
        return {
            "trace": self.trace,
            "config": self.config.name,
            "counters": r.counters,
            "derived": derived_metrics(r.counters),
            # outputs beyond the canonical counters (docs/model.md): zeroing by cause
            "extras": dict(r.extras),
            "cpu": self.config.cpu,
            "virtualized": self.config.virtualized,
            "walk_hist": {str(i): int(n) for i, n in enumerate(r.walk_hist) if n},
            "window": r.window,
            "series": {k: v.tolist() for k, v in r.series.items()},
            "host_nr_free": [int(x) for x in r.host_nr_free],
            "guest_nr_free": [int(x) for x in r.guest_nr_free],
            "trace_identity": self.trace_identity,
            "config_toml": self.config.to_toml(),
            # estimates (seconds; never counters) with the config's cost model and that model's keys
            "cost": _cost_dict(self.config),
            "estimates": _estimates(self),
            "memmodel_version": __version__,
        }


CostLike = str | Path | Mapping[str, float]  # a [cost] TOML file, or a table of [cost] keys


def _cost_dict(config: ModelConfig) -> dict[str, float]:
    from memmodel.analysis.costs import CostModel

    return CostModel.for_config(config).to_dict()


def _estimates(run: Run) -> dict[str, float]:
    from memmodel.analysis.costs import estimate_run

    return estimate_run(run).to_dict()


def resolve_configs(configs: ConfigLike | Sequence[ConfigLike], cpu: str | None = None,
                    cost: CostLike | None = None) -> list[ModelConfig]:
    """Preset names, TOML paths or ModelConfig objects -> resolved configs.

    Args:
        configs: one config or a sequence of them.
        cpu: a CPU preset overriding each config's ``cpu``.
        cost: a ``[cost]`` TOML file (``--cost FILE``) or table whose keys override every config's
            ``[cost]`` (see :mod:`memmodel.analysis.costs`).
    """
    from memmodel.analysis.costs import CostModel, read_cost_file, with_cost

    if isinstance(configs, str | Path | ModelConfig):
        configs = [configs]
    table: dict[str, float] | None = None
    if isinstance(cost, str | Path):
        table = read_cost_file(cost)
    elif cost is not None:
        CostModel.from_table(cost, source="cost")  # validates keys and values
        table = {k: float(v) for k, v in cost.items()}
    out = []
    for spec in configs:
        if isinstance(spec, ModelConfig):
            if cpu is not None and cpu != spec.cpu:
                raise ValueError("cpu override needs config names or files, not ModelConfig objects")
            cfg = spec
        else:
            cfg = load_config(spec, cpu=cpu)
        out.append(with_cost(cfg, table) if table else cfg)
    return out


#: Identities of trace files already hashed in this process, by what ``stat`` says of the file.
_IDENTITIES: dict[tuple[Any, ...], dict[str, Any]] = {}
#: Whether a trace file is sampled, by the same key (reading a store's metadata costs ~1 ms per replay).
_SAMPLED: dict[tuple[Any, ...], bool] = {}


def _stat_key(trace: str | Path) -> tuple[Any, ...] | None:
    """What identifies a file's content without reading it: device, inode, size, modification and change
    times in nanoseconds (None when it cannot be stat-ed or is not a regular file). Device and inode name
    the file whatever path reaches it (no path resolution: it cost more than the stat)."""
    try:
        st = os.stat(trace)
    except (OSError, ValueError):
        return None
    if not S_ISREG(st.st_mode):
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


#: ``key`` of :func:`_per_file` when the caller has not stat-ed the file.
_UNKNOWN: Final[Any] = object()


def _per_file(memo: dict[tuple[Any, ...], Any], trace: str | Path, compute: Callable[[Any], Any],
              key: tuple[Any, ...] | None = _UNKNOWN) -> Any:
    """``compute(trace)``, once per process while the file's :func:`_stat_key` is unchanged. Bounded: past
    256 files the memo starts again (a long session over many files recomputes, it never grows).

    Args:
        memo: the memo of ``compute``.
        trace: the file.
        compute: what to compute of it.
        key: the file's :func:`_stat_key` when the caller already has it (:func:`run` stats each file once:
            a stat and a ``Path.is_file`` per replay cost ~10 us of a ~0.8 ms replay of a short trace).
    """
    if key is _UNKNOWN:
        key = _stat_key(trace)
    if key is None:
        return compute(trace)
    if key not in memo:
        if len(memo) >= 256:
            memo.clear()
        memo[key] = compute(trace)
    return memo[key]


def cached_trace_identity(trace: str | Path, key: tuple[Any, ...] | None = _UNKNOWN) -> dict[str, Any]:
    """:func:`memmodel.trace.trace_identity` of a file, hashed once per process while the file is unchanged.

    A sweep or a notebook replays one store many times; hashing it each time cost 20 ms of a 0.24 s replay
    of a 22 MB store (cProfile). The key is the file's device, inode, size and modification and change
    times in nanoseconds (as ``git`` trusts its index): rewriting the file changes at least the change
    time, so a stale identity cannot be returned for new content. The identity's ``path`` is the one
    given (a second path to the same file gets the first path's identity copied with its own path).

    Args:
        trace: the file.
        key: its :func:`_stat_key`, when the caller has it (see :func:`_per_file`).
    """
    # (a file that cannot be stat-ed is not memoised: the reader names it)
    return {**_per_file(_IDENTITIES, trace, _trace_identity, key), "path": str(trace)}


def _trace_identity(trace: str | Path) -> dict[str, Any]:
    from memmodel.trace import trace_identity

    return trace_identity(trace)


def _batches(trace: TraceLike, batch_rows: int, key: tuple[Any, ...] | None = _UNKNOWN,
             ) -> tuple[str, dict[str, Any], Iterator[Mapping[str, np.ndarray]]]:
    if isinstance(trace, str | Path):
        from memmodel.trace.store import iter_batches

        return (str(trace), cached_trace_identity(trace, key),
                iter_batches(trace, ("kind", "gva", "size"), batch_rows))
    # a polars/pandas frame or a mapping of arrays
    cols = {name: np.asarray(trace[name]) for name in ("kind", "gva", "size")}
    if cols["kind"].dtype.kind in "OUS":
        codes = {"I": 0, "L": 1, "S": 2, "M": 3}
        cols["kind"] = np.array([codes[str(k)] for k in cols["kind"]], dtype=np.uint8)
    return "<frame>", {"path": "<frame>", "records": int(cols["kind"].shape[0])}, iter([cols])


def _replay_batches(trace: TraceLike, identity: dict[str, Any], batches: Iterator[Mapping[str, np.ndarray]],
                    batch_rows: int, packed: bool = False) -> Iterator[Mapping[str, np.ndarray]]:
    """The compact form of a trace's batches (:mod:`memmodel.trace.compact`), cached for store files;
    with ``packed``, in the packed form the engine's specialised loops read (a ``"meta"`` column)."""
    from memmodel.trace.compact import cached_compact_batches, compact_batches, pack

    if identity.get("kind") == "store" and identity.get("sha256"):
        return cached_compact_batches(trace, identity["sha256"], batch_rows, packed=packed)  # type: ignore[arg-type]
    return (pack(b) if packed else b for b in compact_batches(batches))


def _pages_hint(identity: Mapping[str, Any]) -> int | None:
    """The distinct pages an earlier replay of this store translated (kept in its replay cache entry), so
    the replays size their per-page tables at once; None when unknown (not a store, or never counted)."""
    from memmodel.trace.compact import pages_hint

    if identity.get("kind") == "store" and identity.get("sha256"):
        return pages_hint(str(identity["sha256"]))
    return None


def _remember_pages(identity: Mapping[str, Any], replays: Sequence[Replay]) -> None:
    """Keep in the store's replay cache entry the distinct pages its complete replays translated (any
    config that keeps per-page tables counts the same pages), for :func:`_pages_hint`."""
    from memmodel.trace.compact import remember_pages

    if identity.get("kind") != "store" or not identity.get("sha256"):
        return
    for r in replays:
        pages = r.pages_translated
        if pages is not None:
            remember_pages(str(identity["sha256"]), pages)
            return


def _drop_replay_cache(identity: Mapping[str, Any]) -> None:
    from memmodel.trace.compact import drop_cached

    if identity.get("kind") == "store" and identity.get("sha256"):
        drop_cached(str(identity["sha256"]))


#: The label every number replayed from a sampled trace carries.
SAMPLED_LABEL: Final = "replay of samples, not an estimate of the program"


class SampledTraceError(MemmodelError):
    """A sampled trace was given to a command that prints exact counters."""


def is_sampled_trace(trace: str | Path, key: tuple[Any, ...] | None = _UNKNOWN) -> bool:
    """Whether ``trace`` holds samples: a store file marked ``sampled`` or a raw perf mem text trace.

    Args:
        trace: the file.
        key: its :func:`_stat_key`, when the caller has it (see :func:`_per_file`).
    """
    if key is _UNKNOWN:
        key = _stat_key(trace)
    if key is None:
        return False  # not a regular file: the reader reports it
    return bool(_per_file(_SAMPLED, trace, _is_sampled_file, key))


def _is_sampled_file(trace: str | Path) -> bool:
    from memmodel.trace.store import detect_format, is_parquet, read_metadata

    if is_parquet(trace):
        try:
            return bool(read_metadata(trace).get("sampled"))
        except MemmodelError:
            return False
    try:
        return detect_format(trace).startswith("perf")
    except MemmodelError:
        return False


def run(
    traces: TraceLike | Sequence[TraceLike],
    configs: ConfigLike | Sequence[ConfigLike],
    cpu: str | None = None,
    window: int = DEFAULT_WINDOW,
    batch_rows: int = 1 << 20,
    progress: Any = None,
    cost: CostLike | None = None,
    allow_sampled: bool = False,
    on_batch: Callable[[int, Mapping[str, np.ndarray], Sequence[Replay]], None] | None = None,
) -> list[Run]:
    """Replay every trace through every config; one :class:`Run` per (trace, config), trace-major.

    Args:
        traces: paths (Parquet store files or raw lackey/perf traces) or frames with kind/gva/size.
        configs: preset names, TOML files or ModelConfig objects.
        cpu: CPU preset overriding each config's ``cpu``.
        window: translations per time-series window.
        batch_rows: records per batch read from the trace (bounds memory).
        progress: optional callable ``progress(records_done)`` called after each batch.
        cost: a ``[cost]`` TOML file or table applied to every config (see :func:`resolve_configs`).
        allow_sampled: replay sampled traces (perf mem, ``memmodel sample``) too; their counters are a
            replay of samples, not an estimate of the program (use :mod:`memmodel.analysis.estimate`).
        on_batch: optional callable ``on_batch(trace_index, batch, replays)`` called after every config
            replayed a batch (in the compact form of :mod:`memmodel.trace.compact`: ``kind``, ``gva``,
            ``size``, ``icount``); the replays then record outcomes, which it must drain with
            :meth:`Replay.take_outcomes` (``compare --mrc`` reads its curves from them this way).

    Raises:
        SampledTraceError: a trace is sampled and ``allow_sampled`` is false.
    """
    if isinstance(traces, str | Path) or not isinstance(traces, Sequence):
        traces = [traces]
    # each file is stat-ed once, for both memos (sampled, identity)
    keys = [_stat_key(trace) if isinstance(trace, str | Path) else None for trace in traces]
    if not allow_sampled:
        for trace, key in zip(traces, keys, strict=True):
            if isinstance(trace, str | Path) and is_sampled_trace(trace, key):
                raise SampledTraceError(
                    f"{trace}: is a sampled trace (perf mem or `memmodel sample`): replaying its samples does not "
                    "give the program's counters; run `memmodel estimate` for estimates with intervals, or pass "
                    "--allow-sampled (allow_sampled=True) to see the replay of the samples, labelled as such"
                )
    cfgs = resolve_configs(configs, cpu, cost)
    runs: list[Run] = []
    for ti, trace in enumerate(traces):
        name, identity, batches = _batches(trace, batch_rows, keys[ti])
        # the replay-ready form: I records as counts (cached per store file); on_batch consumers read
        # only its kind/gva/size (the translations) next to the replays' outcomes
        batches = _replay_batches(trace, identity, batches, batch_rows, packed=on_batch is None)
        hint = _pages_hint(identity)
        replays = [Replay(cfg, window, outcomes=on_batch is not None, pages_hint=hint) for cfg in cfgs]
        done = 0
        for batch in batches:
            if "meta" in batch:  # packed (nobody else reads the batch): the engine reads it as is
                try:
                    for r in replays:
                        r.feed_packed(batch)
                except ValueError as exc:  # an unknown kind code or a lost escape: damaged bytes
                    _drop_replay_cache(identity)
                    raise TraceError(f"{name}: damaged records in the store or its cached replay form ({exc}); "
                                     "the cache entry is removed: run again, and re-ingest the trace if this "
                                     "repeats") from None
                if progress is not None:
                    from memmodel.trace.compact import META_ICOUNT_SHIFT

                    done += int(batch["meta"].shape[0]) + int((batch["meta"] >> META_ICOUNT_SHIFT).sum())
                    done += int(batch["esc_icount"].sum())
                    progress(done)
                continue
            icount = batch.get("icount")
            for r in replays:
                r.feed(batch["kind"], batch["gva"], batch["size"], icount)
            if on_batch is not None:
                on_batch(ti, batch, replays)
            if progress is not None:  # the record count of a compact batch costs a pass over its icount
                done += int(batch["kind"].shape[0]) + (int(icount.sum()) if icount is not None else 0)
                progress(done)
        runs.extend(Run(name, identity, cfg, r.result()) for cfg, r in zip(cfgs, replays, strict=True))
        if hint is None:
            _remember_pages(identity, replays)
    return runs


def runs_to_frame(runs: Iterable[Run]) -> pl.DataFrame:
    """One row per run: trace, config, cpu, every counter (exact), derived metrics, then the
    estimated seconds of :data:`ESTIMATE_COLUMNS` (with each config's cost model; ESTIMATES)."""
    import polars as pl

    from memmodel.analysis.costs import estimate_run
    from memmodel.engine.result import COUNTER_NAMES, WIDE_COUNTERS

    rows = []
    for r in runs:
        row: dict[str, Any] = {"trace": r.trace, "config": r.config.name, "cpu": r.config.cpu,
                               "virtualized": r.config.virtualized}
        for k in COUNTER_NAMES:
            row[k] = r.result.counters.get(k)
        row.update(derived_metrics(r.result.counters))
        est = estimate_run(r).to_dict()
        row.update({col: est[col[4:]] for col in ESTIMATE_COLUMNS})
        rows.append(row)
    schema: dict[str, Any] = {"trace": pl.String, "config": pl.String, "cpu": pl.String,
                              "virtualized": pl.Boolean}
    for k in COUNTER_NAMES:
        schema[k] = pl.Float64 if "_index_" in k else (pl.Int128 if k in WIDE_COUNTERS else pl.Int64)
    for k in ESTIMATE_COLUMNS:
        schema[k] = pl.Float64
    return pl.DataFrame(rows, schema_overrides=schema, infer_schema_length=None)


#: Estimated-seconds columns of :func:`runs_to_frame` (and of sweep results), in this order.
ESTIMATE_COLUMNS: Final = ("est_guest_zero_s", "est_host_zero_s", "est_guest_fault_s", "est_host_fault_s",
                           "est_setup_s", "est_walk_s", "est_total_s")


def simulate(
    traces: TraceLike | Sequence[TraceLike],
    configs: ConfigLike | Sequence[ConfigLike],
    cpu: str | None = None,
    window: int = DEFAULT_WINDOW,
    cost: CostLike | None = None,
    allow_sampled: bool = False,
) -> pl.DataFrame:
    """Replay traces through configs and return one row per (trace, config) as a polars DataFrame.

    Counter columns are the model's exact counters (the four host fragmentation indices are null
    for native configs); derived columns (hit rates, loads per walk, MPKI) follow, then the
    estimated seconds ``est_*_s`` (:data:`ESTIMATE_COLUMNS`, estimates with each config's cost
    model, overridden by ``cost``).
    """
    return runs_to_frame(run(traces, configs, cpu=cpu, window=window, cost=cost, allow_sampled=allow_sampled))


def runs_to_json(runs: Iterable[Run]) -> str:
    """The ``--json`` document: a JSON array with one object per (trace, config)."""
    return json.dumps([r.to_json() for r in runs], indent=1, sort_keys=False) + "\n"
