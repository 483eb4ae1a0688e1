"""`memmodel estimate`: transfer exact in expectation, honest intervals and bounds, perf samples, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from memmodel.analysis.api import SAMPLED_LABEL, SampledTraceError, simulate
from memmodel.analysis.estimate import (
    EstimateError,
    Samples,
    binomial_count_interval,
    chao1,
    estimate,
    estimates_to_json,
    load_samples,
    walk_cost_bounds,
)
from memmodel.analysis.sample import Positions, sample_trace
from memmodel.cli import app
from memmodel.config import load_config
from memmodel.trace.store import ingest, write_store

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
PAGES, ROUNDS = 4096, 3


@pytest.fixture(scope="module")
def thrash(tmp_path_factory):
    """A cyclic sweep over 4096 pages, each visited by two loads in a row, three times: every first load
    misses both TLB levels (cyclic LRU over more pages than the 1536-entry STLB) and every second load
    hits L1, so walks = 3 * 4096 and l2_hits = 0 under any 4 KiB config of the skylake CPU."""
    d = tmp_path_factory.mktemp("thrash")
    pages = np.tile(np.repeat(np.arange(PAGES, dtype=np.uint64), 2), ROUNDS)
    recs = {"kind": np.ones(pages.shape[0], np.uint8), "gva": np.uint64(0x40000000) + pages * np.uint64(4096),
            "size": np.full(pages.shape[0], 8, np.uint64)}
    trace = d / "thrash.parquet"
    write_store(trace, recs, source="cyclic sweep")
    full = d / "full.parquet"
    sample_trace(trace, full, 1)
    return trace, load_samples(full)


def test_synthetic_trace_has_the_known_answer(thrash):
    trace, _ = thrash
    df = simulate(trace, ["native-4k", "baseline-4k", "memctl-4k"])
    assert df["walks"].to_list() == [ROUNDS * PAGES] * 3
    assert df["l2_hits"].to_list() == [0] * 3


def test_same_entry_size_transfer_is_exact_in_expectation(thrash):
    """Averaged over every start offset of fixed-period sampling (each equally likely), the HT count is the
    exact walk count of each 4 KiB target (every translation falls in exactly one offset's sample)."""
    _, full = thrash
    period = 8
    values: dict[str, list[float]] = {"baseline-4k": [], "memctl-4k": []}
    for offset in range(period):
        sub = full.subset(np.arange(offset, full.n, period), period, "fixed", offset)
        df = estimate(sub, list(values))
        for name in values:
            row = df.filter((df["config"] == name) & (df["quantity"] == "walks")).row(0, named=True)
            assert row["method"].startswith("transfer")
            values[name].append(row["value"])
    for name, v in values.items():
        assert sum(v) / period == ROUNDS * PAGES, name
        assert len(set(v)) > 1  # the offsets really differ: the average is not one lucky draw


def test_bernoulli_intervals_cover_the_truth_at_their_level(thrash):
    _, full = thrash
    truth, covered, seeds = ROUNDS * PAGES, 0, 200
    for seed in range(seeds):
        sub = full.subset(Positions("bernoulli", 50, seed).take(full.n), 50, "bernoulli", seed)
        row = estimate(sub, ["baseline-4k"]).row(0, named=True)
        covered += row["low"] <= truth <= row["high"]
    assert covered / seeds >= 0.90  # nominal 0.95; binomial sd of the rate over 200 seeds is 0.015


def test_binomial_interval_is_exact_at_rate_one_and_brackets_the_ht_count():
    assert binomial_count_interval(17, 1.0) == (17, 17)
    for k, rate in ((0, 0.01), (3, 0.001), (250, 0.01)):
        lo, hi = binomial_count_interval(k, rate)
        assert lo <= k / rate <= hi
        assert lo >= k
    assert binomial_count_interval(0, 0.01)[0] == 0


def test_chao1_adds_unseen_species_from_singletons_and_doubletons():
    assert chao1(np.array([1, 1, 2, 5])) == 4 + 2 * 2 / (2 * 1)
    assert chao1(np.array([3, 4])) == 2


def test_walk_cost_bracket_matches_model_section_4():
    assert walk_cost_bounds(load_config("native-4k"), 12, 12) == (1, 4)
    assert walk_cost_bounds(load_config("baseline-4k"), 12, 12) == (1, 24)
    assert walk_cost_bounds(load_config("memctl-4k"), 30, 12) == (1, 14)
    assert walk_cost_bounds(load_config("baseline-thp"), 21, 21)[1] == 15


def _row(df, config, quantity):
    return df.filter((df["config"] == config) & (df["quantity"] == quantity)).row(0, named=True)


SHIPPED = ("stream", "qsort", "pchase")
LARGER = ("native-thp", "baseline-thp", "memctl-2m", "hugetlb-1g")


@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED)
def test_bounds_never_cross_the_truth_on_shipped_traces(tmp_path, name):
    trace = tmp_path / f"{name}.parquet"
    ingest([REPO / "traces" / f"{name}.lackey.xz"], trace)
    truth = {r["config"]: r for r in simulate(trace, [*LARGER, "baseline-4k"]).iter_rows(named=True)}
    full_path = tmp_path / "full.parquet"
    sample_trace(trace, full_path, 1)
    full = load_samples(full_path)
    # without the footprint extents (as from perf without MMAP2) the estimator must fall back to bounds
    blind = Samples(full.name, full.gva, full.tlb, full.page_shift, full.period,
                    {k: v for k, v in full.meta.items() if k != "source_footprint_extents_4k"},
                    full.native, full.covers_whole_run)
    for period in (100, 1000, 10000):
        for seed in range(3):
            for base in (full, blind):
                sub = base.subset(Positions("jitter", period, seed).take(base.n), period, "jitter", seed)
                df = estimate(sub, list(LARGER))
                for cfg in LARGER:
                    t = truth[cfg]
                    for q in ("walks", "walk_loads"):
                        r = _row(df, cfg, q)
                        assert r["value"] is None or r["low"] <= r["value"], (cfg, q)
                        assert r["low"] <= t[q], (name, cfg, q, period, seed, r)
                        assert r["high"] is None or t[q] <= r["high"], (name, cfg, q, period, seed, r)
                    if base is blind:
                        assert _row(df, cfg, "walks")["value"] is None  # only bounds without the footprint


def _ingest_fixture(tmp_path, name):
    out = tmp_path / (name + ".parquet")
    ingest([DATA / name], out)
    return out


def test_perf_samples_with_periods_run_through_estimate(tmp_path):
    """Intel ldlat `perf script` samples: periods known, TLB level of hits unknown ("L1 or L2 hit")."""
    path = _ingest_fixture(tmp_path, "perf_script_intel_adl_mem_loads_ldlat.txt")
    s = load_samples(path)
    assert s.period is not None and s.native is None
    df = estimate(path, ["native-4k", "baseline-4k", "baseline-thp"])
    walks = _row(df, "baseline-4k", "walks")
    assert walks["value"] == float(s.period[s.tlb == 3].sum())
    l2 = _row(df, "baseline-4k", "l2_hits")
    assert l2["value"] is None and l2["low"] <= l2["high"]  # "L1 or L2 hit": only an interval
    assert "hardware" in walks["config_method"]
    doc = json.loads(estimates_to_json(df))
    assert [d["config"] for d in doc] == ["native-4k", "baseline-4k", "baseline-thp"]


def test_perf_samples_without_periods_give_no_scaled_numbers(tmp_path):
    path = _ingest_fixture(tmp_path, "perf_mem_report_D_phys_pagesize_intel_unwrapped.txt")
    df = estimate(path, ["native-4k"])
    walks = _row(df, "native-4k", "walks")
    assert walks["value"] is None and walks["high"] is None
    assert "no sample period" in walks["config_method"]


def test_full_trace_is_not_estimated(tmp_path):
    trace = tmp_path / "t.parquet"
    write_store(trace, {"kind": np.array([1], np.uint8), "gva": np.array([4096], np.uint64),
                        "size": np.array([8], np.uint64)})
    with pytest.raises(EstimateError, match="not a sampled trace"):
        estimate(trace, ["native-4k"])


def test_json_is_one_object_per_config_with_value_low_high(thrash, tmp_path):
    trace, _ = thrash
    s = tmp_path / "s.parquet"
    sample_trace(trace, s, 100, method="jitter", seed=1)
    out = tmp_path / "e.json"
    r = CliRunner().invoke(app, ["estimate", str(s), "-c", "baseline-4k", "-c", "memctl-2m", "--json", str(out)])
    assert r.exit_code == 0, r.output
    text = out.read_text()
    assert text.endswith("]\n")
    doc = json.loads(text)
    assert [set(d) for d in doc] == [{"config", "method", "estimates"}] * 2
    for d in doc:
        assert {"walks", "walk_loads", "l2_hits"} <= set(d["estimates"])
        for e in d["estimates"].values():
            assert set(e) == {"value", "low", "high"}


def test_simulate_and_compare_refuse_sampled_traces_unless_allowed(thrash, tmp_path):
    trace, _ = thrash
    s = tmp_path / "s.parquet"
    sample_trace(trace, s, 100)
    runner = CliRunner()
    for cmd in (["simulate", str(s), "-c", "native-4k"], ["compare", str(s), "-c", "baseline-thp"]):
        r = runner.invoke(app, cmd)
        assert r.exit_code == 2 and "memmodel estimate" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["simulate", str(s), "-c", "native-4k", "--allow-sampled", "--json", "-"])
    assert r.exit_code == 0, r.output
    assert all(d["label"] == SAMPLED_LABEL for d in json.loads(r.output))
    with pytest.raises(SampledTraceError):
        simulate(s, ["native-4k"])


def test_perf_ingest_marks_the_store_sampled(tmp_path):
    from memmodel.trace.store import read_metadata

    md = read_metadata(_ingest_fixture(tmp_path, "perf_script_intel_adl_mem_loads_ldlat.txt"))
    assert md["sampled"] is True and "sample_period" in md
