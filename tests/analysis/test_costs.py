"""Cost estimates (memmodel.analysis.costs) and calibration: [cost] keys, arithmetic checked by hand."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest

from memmodel.analysis.api import run
from memmodel.analysis.calibrate import calibrate
from memmodel.analysis.costs import CostModel, estimate, estimate_run
from memmodel.config import load_raw, parse_config
from memmodel.errors import ConfigError

TINY = {  # a load and a store in one 4 KiB page, a load 1 GiB + 2 MiB + 4 KiB higher
    "kind": np.array([1, 2, 1], np.uint8),
    "gva": np.array([0x1000, 0x1008, 0x4020_1000], np.uint64),
    "size": np.array([8, 8, 8], np.uint16),
}


def _with_cost(preset: str, cost: dict[str, float]):
    raw, source = load_raw(preset)
    raw["cost"] = cost
    return parse_config(raw, source)


def test_unknown_cost_key_is_an_error_naming_the_key_and_the_allowed_keys() -> None:
    with pytest.raises(ConfigError) as exc:  # at load (config layer) or when the cost model is built
        CostModel.for_config(_with_cost("baseline-thp", {"zero_bw_2m": 3.0}))
    msg = str(exc.value)
    assert "cost.zero_bw_2m" in msg
    for key in CostModel.key_names():
        assert key in msg


@pytest.mark.parametrize("value", [0.0, -1.0])
def test_cost_values_must_be_positive(value: float) -> None:
    with pytest.raises(ConfigError, match="walk_load_ns"):
        CostModel.from_table({"walk_load_ns": value})


def test_cost_table_overrides_only_the_keys_it_names() -> None:
    model = CostModel.for_config(_with_cost("memctl-2m", {"walk_load_ns": 7.5}))
    assert model.walk_load_ns == 7.5
    assert model.zero_gbps_2m == CostModel().zero_gbps_2m


def test_cost_toml_round_trips_through_from_table() -> None:
    model = CostModel.from_table({"zero_gbps_4k": 11.0, "host_fault_us_2m": 3.25})
    again = CostModel.from_table(tomllib.loads(model.to_toml())["cost"])
    assert again == model


def test_cost_arithmetic_by_hand_on_a_tiny_trace() -> None:
    # baseline-thp: the guest maps two 2 MiB pages and zeroes them (4 MiB); the host backs three 2 MiB
    # pages (two data regions + the region holding the guest page tables) and zeroes them (6 MiB).
    cost = {"zero_gbps_2m": 1.048576, "guest_fault_us_2m": 10.0, "host_fault_us_2m": 5.0, "walk_load_ns": 100.0}
    (r,) = run(TINY, [_with_cost("baseline-thp", cost)])
    c = r.result.counters
    assert (c["guest_pages_2m"], c["host_pages_2m"], c["walk_loads"]) == (2, 3, 10)
    e = estimate_run(r)
    assert e.guest_zero_s == pytest.approx(4 * 2**20 / 1.048576e9)  # 4 ms
    assert e.guest_zero_s == pytest.approx(0.004)
    assert e.host_zero_s == pytest.approx(0.006)
    assert e.guest_fault_s == pytest.approx(2 * 10e-6)
    assert e.host_fault_s == pytest.approx(3 * 5e-6)
    assert e.walk_s == pytest.approx(10 * 100e-9)
    assert e.total_s == pytest.approx(0.004 + 0.006 + 20e-6 + 15e-6 + 1e-6)


def test_memctl_guest_does_not_zero_and_host_zeroes_at_its_page_size() -> None:
    (r,) = run(TINY, ["memctl-4k"])
    e = estimate_run(r)
    c = r.result.counters
    assert e.guest_zero_s == 0 and e.guest_zero_bytes_1g == 0
    assert e.host_zero_bytes_4k == c["host_pages_4k"] * 4096 == c["host_zeroed_bytes"]
    assert e.host_zero_s == pytest.approx(c["host_pages_4k"] * 4096 / (CostModel().zero_gbps_4k * 1e9))
    assert e.guest_fault_s == pytest.approx(c["guest_pages_1g"] * CostModel().guest_fault_us_1g * 1e-6)


@pytest.mark.parametrize(
    "preset", ["native-4k", "native-thp", "baseline-4k", "baseline-thp", "memctl-4k", "memctl-2m", "hugetlb-1g"]
)
def test_zeroed_bytes_by_page_size_sum_to_the_zeroed_counters(preset: str) -> None:
    rng = np.random.default_rng(7)
    n = 5000
    frame = {"kind": rng.integers(1, 4, n).astype(np.uint8),
             "gva": (0x7F00_0000_0000 + rng.integers(0, 3 << 30, n)).astype(np.uint64),
             "size": np.full(n, 8, np.uint16)}
    (r,) = run(frame, [preset])
    e = estimate_run(r)
    c = r.result.counters
    assert e.guest_zero_bytes_4k + e.guest_zero_bytes_2m + e.guest_zero_bytes_1g == c["guest_zeroed_bytes"]
    assert e.host_zero_bytes_4k + e.host_zero_bytes_2m + e.host_zero_bytes_1g == c["host_zeroed_bytes"]


def test_estimate_of_zero_counters_is_zero() -> None:
    counters = {f"{side}_pages_{z}": 0 for side in ("guest", "host") for z in ("4k", "2m", "1g")} | {"walk_loads": 0}
    assert estimate(counters, CostModel(), True, True).total_s == 0


def test_calibrate_measures_positive_costs_and_writes_a_loadable_cost_table() -> None:
    cal = calibrate(repeats=1, big_bytes=4 << 20, touch_bytes=4 << 20)
    table = tomllib.loads(cal.to_toml())["cost"]
    model = CostModel.from_table(table)  # every key allowed, every value positive
    assert set(table) == set(CostModel.key_names())
    assert model.zero_gbps_1g == pytest.approx(cal.zero_gbps["1g"], rel=1e-2)
    assert cal.touch_us_4k > 0 and cal.touch_us_2m > 0


# --- issue 10: sources in the repository, calibrate honesty, --cost on every command ----------------------------

CONF = __import__("pathlib").Path(__file__).resolve().parents[1] / "data" / "conformance"


def test_every_cost_key_has_a_unit_a_derivation_and_a_source() -> None:
    from memmodel.analysis.costs import COST_SOURCES

    assert set(COST_SOURCES) == set(CostModel.key_names())
    for key, src in COST_SOURCES.items():
        assert src.unit and src.meaning and src.derivation and src.sources, key
        assert src.kind in ("measured", "published", "assumed"), key
        # the derivation arrives at the default value it explains (e.g. "= 30.3 GB/s", "≈ 9 µs")
        assert src.kind == "assumed" or f"{getattr(CostModel(), key):g}" in src.derivation, key


def test_docs_costs_md_lists_every_key_with_its_default() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "costs.md").read_text()
    for key in CostModel.key_names():
        row = next(ln for ln in text.splitlines() if ln.startswith(f"| `{key}` |"))
        assert float(row.split("|")[2]) == getattr(CostModel(), key), key


def test_calibrate_never_writes_a_2m_fault_cost_measured_on_4k_faults(monkeypatch: pytest.MonkeyPatch) -> None:
    import memmodel.analysis.calibrate as cal

    # the kernel gave no huge page to the 2 MiB test (AnonHugePages 0): 512 x 4 KiB faults were timed
    monkeypatch.setattr(cal, "_touch", lambda size, step, advice: (1e-3 if step > 4096 else 2e-6, 0))
    c = cal.calibrate(repeats=1, big_bytes=4 << 20, touch_bytes=4 << 20)
    assert not c.thp_ok
    table = tomllib.loads(c.to_toml())["cost"]
    assert table["guest_fault_us_2m"] == CostModel().guest_fault_us_2m
    assert table["guest_fault_us_1g"] == CostModel().guest_fault_us_1g
    line = next(ln for ln in c.to_toml().splitlines() if ln.startswith("guest_fault_us_2m"))
    assert "THP was not obtained" in line


def test_calibrate_writes_the_2m_fault_cost_when_thp_was_obtained(monkeypatch: pytest.MonkeyPatch) -> None:
    import memmodel.analysis.calibrate as cal

    monkeypatch.setattr(cal, "_touch", lambda size, step, advice: (2e-4 if step > 4096 else 2e-6, size))
    c = cal.calibrate(repeats=1, big_bytes=4 << 20, touch_bytes=4 << 20)
    expected = round(max(2e-4 - (2 << 20) / (c.zero_gbps["2m"] * 1e9), 0.0) * 1e6, 3)
    assert c.thp_ok and c.cost.guest_fault_us_2m == pytest.approx(max(expected, 1e-3))


def test_thp_detection_reads_anon_huge_pages_of_the_mapping(tmp_path) -> None:
    from memmodel.analysis.calibrate import anon_huge_bytes, thp_obtained

    smaps = tmp_path / "smaps"
    smaps.write_text("7f0000000000-7f0000400000 rw-p 00000000 00:00 0 \nSize:               4096 kB\n"
                     "AnonHugePages:      2048 kB\n7f0000400000-7f0000800000 rw-p 00000000 00:00 0 \n"
                     "AnonHugePages:         0 kB\n")
    assert anon_huge_bytes(0x7F0000001000, str(smaps)) == 2 << 20
    assert anon_huge_bytes(0x7F0000500000, str(smaps)) == 0
    assert anon_huge_bytes(0x1000, str(smaps)) is None
    assert thp_obtained([4 << 20], 4 << 20, 1.0, 1.0) and not thp_obtained([0], 4 << 20, 1e-9, 1.0)
    assert thp_obtained([None], 4 << 20, 50e-6, 1e-6)  # no /proc: by time (50 faults' worth < 100)


def test_configs_show_prints_the_cost_table_that_applies(tmp_path) -> None:
    from typer.testing import CliRunner

    from memmodel.cli import app

    cfg = tmp_path / "c.toml"
    cfg.write_text('name = "c"\ncpu = "skylake"\n[cost]\nwalk_load_ns = 7.5\n')
    res = CliRunner().invoke(app, ["configs", "show", str(cfg)])
    assert res.exit_code == 0, res.output
    assert res.stdout.count("[cost]") == 1
    table = tomllib.loads(res.stdout[res.stdout.index("[cost]"):])["cost"]
    assert table == CostModel.from_table({"walk_load_ns": 7.5}).to_dict()
    assert "walk_load_ns = 7.5  # set by this config" in res.stdout


def test_simulate_cost_option_changes_estimates_not_counters(tmp_path) -> None:
    import json

    from typer.testing import CliRunner

    from memmodel.cli import app

    cost = tmp_path / "cost.toml"
    cost.write_text("[cost]\nwalk_load_ns = 100.0\n")
    args = ["simulate", str(CONF / "tiny.lackey"), "-c", "baseline-4k", "--json", "-"]
    plain = json.loads(CliRunner().invoke(app, args).stdout)[0]
    slow = json.loads(CliRunner().invoke(app, [*args, "--cost", str(cost)]).stdout)[0]
    assert slow["counters"] == plain["counters"]
    assert slow["estimates"]["walk_s"] == pytest.approx(slow["counters"]["walk_loads"] * 100e-9)
    assert slow["cost"]["walk_load_ns"] == 100.0


def test_sweep_result_has_estimate_columns_and_cost_file_applies(tmp_path) -> None:
    import polars as pl
    from typer.testing import CliRunner

    from memmodel.cli import app

    cost = tmp_path / "cost.toml"
    cost.write_text("[cost]\nwalk_load_ns = 50.0\n")
    out = tmp_path / "s.parquet"
    res = CliRunner().invoke(app, ["sweep", str(CONF / "tiny.lackey"), "-c", "baseline-thp", "-c", "memctl-2m",
                                   "--grid", "host.fragmentation=0,0.5", "-o", str(out), "--workers", "1",
                                   "--cost", str(cost)])
    assert res.exit_code == 0, res.output
    df = pl.read_parquet(out)
    for col in ("est_setup_s", "est_walk_s", "est_total_s"):
        assert col in df.columns
    assert df["est_walk_s"].to_list() == pytest.approx([w * 50e-9 for w in df["walk_loads"].to_list()])
    assert "sweep: 4 point(s)" in res.stdout and "est. set-up" in res.stdout
