"""Parameter sweeps (memmodel.analysis.sweep): each test is named after the rule it checks.

Traces are written to tmp_path and workers read them by path (``.parquet`` arrays: kind, gva, size).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from memmodel.analysis.api import simulate
from memmodel.analysis.sweep import (
    Point,
    apply_override,
    build_points,
    make_executor,
    parse_grid,
    parts_dir,
    sweep,
)
from memmodel.cli import app
from memmodel.engine.result import COUNTER_NAMES
from memmodel.trace import write_store


@pytest.fixture(autouse=True)
def _hermetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """dask-jobqueue writes ~/.config/dask on import: keep HOME and DASK_CONFIG in tmp."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DASK_CONFIG", str(tmp_path / "home" / ".config" / "dask"))


def _write_trace(path: Path, seed: int = 1, n: int = 20_000, span_pages: int = 1 << 13) -> Path:
    rng = np.random.default_rng(seed)
    pages = np.where(rng.random(n) < 0.7, rng.integers(0, 150, n), rng.integers(0, span_pages, n))
    gva = (pages.astype(np.uint64) << np.uint64(12)) + rng.integers(0, 4096, n).astype(np.uint64)
    write_store(path, {"kind": rng.integers(0, 4, n).astype(np.uint8), "gva": gva, "size": np.full(n, 8, np.uint16)})
    return path


def _write_wide_trace(path: Path) -> Path:
    """One store every 2 MiB over 1.5 GiB: with 2M guest pages it needs more than 1G of guest memory."""
    gva = np.arange(768, dtype=np.uint64) << np.uint64(21)
    write_store(path, {"kind": np.full(768, 2, np.uint8), "gva": gva, "size": np.full(768, 8, np.uint16)})
    return path


def test_grid_values_are_toml_scalars_or_plain_strings() -> None:
    grid = parse_grid(["host.fragmentation=0,0.3", "cpu=skylake,zen4", "guest.page_size=4K,2M",
                       "host.prealloc=true,false", "guest.memory=\"1G\""])
    assert grid["host.fragmentation"] == [0, 0.3]
    assert grid["cpu"] == ["skylake", "zen4"]
    assert grid["guest.page_size"] == ["4K", "2M"]
    assert grid["host.prealloc"] == [True, False]
    assert grid["guest.memory"] == ["1G"]


def test_overrides_edit_the_raw_toml_before_validation() -> None:
    raw = {"tlb": {"l1": [{"entries": 64, "ways": 4}]}}
    apply_override(raw, "tlb.l1.0.entries", 128)
    apply_override(raw, "host.fragmentation", 0.5)
    assert raw == {"tlb": {"l1": [{"entries": 128, "ways": 4}]}, "host": {"fragmentation": 0.5}}
    cfg = Point("t", "baseline-4k", (("host.fragmentation", 0.5), ("cpu", "zen4"), ("guest.levels", 5))).resolve()
    assert (cfg.host.fragmentation, cfg.cpu, cfg.guest.levels) == (0.5, "zen4", 5)


def test_points_are_the_cross_product_in_deterministic_order() -> None:
    pts = build_points(["a", "b"], ["c1", "c2"], {"x": [1, 2], "y": ["p"]})
    assert [(p.trace, p.config, p.overrides) for p in pts[:3]] == [
        ("a", "c1", (("x", 1), ("y", "p"))), ("a", "c1", (("x", 2), ("y", "p"))), ("a", "c2", (("x", 1), ("y", "p")))]
    assert len(pts) == 8


def test_part_key_is_a_stable_hash_of_the_parameters() -> None:
    a = Point("t.parquet", "baseline-4k", (("host.fragmentation", 0.3),))
    assert a.key() == Point("t.parquet", "baseline-4k", (("host.fragmentation", 0.3),)).key()
    assert a.key() == "8e153c8c3aa0484b3727"  # fixed across processes and runs (parts are found again)
    assert a.key() != Point("t.parquet", "baseline-4k", (("host.fragmentation", 0.6),)).key()


def test_local_pool_and_dask_cluster_give_byte_identical_tables_equal_to_simulate(tmp_path: Path) -> None:
    t1 = _write_trace(tmp_path / "t1.parquet", seed=1)
    t2 = _write_trace(tmp_path / "t2.parquet", seed=2)
    grid = parse_grid(["host.fragmentation=0,0.999", "cpu=skylake,zen4"])
    points = build_points([str(t1), str(t2)], ["baseline-4k", "memctl-2m"], grid)
    # serial first: the driver writes the replay-ready (compact) form into the cache the workers then read
    serial = sweep(points, None, tmp_path / "serial.parquet", grid_keys=list(grid))
    outs = {}
    for engine in ("local", "dask"):
        with make_executor(engine, workers=2) as ex:
            res = sweep(points, ex, tmp_path / f"{engine}.parquet", grid_keys=list(grid))
        assert not res.failures and res.computed == len(points)
        outs[engine] = (tmp_path / f"{engine}.parquet").read_bytes()
    assert outs["local"] == outs["dask"] == (tmp_path / "serial.parquet").read_bytes()

    frame = pl.read_parquet(tmp_path / "local.parquet")
    assert frame.columns[:4] == ["trace", "config", "host.fragmentation", "cpu"]
    assert frame.height == len(points)
    for row, p in zip(frame.iter_rows(named=True), points, strict=True):
        assert (row["trace"], row["config"]) == (p.trace, p.config)
        ref = simulate(p.trace, [p.resolve()]).row(0, named=True)
        assert {k: row[k] for k in COUNTER_NAMES} == {k: ref[k] for k in COUNTER_NAMES}, p.describe()
    assert serial.frame.equals(frame)


def test_failed_points_are_reported_others_kept_and_a_rerun_skips_done_points(tmp_path: Path) -> None:
    trace = _write_wide_trace(tmp_path / "wide.parquet")
    # guest.memory=1G runs out of memory; guest.levels=3 is an invalid override
    points = build_points([str(trace)], ["baseline-thp"],
                          {"guest.memory": ["1G", "16G"], "guest.levels": [4, 3]})
    seen = []
    res = sweep(points, None, tmp_path / "r.parquet", on_failure=seen.append)
    assert res.frame.height == 1 and res.computed == 4
    assert [f.point.overrides for f in res.failures] == [
        (("guest.memory", "1G"), ("guest.levels", 4)), (("guest.memory", "1G"), ("guest.levels", 3)),
        (("guest.memory", "16G"), ("guest.levels", 3))]
    assert "OutOfMemoryError" in res.failures[0].error and "guest" in res.failures[0].error
    assert "ConfigError" in res.failures[1].error and "guest.levels" in res.failures[1].error
    assert len(seen) == 3
    assert len(list(parts_dir(tmp_path / "r.parquet").glob("*.parquet"))) == 1
    assert pl.read_parquet(tmp_path / "r.parquet")["guest.memory"].to_list() == ["16G"]

    again = sweep(points, None, tmp_path / "r.parquet")
    assert again.skipped == 1 and again.computed == 3 and len(again.failures) == 3
    assert again.frame.equals(res.frame)


def test_sweep_cli_reports_failures_with_parameters_and_exit_code(tmp_path: Path) -> None:
    trace = _write_trace(tmp_path / "t.parquet", n=5000)
    out = tmp_path / "r.parquet"
    runner = CliRunner()
    args = ["sweep", str(trace), "-c", "baseline-4k", "--grid", "guest.levels=4,3", "-o", str(out), "--workers", "1"]
    res = runner.invoke(app, args)
    assert res.exit_code == 1
    assert "failed: " in res.output and "guest.levels=3" in res.output
    assert pl.read_parquet(out).height == 1
    res = runner.invoke(app, [*args[:5], "guest.levels=4", *args[6:]])
    assert res.exit_code == 0, res.output
    assert "0 computed, 1 reused" in res.output


def test_slurm_script_is_generated_without_submitting(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["sweep", "t.parquet", "-c", "baseline-4k", "--slurm-script",
                                   "--slurm-queue", "short",
                                   "--slurm-account", "proj1", "--slurm-cores", "8", "--slurm-memory", "32GB",
                                   "--slurm-walltime", "02:00:00", "--slurm-prologue", "source venv/bin/activate"])
    assert res.exit_code == 0, res.output
    script = res.output
    for line in ("#SBATCH -p short", "#SBATCH -A proj1", "#SBATCH --cpus-per-task=8", "#SBATCH -t 02:00:00",
                 "source venv/bin/activate"):
        assert line in script
    assert "distributed.cli.dask_worker" in script and "--nworkers 8" in script and "--nthreads 1" in script


def test_unknown_engine_is_a_user_error(tmp_path: Path) -> None:
    trace = _write_trace(tmp_path / "t.parquet", n=100)
    res = CliRunner().invoke(app, ["sweep", str(trace), "-c", "baseline-4k", "--engine", "ray"])
    assert res.exit_code == 2 and "local, dask, slurm" in res.output


def test_workers_read_lackey_traces_by_path_and_match_simulate(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    lines = ["==1== Lackey, an example Valgrind tool"]
    for _ in range(3000):
        page = int(rng.integers(0, 64)) if rng.random() < 0.8 else int(rng.integers(0, 1 << 12))
        addr = (0x10000000 + page * 4096 + int(rng.integers(0, 4096)))
        kind = "ILSM"[int(rng.integers(0, 4))]
        lines.append(f"{'I ' if kind == 'I' else ' ' + kind} {addr:08x},{int(rng.choice([1, 4, 8]))}")
    trace = tmp_path / "t.lackey"
    trace.write_text("\n".join(lines) + "\n")
    points = build_points([str(trace)], ["baseline-4k", "memctl-2m"])
    with make_executor("local", workers=2) as ex:
        res = sweep(points, ex, tmp_path / "r.parquet")
    assert not res.failures
    ref = simulate(str(trace), ["baseline-4k", "memctl-2m"])
    assert res.frame.select(list(COUNTER_NAMES)).equals(ref.select(list(COUNTER_NAMES)))
