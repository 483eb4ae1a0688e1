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
    cfg = _with_cost("baseline-thp", {"zero_bw_2m": 3.0})
    with pytest.raises(ConfigError) as exc:
        CostModel.for_config(cfg)
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
