"""Parameter sweeps: the cross product of traces x configs x grid values, on any executor.

A **point** is ``(trace path, config spec, overrides)``; :func:`run_point` turns it into one result row
(trace, config, every grid key, every docs/model.md section 6 counter exactly, derived metrics). The driver
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
  ``OUT.parts/<key>.parquet``, ``key`` a stable hash of the point's parameters (:meth:`Point.key`),
  the trace taken by its identity (the sha256 of its bytes, :func:`trace_key`), not by how its path was
  spelt: ``t.parquet`` and ``./t.parquet`` share parts; a trace rewritten with other content does not.
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

from memmodel.errors import ConfigError, ConfigKeyError, MemmodelError

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
    except (tomllib.TOMLDecodeError, ValueError):  # ValueError: an integer of thousands of digits
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
                raise ConfigKeyError(f"{source}: override {key!r}: {where!r} needs an index < {len(node)}")
            node = node[int(part)]
        elif isinstance(node, dict):
            node = node.setdefault(part, {})
        else:
            raise ConfigKeyError(f"{source}: override {key!r}: {where!r} is not a table")
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise ConfigKeyError(f"{source}: override {key!r}: needs an index < {len(node)}")
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigKeyError(f"{source}: override {key!r}: the parent is not a table")


@dataclass(frozen=True)
class Point:
    """One sweep point: a trace path, a config (preset name or TOML path) and grid overrides.

    Attributes:
        trace: the trace path as the user gave it (workers open it; it must be on a shared filesystem).
        config: a VM preset name or a config TOML path.
        overrides: ``(dotted key, value)`` pairs in grid order; ``cpu`` is the CPU override.
        trace_id: the trace's identity for :meth:`key` (:func:`trace_key`; ``""``: the path as given).
    """

    trace: str
    config: str
    overrides: tuple[tuple[str, Any], ...] = ()
    trace_id: str = ""

    def key(self) -> str:
        """A stable 20-hex-digit hash of the parameters (names the point's part file)."""
        doc = json.dumps([self.trace_id or self.trace, self.config, [[k, v] for k, v in self.overrides]],
                         sort_keys=True)
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


def trace_key(trace: str | Path) -> str:
    """The identity part keys use: ``sha256:<hex>`` of the trace file's bytes (the resolved path if unreadable).

    Hashing reads the file once on the driver (each worker hashes it again for the run's provenance);
    a store file written by a deterministic ingest hashes the same after a re-ingest.
    """
    from memmodel.trace.source import file_sha256

    try:
        return "sha256:" + file_sha256(trace)["sha256"]
    except OSError:
        return "path:" + os.path.realpath(trace)


def build_points(traces: Sequence[str | Path], configs: Sequence[str | Path],
                 grid: Mapping[str, Sequence[Any]] | None = None) -> list[Point]:
    """The cross product in deterministic order: trace-major, then config, then grid values as given.

    Each point carries its trace's identity (:func:`trace_key`) so that part keys do not depend on
    how the trace path was spelt.
    """
    grid = dict(grid or {})
    keys = list(grid)
    combos = list(itertools.product(*(grid[k] for k in keys))) if keys else [()]
    ids = {str(t): trace_key(t) for t in traces}
    return [Point(str(t), str(c), tuple(zip(keys, combo, strict=True)), ids[str(t)])
            for t in traces for c in configs for combo in combos]


def validate_points(points: Sequence[Point]) -> None:
    """Resolve every distinct (config, overrides) before any point runs: a key that does not exist
    (a misspelt ``--grid`` key, an index past an array's end) stops the sweep at once.

    Invalid *values* (``guest.levels=3``) are left to the points, which report them as failures with
    their parameters while the other points run.

    Raises:
        SweepError: naming the config, the key and the allowed keys.
    """
    import copy

    from memmodel.config.load import load_raw, parse_config

    raws: dict[str, tuple[dict[str, Any], str]] = {}
    seen: set[str] = set()
    for p in points:
        sig = json.dumps([p.config, [[k, v] for k, v in p.overrides]], sort_keys=True, default=str)
        if sig in seen:
            continue
        seen.add(sig)
        try:
            if p.config not in raws:
                raws[p.config] = load_raw(p.config)
            raw, source = copy.deepcopy(raws[p.config][0]), raws[p.config][1]
            cpu: str | None = None
            for k, v in p.overrides:
                if k == "cpu":
                    cpu = v if isinstance(v, str) else None
                else:
                    apply_override(raw, k, v, source)
            parse_config(raw, source=source, cpu=cpu)
        except ConfigKeyError as exc:
            raise SweepError(f"{exc} (a --grid key or config key that does not exist; no point was run)") from None
        except ConfigError:
            continue  # a bad value: that point fails alone, with its parameters


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
def _grid_dtype(values: Sequence[Any], key: str = "") -> Any:
    import polars as pl

    if all(isinstance(v, bool) for v in values):
        return pl.Boolean
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        # seeds are unsigned 64-bit everywhere (config: 0 <= seed < 2^64); other ints as Int64 unless
        # a value needs the unsigned range
        if (key.endswith(".seed") or any(v >= 1 << 63 for v in values)) and all(0 <= v < 1 << 64 for v in values):
            return pl.UInt64
        if all(-(1 << 63) <= v < 1 << 63 for v in values):
            return pl.Int64
        return pl.String
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return pl.Float64
    return pl.String


def result_schema(grid_keys: Sequence[str], points: Sequence[Point]) -> dict[str, Any]:
    """The column -> dtype map of a sweep's result table (fixed by the sweep, not by the data)."""
    import polars as pl

    from memmodel.engine.result import COUNTER_NAMES, WIDE_COUNTERS

    schema: dict[str, Any] = {"trace": pl.String, "config": pl.String}
    fixed = {"config_name": pl.String, "cpu": pl.String, "virtualized": pl.Boolean}
    for k in COUNTER_NAMES:
        fixed[k] = pl.Float64 if "_index_" in k else (pl.Int128 if k in WIDE_COUNTERS else pl.Int64)
    for k in _derived_names():
        fixed[k] = pl.Float64
    from memmodel.analysis.api import ESTIMATE_COLUMNS

    for k in ESTIMATE_COLUMNS:  # estimated seconds (each point's cost model), after the exact columns
        fixed[k] = pl.Float64
    for key in grid_keys:  # grid columns right after trace/config, in grid order
        if key in fixed:  # e.g. cpu: the resolved value is the override
            schema[key] = fixed.pop(key)
        elif key not in schema:
            values = [v for p in points for k, v in p.overrides if k == key]
            schema[key] = _grid_dtype(values, key)
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


def _write_atomic(frame: pl.DataFrame, path: Path, what: str = "sweep table") -> None:
    from memmodel.io import atomic_output

    with atomic_output(path, what) as tmp:
        frame.write_parquet(tmp, statistics=True)


def _write_part(row: Mapping[str, Any], path: Path) -> None:
    """One finished point as a one-row Parquet file, its grid values kept as JSON text (type-exact)."""
    import polars as pl

    frame = pl.DataFrame({"row": [json.dumps(row, sort_keys=False)]}, schema={"row": pl.String})
    _write_atomic(frame, path, "sweep part")


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
    validate_points(points)  # a misspelt key stops the sweep before any point runs
    schema = result_schema(grid_keys, points)
    # every grid value must fit its column now, not after hours of replays when the table is built
    try:
        rows_to_frame([dict(p.overrides) for p in points], {k: schema[k] for k in grid_keys if k in schema})
    except Exception as err:
        raise SweepError(f"the grid values do not fit one table column each: {err}") from None
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
            row = _read_part(pdir / f"{p.key()}.parquet")
            row.update(trace=p.trace, config=p.config)  # the part may come from another spelling of the path
            rows[i] = row
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
        pool = ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=worker_init, initargs=(os.getpid(),))
        try:
            yield pool
        except BaseException:
            # Ctrl-C or an error on the driver: drop the queued points and stop the running ones now
            # (a plain shutdown would first run every queued point)
            procs = _workers(pool)  # shutdown forgets them
            pool.shutdown(wait=False, cancel_futures=True)
            _terminate(procs)
            raise
        pool.shutdown(wait=True)
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


def worker_init(driver_pid: int) -> None:
    """Initializer of local pool workers: they exit with their driver, and leave Ctrl-C to it.

    * SIGINT is ignored: Ctrl-C in a terminal reaches the whole process group; the driver stops the
      workers itself and prints one line (the workers would print a traceback each).
    * On Linux, ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` kills the worker when its parent exits (the
      forkserver, which exits with the driver, or the driver itself with ``spawn``).
    * A watchdog thread checks every second that the driver still lives (not a zombie) and exits the
      worker otherwise: the portable net under ``kill -9`` of the driver.
    """
    import signal
    import sys
    import threading
    import time

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            pr_set_pdeathsig = 1
            libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watchdog still covers it

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if not _alive(driver_pid):
                os._exit(1)

    threading.Thread(target=watch, name="memmodel-driver-watchdog", daemon=True).start()


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (a killed driver not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def _workers(pool: Any) -> list[Any]:
    """The worker processes of a ``ProcessPoolExecutor`` (its private ``_processes`` map)."""
    procs = getattr(pool, "_processes", None)
    return list(procs.values()) if isinstance(procs, dict) else []


def _terminate(procs: list[Any]) -> None:
    """Stop worker processes at once (SIGTERM, then SIGKILL after 2 s)."""
    for proc in procs:
        with contextlib.suppress(Exception):
            proc.terminate()
    for proc in procs:
        with contextlib.suppress(Exception):
            proc.join(2.0)
            if proc.is_alive():
                proc.kill()


def slurm_options(queue: str | None = None, account: str | None = None, cores: int = 4, processes: int | None = None,
                  memory: str = "16GB", walltime: str = "01:00:00", python: str | None = None,
                  prologue: Sequence[str] = (), extra: Sequence[str] = ()) -> dict[str, Any]:
    """Keyword arguments of ``dask_jobqueue.SLURMCluster`` for memmodel workers.

    One SLURM job per ``cores`` cores, running ``processes`` (default ``cores``) single-threaded Dask
    worker processes (the engine core is single-threaded C: one process per core). ``memory`` is the
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
