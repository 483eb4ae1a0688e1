"""Parameter sweeps: the cross product of traces x configs x grid values, on any executor.

A **point** is ``(trace path, config spec, overrides)``; :func:`run_point` turns it into one result row
(trace, config, every grid key, every MODEL.md section 6 counter exactly, derived metrics). The driver
(:func:`sweep`) is written against :class:`concurrent.futures.Executor`, so the same code runs on

* a local process pool (default; ``ProcessPoolExecutor`` with the ``forkserver``/``spawn`` context),
* Dask distributed (``Client.get_executor()``): a ``LocalCluster``, an existing scheduler, or a SLURM
  allocation through dask-jobqueue (``docs/slurm.md``).

Invariants:

* Workers read traces from **paths** (a shared filesystem on a cluster); arrays are never pickled to
  them. Only the small point description goes out and one row (a dict of scalars) comes back.
* **Overrides** edit the raw TOML document (:func:`memmodel.config.load.load_raw`) before validation,
  by dotted key (``host.fragmentation``; a numeric part indexes an array of tables, ``tlb.l1.0.entries``);
  the key ``cpu`` is the CPU override of :func:`memmodel.config.load.parse_config`.
* **Incremental results**: with an output path ``OUT``, every finished point is written at once as
  ``OUT.parts/<key>.parquet``, ``key`` a stable hash of the point's parameters (:meth:`Point.key`).
  A failed point is reported with its parameters and loses nothing else; a re-run skips every point
  whose part exists. At the end the parts of the sweep's points are merged into ``OUT``.
* **Determinism**: rows are in cross-product order (trace, config, then grid values in the order
  given), the schema is fixed by the sweep, and no timestamp, hostname or timing is stored, so ``OUT``
  is byte-identical whatever the engine, worker count or completion order.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memmodel.errors import ConfigError, MemmodelError

if TYPE_CHECKING:  # pragma: no cover
    import polars as pl

    from memmodel.config import ModelConfig

#: Columns every sweep row starts with, before the grid columns.
LEAD_COLUMNS = ("trace", "config")
#: Columns that follow the grid columns, before the counters.
INFO_COLUMNS = ("config_name", "cpu", "virtualized")
ENGINES = ("local", "dask", "slurm")


class SweepError(MemmodelError):
    """A sweep cannot start (bad grid, missing engine): names what to fix."""


# ================================ points and overrides ==============================================
def parse_value(text: str) -> Any:
    """A grid value as a TOML scalar (``0.3`` -> float, ``4`` -> int, ``true`` -> bool), else the string."""
    try:
        return tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        return text.strip()


def parse_grid(specs: Sequence[str]) -> dict[str, list[Any]]:
    """``["host.fragmentation=0,0.3", "cpu=skylake,zen4"]`` -> ``{key: [values...]}`` (order kept).

    Raises:
        SweepError: a spec without ``=``, an empty key or value list, or a key given twice.
    """
    grid: dict[str, list[Any]] = {}
    for spec in specs:
        key, sep, values = spec.partition("=")
        key = key.strip()
        if not sep or not key or not values.strip():
            raise SweepError(f"--grid {spec!r}: expected KEY=V1,V2,... (e.g. host.fragmentation=0,0.3)")
        if key in grid:
            raise SweepError(f"--grid key {key!r} is given twice; give all its values in one --grid")
        grid[key] = [parse_value(v) for v in values.split(",") if v.strip()]
    return grid


def apply_override(raw: dict[str, Any], key: str, value: Any, source: str = "<config>") -> None:
    """Set dotted ``key`` to ``value`` in a raw TOML document, creating tables as needed.

    A numeric part indexes an array of tables (``tlb.l1.0.entries``). Validation is left to
    :func:`memmodel.config.load.parse_config`, which names the key if the result is invalid.
    """
    parts = key.split(".")
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        where = ".".join(parts[: i + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"{source}: override {key!r}: {where!r} needs an index < {len(node)}")
            node = node[int(part)]
        elif isinstance(node, dict):
            node = node.setdefault(part, {})
        else:
            raise ConfigError(f"{source}: override {key!r}: {where!r} is not a table")
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise ConfigError(f"{source}: override {key!r}: needs an index < {len(node)}")
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigError(f"{source}: override {key!r}: the parent is not a table")


@dataclass(frozen=True)
class Point:
    """One sweep point: a trace path, a config (preset name or TOML path) and grid overrides.

    Attributes:
        trace: the trace path as the user gave it (workers open it; it must be on a shared filesystem).
        config: a VM preset name or a config TOML path.
        overrides: ``(dotted key, value)`` pairs in grid order; ``cpu`` is the CPU override.
    """

    trace: str
    config: str
    overrides: tuple[tuple[str, Any], ...] = ()

    def key(self) -> str:
        """A stable 20-hex-digit hash of the parameters (names the point's part file)."""
        doc = json.dumps([self.trace, self.config, [[k, v] for k, v in self.overrides]], sort_keys=True)
        return hashlib.sha256(doc.encode()).hexdigest()[:20]

    def describe(self) -> str:
        """``trace=... config=... key=value ...`` for error reports."""
        extra = " ".join(f"{k}={v!r}" for k, v in self.overrides)
        return f"trace={self.trace} config={self.config}" + (f" {extra}" if extra else "")

    def resolve(self) -> ModelConfig:
        """The validated config of this point (overrides applied to the raw TOML)."""
        from memmodel.config.load import load_raw, parse_config

        raw, source = load_raw(self.config)
        cpu: str | None = None
        for k, v in self.overrides:
            if k == "cpu":
                if not isinstance(v, str):
                    raise ConfigError(f"{source}: override 'cpu' must be a CPU preset name, got {v!r}")
                cpu = v
            else:
                apply_override(raw, k, v, source)
        return parse_config(raw, source=source, cpu=cpu)


def build_points(traces: Sequence[str | Path], configs: Sequence[str | Path],
                 grid: Mapping[str, Sequence[Any]] | None = None) -> list[Point]:
    """The cross product in deterministic order: trace-major, then config, then grid values as given."""
    grid = dict(grid or {})
    keys = list(grid)
    combos = list(itertools.product(*(grid[k] for k in keys))) if keys else [()]
    return [Point(str(t), str(c), tuple(zip(keys, combo, strict=True)))
            for t in traces for c in configs for combo in combos]


# ================================ the worker ========================================================
def run_point(point: Point, window: int = 10_000) -> dict[str, Any]:
    """Replay one point; the result row as a dict of plain scalars (picklable, small).

    Raises whatever the replay raises (ConfigError for a bad override, OutOfMemoryError, TraceError);
    the driver reports it with the point's parameters.
    """
    from memmodel.analysis.api import run, runs_to_frame

    cfg = point.resolve()
    runs = run(point.trace, [cfg], window=window)
    result = runs_to_frame(runs).row(0, named=True)
    row: dict[str, Any] = {"trace": point.trace, "config": point.config}
    row.update(point.overrides)
    row["config_name"] = result.pop("config")
    result.pop("trace")
    row.update(result)
    return row


def run_point_safe(point: Point, window: int = 10_000) -> tuple[bool, Any]:
    """:func:`run_point` that returns ``(True, row)`` or ``(False, "ErrorType: message")``.

    What the driver submits: a model error is data, not a worker crash, so it travels back as text
    (no exception pickling, no worker error logs); a crashed worker still surfaces as the future's
    exception.
    """
    try:
        return True, run_point(point, window)
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"


# ================================ schema and parts ==================================================
def _grid_dtype(values: Sequence[Any]) -> Any:
    import polars as pl

    if all(isinstance(v, bool) for v in values):
        return pl.Boolean
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return pl.Int64
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return pl.Float64
    return pl.String


def result_schema(grid_keys: Sequence[str], points: Sequence[Point]) -> dict[str, Any]:
    """The column -> dtype map of a sweep's result table (fixed by the sweep, not by the data)."""
    import polars as pl

    from memmodel.engine.result import COUNTER_NAMES

    schema: dict[str, Any] = {"trace": pl.String, "config": pl.String}
    fixed = {"config_name": pl.String, "cpu": pl.String, "virtualized": pl.Boolean}
    for k in COUNTER_NAMES:
        fixed[k] = pl.Float64 if "_index_" in k else pl.Int64
    for k in _derived_names():
        fixed[k] = pl.Float64
    for key in grid_keys:  # grid columns right after trace/config, in grid order
        if key in fixed:  # e.g. cpu: the resolved value is the override
            schema[key] = fixed.pop(key)
        elif key not in schema:
            values = [v for p in points for k, v in p.overrides if k == key]
            schema[key] = _grid_dtype(values)
    schema.update(fixed)
    return schema


def _derived_names() -> list[str]:
    from memmodel.engine.result import COUNTER_NAMES, derived_metrics

    zero: dict[str, Any] = dict.fromkeys(COUNTER_NAMES, 0)
    return list(derived_metrics(zero))


def rows_to_frame(rows: Sequence[Mapping[str, Any]], schema: Mapping[str, Any]) -> pl.DataFrame:
    """Rows -> a frame with exactly ``schema`` (grid values cast, e.g. int 0 in a float column)."""
    import polars as pl

    data = {name: [_cast(r.get(name), dtype) for r in rows] for name, dtype in schema.items()}
    return pl.DataFrame(data, schema=dict(schema))


def _cast(value: Any, dtype: Any) -> Any:
    import polars as pl

    if value is None:
        return None
    if dtype == pl.Float64:
        return float(value)
    if dtype == pl.String:
        return value if isinstance(value, str) else json.dumps(value)
    return value


def parts_dir(out: Path) -> Path:
    """Where the per-point parts of ``out`` live: ``OUT.parts/`` next to it."""
    return out.with_name(out.name + ".parts")


def _write_atomic(frame: pl.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame.write_parquet(tmp, statistics=True)
    os.replace(tmp, path)


def _write_part(row: Mapping[str, Any], path: Path) -> None:
    """One finished point as a one-row Parquet file, its grid values kept as JSON text (type-exact)."""
    import polars as pl

    frame = pl.DataFrame({"row": [json.dumps(row, sort_keys=False)]}, schema={"row": pl.String})
    _write_atomic(frame, path)


def _read_part(path: Path) -> dict[str, Any]:
    import polars as pl

    row: dict[str, Any] = json.loads(pl.read_parquet(path)["row"][0])
    return row


# ================================ the driver =======================================================
@dataclass(frozen=True)
class Failure:
    """A point that did not produce a row: its parameters and the error (type: message)."""

    point: Point
    error: str


@dataclass
class SweepResult:
    """The outcome of :func:`sweep`.

    Attributes:
        frame: one row per successful point, in cross-product order.
        failures: points that failed, in cross-product order.
        skipped: points whose part already existed (not recomputed).
        computed: points computed by this call.
    """

    frame: pl.DataFrame
    failures: list[Failure] = field(default_factory=list)
    skipped: int = 0
    computed: int = 0


def sweep(
    points: Sequence[Point],
    executor: Executor | None = None,
    out: str | Path | None = None,
    *,
    grid_keys: Sequence[str] | None = None,
    window: int = 10_000,
    progress: Callable[[int, int], None] | None = None,
    on_failure: Callable[[Failure], None] | None = None,
) -> SweepResult:
    """Run every point on ``executor`` and collect one row per point.

    Args:
        points: the points (see :func:`build_points`); their order is the row order.
        executor: any ``concurrent.futures.Executor``; None runs the points in this process.
        out: a ``.parquet`` path: parts go to ``OUT.parts/`` as points finish, points with a part are
            skipped, and the merged table of every successful point is written to ``out``.
        grid_keys: grid column names in order (default: the override keys of the points, first seen).
        window: translations per time-series window (does not change counters).
        progress: ``progress(done, total)`` after each finished, skipped or failed point.
        on_failure: called with each failure as it happens (e.g. to print it).

    Returns:
        The rows of the successful points (failures listed separately, never raised).
    """
    if grid_keys is None:
        grid_keys = list(dict.fromkeys(k for p in points for k, _ in p.overrides))
    schema = result_schema(grid_keys, points)
    out_path = Path(out) if out is not None else None
    pdir = parts_dir(out_path) if out_path is not None else None
    if pdir is not None:
        pdir.mkdir(parents=True, exist_ok=True)
    rows: dict[int, dict[str, Any]] = {}
    failures: dict[int, Failure] = {}
    todo: list[int] = []
    total = len(points)
    done = 0
    for i, p in enumerate(points):
        if pdir is not None and (pdir / f"{p.key()}.parquet").is_file():
            rows[i] = _read_part(pdir / f"{p.key()}.parquet")
            done += 1
        else:
            todo.append(i)
    skipped = done
    if progress is not None:
        progress(done, total)

    def finish(i: int, ok: bool, value: Any) -> None:
        nonlocal done
        done += 1
        if not ok:
            failures[i] = Failure(points[i], str(value))
            if on_failure is not None:
                on_failure(failures[i])
        else:
            row: dict[str, Any] = value
            rows[i] = row
            if pdir is not None:
                _write_part(row, pdir / f"{points[i].key()}.parquet")
        if progress is not None:
            progress(done, total)

    if executor is None:
        for i in todo:
            finish(i, *run_point_safe(points[i], window))
    else:
        futures: dict[Future[tuple[bool, Any]], int] = {}
        for i in todo:
            futures[executor.submit(run_point_safe, points[i], window)] = i
        for fut in as_completed(futures):
            exc = fut.exception()  # the worker died (killed, out of host memory...)
            if exc is not None:
                finish(futures[fut], False, f"worker failed: {type(exc).__name__}: {exc}")
            else:
                finish(futures[fut], *fut.result())

    frame = rows_to_frame([rows[i] for i in sorted(rows)], schema)
    if out_path is not None:
        _write_atomic(frame, out_path)
    return SweepResult(frame, [failures[i] for i in sorted(failures)], skipped, len(todo))


# ================================ engines ============================================================
def _need_dist() -> None:
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise SweepError(
            "--engine dask needs Dask distributed: pip install 'memmodel[dist]' "
            "(dask[distributed] and dask-jobqueue)"
        ) from None


@contextlib.contextmanager
def make_executor(engine: str = "local", workers: int | None = None, scheduler: str | None = None,
                  slurm: Mapping[str, Any] | None = None, slurm_jobs: int = 1) -> Iterator[Executor]:
    """An executor for ``engine``, shut down on exit.

    Args:
        engine: "local" (process pool), "dask" (LocalCluster, or ``scheduler``), "slurm"
            (dask-jobqueue SLURMCluster with ``slurm`` options, scaled to ``slurm_jobs`` jobs).
        workers: worker processes (local pool or LocalCluster); default: CPU count.
        scheduler: address of a running Dask scheduler (``tcp://host:port``), for "dask".
    """
    if engine not in ENGINES:
        raise SweepError(f"unknown engine {engine!r}; allowed: {', '.join(ENGINES)}")
    n = workers or os.cpu_count() or 1
    if engine == "local":
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        with ProcessPoolExecutor(max_workers=n, mp_context=ctx) as pool:
            yield pool
        return
    _need_dist()
    from distributed import Client, LocalCluster

    if engine == "slurm":
        from dask_jobqueue import SLURMCluster

        with SLURMCluster(**slurm_options(**(slurm or {}))) as cluster:
            cluster.scale(jobs=slurm_jobs)
            with Client(cluster) as client:
                yield client.get_executor()
        return
    if scheduler is not None:
        with Client(scheduler) as client:
            yield client.get_executor()
        return
    with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        yield client.get_executor()


def slurm_options(queue: str | None = None, account: str | None = None, cores: int = 4, processes: int | None = None,
                  memory: str = "16GB", walltime: str = "01:00:00", python: str | None = None,
                  prologue: Sequence[str] = (), extra: Sequence[str] = ()) -> dict[str, Any]:
    """Keyword arguments of ``dask_jobqueue.SLURMCluster`` for memmodel workers.

    One SLURM job per ``cores`` cores, running ``processes`` (default ``cores``) single-threaded Dask
    worker processes (the kernels are numba, single-threaded: one process per core). ``memory`` is the
    job's memory (split among its processes). ``prologue`` lines run before the workers (e.g.
    ``source .venv/bin/activate``); ``extra`` are additional ``#SBATCH`` directives.
    """
    opts: dict[str, Any] = {
        "cores": cores,
        "processes": processes or cores,
        "memory": memory,
        "walltime": walltime,
        "job_name": "memmodel-sweep",
        "scheduler_options": {"dashboard_address": None},
        "job_script_prologue": list(prologue),
        "job_extra_directives": list(extra),
    }
    if queue:
        opts["queue"] = queue
    if account:
        opts["account"] = account
    if python:
        opts["python"] = python
    return opts


def slurm_job_script(**options: Any) -> str:
    """The sbatch script ``SLURMCluster(**slurm_options(**options)).job_script()`` (nothing is submitted).

    The script's scheduler address is the one of a throw-away local scheduler; the real one is filled
    in when a sweep starts the cluster.
    """
    _need_dist()
    from dask_jobqueue import SLURMCluster

    with SLURMCluster(**slurm_options(**options)) as cluster:
        script: str = cluster.job_script()
    return script
