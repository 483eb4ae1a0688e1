"""Issue 11, sweeps: unsigned 64-bit seeds end to end, misspelt grid keys before any point runs, part
keys from the trace's identity, Ctrl-C, and workers that exit with their driver."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner, Result

from memmodel.cli import app

DATA = Path(__file__).resolve().parent.parent / "data"
TINY = DATA / "conformance" / "tiny.lackey"
runner = CliRunner()


def assert_clean_error(res: Result, *needles: str) -> None:
    assert res.exit_code not in (0, None), res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output
    for n in needles:
        assert n in res.output, (n, res.output)


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    t = tmp_path / "t.lackey"
    t.write_bytes(TINY.read_bytes())
    return t


@pytest.mark.slow
def test_sweep_with_seeds_at_and_above_2_63_works_end_to_end(trace: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.parquet"
    seeds = [2**63, 2**64 - 1]
    res = runner.invoke(app, ["sweep", str(trace), "-c", "baseline-4k", "--grid", f"host.seed={seeds[0]},{seeds[1]}",
                              "--grid", "host.fragmentation=0.5", "--workers", "1", "-o", str(out)])
    assert res.exit_code == 0, res.output
    frame = pl.read_parquet(out)
    assert frame.schema["host.seed"] == pl.UInt64
    assert frame["host.seed"].to_list() == seeds


def test_misspelt_grid_key_is_found_before_any_point_runs(trace: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.parquet"
    res = runner.invoke(app, ["sweep", str(trace), "-c", "baseline-4k", "--grid", "host.fragmentaton=0,0.5",
                              "-o", str(out)])
    assert_clean_error(res, "host.fragmentaton", "did you mean 'fragmentation'", "no point was run")
    assert not out.exists() and not (tmp_path / "r.parquet.parts").exists()


def test_grid_index_past_the_end_of_an_array_is_found_before_any_point_runs(trace: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["sweep", str(trace), "-c", "baseline-4k", "--grid", "tlb.l1.9.entries=64",
                              "-o", str(tmp_path / "r.parquet")])
    assert_clean_error(res, "tlb.l1.9", "no point was run")


def test_a_bad_trace_line_fails_its_point_with_file_and_line(tmp_path: Path) -> None:
    from memmodel.analysis.sweep import build_points, sweep

    bad = tmp_path / "bad.lackey"
    bad.write_text("I  04000000,4\nhello from the client\n L 04001000,8\n")
    res = sweep(build_points([str(bad)], ["baseline-4k"]), None, tmp_path / "r.parquet")
    assert len(res.failures) == 1
    assert res.failures[0].error.startswith(f"TraceError: {bad}:2:"), res.failures[0].error


@pytest.mark.slow
def test_part_keys_do_not_depend_on_how_the_trace_path_is_spelt(trace: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "r.parquet"
    res = runner.invoke(app, ["sweep", str(trace), "-c", "baseline-4k", "--workers", "1", "-o", str(out)])
    assert res.exit_code == 0, res.output
    first = out.read_bytes()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    res = runner.invoke(app, ["sweep", "sub/../t.lackey", "-c", "baseline-4k", "--workers", "1", "-o", "r.parquet"])
    assert res.exit_code == 0, res.output
    assert "0 computed, 1 reused" in res.output
    assert pl.read_parquet(out)["trace"].to_list() == ["sub/../t.lackey"]  # the row names the path as given now
    trace.write_text(trace.read_text() + " L  04001000,8\n")  # other content: other identity, recomputed
    res = runner.invoke(app, ["sweep", str(trace), "-c", "baseline-4k", "--workers", "1", "-o", str(out)])
    assert res.exit_code == 0 and "1 computed, 0 reused" in res.output, res.output
    assert out.read_bytes() != first


def test_ctrl_c_in_a_sweep_says_what_was_kept(trace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import memmodel.analysis.sweep as sw

    real = sw.as_completed

    def first_then_ctrl_c(futures: object) -> object:
        for fut in real(futures):  # type: ignore[arg-type]
            yield fut
            raise KeyboardInterrupt

    monkeypatch.setattr(sw, "as_completed", first_then_ctrl_c)
    out = tmp_path / "r.parquet"
    t0 = time.monotonic()
    res = runner.invoke(app, ["sweep", str(trace), "-c", "baseline-4k", "--grid", "host.fragmentation=0,0.1,0.2,0.3",
                              "--workers", "1", "-o", str(out)])
    assert res.exit_code == 130 and "Traceback" not in res.output, res.output
    line = [ln for ln in res.output.splitlines() if ln.startswith("interrupted:")]
    assert line == [f"interrupted: memmodel sweep of 4 point(s) was stopped by Ctrl-C; 1 finished point(s) are kept "
                    f"in {tmp_path / 'r.parquet.parts'}/ and reused by a re-run of the same command; {out} was not "
                    "written"]
    assert not out.exists()
    assert time.monotonic() - t0 < 60  # the 3 queued points were dropped, not run first


DRIVER = textwrap.dedent("""
    import sys, time
    from memmodel.analysis.sweep import make_executor

    def worker_pid():
        import os
        return os.getpid()

    if __name__ == "__main__":
        with make_executor("local", workers=1) as ex:
            print(ex.submit(worker_pid).result(), flush=True)
            ex.submit(time.sleep, 600)
            time.sleep(600)
""")


@pytest.mark.slow
def test_sweep_workers_exit_when_the_driver_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    driver = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        assert driver.stdout is not None
        worker = int(driver.stdout.readline())
        os.kill(worker, 0)  # the worker runs
        driver.send_signal(signal.SIGKILL)
        driver.wait(10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                os.kill(worker, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            os.kill(worker, signal.SIGKILL)
            pytest.fail("the sweep worker outlived its killed driver by 15 s")
    finally:
        if driver.poll() is None:
            driver.kill()
