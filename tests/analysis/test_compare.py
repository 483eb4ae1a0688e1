"""The comparison frame, its JSON round trip and the compare/report/calibrate commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from memmodel.analysis.api import run, simulate
from memmodel.analysis.compare import (
    DEFAULT_CONFIGS,
    RATIO_METRICS,
    compare,
    compare_runs,
    runs_from_json,
    runs_to_compare_json,
)
from memmodel.cli import app

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "traces" / "stream.lackey.xz"


def _reader_ready() -> bool:
    import memmodel.trace as t

    return hasattr(t, "iter_batches") and hasattr(t, "trace_identity")


needs_trace = pytest.mark.skipif(not (SHIPPED.is_file() and _reader_ready()),
                                 reason="shipped trace or trace reader not available yet")


def _frame(n: int = 40_000, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    gva = 0x5555_0000_0000 + np.concatenate([rng.integers(0, 64 << 20, n // 2), rng.integers(0, 3 << 30, n - n // 2)])
    return {"kind": rng.integers(0, 4, n).astype(np.uint8), "gva": gva.astype(np.uint64),
            "size": rng.choice([1, 4, 8, 16], n).astype(np.uint16)}


@pytest.fixture(scope="module")
def runs():
    return run(_frame(), list(DEFAULT_CONFIGS), window=5000)


def test_default_configs_are_native_baselines_and_memctl() -> None:
    assert DEFAULT_CONFIGS == ("native-thp", "baseline-4k", "baseline-thp", "memctl-4k", "memctl-2m")


def _assert_compare_equals_simulate(cmp, sim) -> None:
    assert cmp["config"].to_list() == sim["config"].to_list()
    for col in ("walks", "walk_loads", "guest_faults", "host_faults", "guest_zeroed_bytes", "host_zeroed_bytes",
                "host_backed_bytes", "touched_bytes"):
        assert cmp[col].to_list() == sim[col].to_list(), col
    for col in ("l1_hit_rate", "l2_hit_rate", "loads_per_walk", "bloat_bytes", "host_unusable_index_2m",
                "host_extfrag_index_2m", "host_unusable_index_1g", "host_extfrag_index_1g"):
        assert cmp[col].to_list() == sim[col].to_list(), col


def test_compare_numbers_equal_the_simulate_counters() -> None:
    frame = _frame()
    _assert_compare_equals_simulate(compare(frame), simulate(frame, list(DEFAULT_CONFIGS)))


@needs_trace
def test_compare_numbers_equal_the_simulate_counters_on_a_shipped_trace() -> None:
    _assert_compare_equals_simulate(compare(str(SHIPPED)), simulate(str(SHIPPED), list(DEFAULT_CONFIGS)))


def test_ratios_divide_by_the_baseline_of_the_same_trace(runs) -> None:
    df = compare_runs(runs, baseline="baseline-4k")
    base = df.filter(df["config"] == "baseline-4k").row(0, named=True)
    for row in df.iter_rows(named=True):
        for col in RATIO_METRICS:
            if base[col]:
                assert row[f"{col}_vs_base"] == pytest.approx(row[col] / base[col]), col
            else:
                assert row[f"{col}_vs_base"] is None
    assert base["walks_vs_base"] == 1.0


def test_baseline_must_be_a_compared_config(runs) -> None:
    with pytest.raises(ValueError, match="baseline 'nope'"):
        compare_runs(runs, baseline="nope")


def test_native_runs_have_no_host_fragmentation_indices(runs) -> None:
    row = compare_runs(runs).row(0, named=True)
    assert row["config"] == "native-thp" and row["host_unusable_index_2m"] is None


def test_json_round_trip_gives_the_same_comparison(runs, tmp_path: Path) -> None:
    p = tmp_path / "r.json"
    p.write_text(runs_to_compare_json(runs))
    again = runs_from_json(p)
    assert compare_runs(again).equals(compare_runs(runs))
    doc = json.loads(p.read_text())
    assert doc[0]["estimates"]["total_s"] == pytest.approx(compare_runs(runs)["est_total_s"][0])
    assert set(doc[0]["cost"]) >= {"zero_gbps_4k", "walk_load_ns"}


def test_report_command_writes_html_from_saved_json(runs, tmp_path: Path) -> None:
    p = tmp_path / "r.json"
    p.write_text(runs_to_compare_json(runs))
    out = tmp_path / "sub" / "r.html"
    res = CliRunner().invoke(app, ["report", str(p), "-o", str(out), "--baseline", "baseline-thp"])
    assert res.exit_code == 0, res.output
    assert out.stat().st_size > 1_000_000 and '<section id="summary">' in out.read_text()


def test_report_command_rejects_an_unknown_baseline_without_traceback(runs, tmp_path: Path) -> None:
    p = tmp_path / "r.json"
    p.write_text(runs_to_compare_json(runs))
    res = CliRunner().invoke(app, ["report", str(p), "-o", str(tmp_path / "x.html"), "--baseline", "nope"])
    assert res.exit_code == 2 and "not one of the compared configs" in res.output


def test_report_command_rejects_a_file_that_is_not_results(tmp_path: Path) -> None:
    p = tmp_path / "bad.json"
    p.write_text('[{"trace": "x"}]')
    res = CliRunner().invoke(app, ["report", str(p), "-o", str(tmp_path / "x.html")])
    assert res.exit_code == 2 and "not a result of" in res.output


def test_calibrate_command_writes_a_cost_table(tmp_path: Path) -> None:
    out = tmp_path / "cost.toml"
    res = CliRunner().invoke(app, ["calibrate", "-o", str(out), "--repeats", "1", "--size-mib", "4",
                                   "--touch-mib", "4"])
    assert res.exit_code == 0, res.output
    import tomllib

    from memmodel.analysis.costs import CostModel

    assert set(tomllib.loads(out.read_text())["cost"]) == set(CostModel.key_names())


@needs_trace
def test_compare_command_prints_the_table_and_writes_json_and_report(tmp_path: Path) -> None:
    rep, js = tmp_path / "demo.html", tmp_path / "r.json"
    res = CliRunner().invoke(app, ["compare", str(SHIPPED), "--report", str(rep), "--json", str(js)])
    assert res.exit_code == 0, res.output
    assert "side by side" in res.output and "memctl-2m" in res.output
    assert rep.is_file() and len(json.loads(js.read_text())) == len(DEFAULT_CONFIGS)
