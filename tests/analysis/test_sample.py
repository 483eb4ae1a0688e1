"""`memmodel sample`: sampling units, methods, native labels, metadata, determinism."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from reference_model import Reference
from typer.testing import CliRunner

from memmodel.analysis.sample import (
    NOMINAL_LATENCY,
    LatencyFilter,
    Positions,
    SampleError,
    expand_translations,
    sample_trace,
)
from memmodel.cli import app
from memmodel.config import load_config
from memmodel.errors import MemmodelError
from memmodel.trace.store import read_metadata, write_store


def _mixed_trace(n: int = 4000, seed: int = 7) -> dict[str, np.ndarray]:
    """I/L/S/M records over 300 pages of two far-apart regions, with some 4 KiB straddles."""
    rng = np.random.default_rng(seed)
    kind = rng.choice(np.array([0, 1, 2, 3], dtype=np.uint8), size=n, p=[0.4, 0.3, 0.2, 0.1])
    pages = rng.integers(0, 300, size=n).astype(np.uint64)
    base = np.where(pages < 150, np.uint64(0x10000000), np.uint64(0x7F0000000000))
    off = rng.integers(0, 4096, size=n).astype(np.uint64)
    gva = base + pages * np.uint64(4096) + off
    size = rng.choice(np.array([1, 4, 8, 16, 64], dtype=np.uint64), size=n)
    return {"kind": kind, "gva": gva, "size": size}


def _reference_labels(recs: dict[str, np.ndarray], cfg_name: str) -> np.ndarray:
    """Outcome code of every translation from the slow literal model (tests/reference_model.py)."""
    ref = Reference(load_config(cfg_name))
    out = []
    _, addrs, _ = expand_translations(recs["kind"], recs["gva"], recs["size"])
    k, a, n = recs["kind"], recs["gva"], recs["size"]
    for i in range(k.shape[0]):
        if k[i] == 0:
            continue
        # the translated addresses of one record: a, then a + n - 1 when it straddles
        vs = [int(a[i])] + ([int(a[i]) + int(n[i]) - 1] if (int(a[i]) % 4096) + int(n[i]) > 4096 else [])
        for v in vs:
            before = (ref.c["l1_hits"], ref.c["l2_hits"], ref.c["walks"])
            ref.translate(v)
            after = (ref.c["l1_hits"], ref.c["l2_hits"], ref.c["walks"])
            out.append(1 + [x != y for x, y in zip(before, after, strict=True)].index(True))
    assert len(out) == addrs.shape[0]
    return np.array(out, dtype=np.uint8)


@pytest.fixture
def mixed(tmp_path):
    recs = _mixed_trace()
    path = tmp_path / "mixed.parquet"
    write_store(path, recs, source="test mixed trace")
    return path, recs


def test_straddling_access_is_two_sampling_units_each_inside_its_page():
    k, a, n = expand_translations(np.array([1, 0, 2], np.uint8), np.array([4094, 5, 8192], np.uint64),
                                  np.array([8, 1, 4], np.uint64))
    assert k.tolist() == [1, 1, 2]
    assert a.tolist() == [4094, 4096, 8192]
    assert n.tolist() == [2, 6, 4]
    assert all(int(x) % 4096 + int(m) <= 4096 for x, m in zip(a, n, strict=True))


@pytest.mark.parametrize("method", ["fixed", "jitter", "bernoulli"])
def test_period_one_equals_full_trace_native_labels(mixed, tmp_path, method):
    path, recs = mixed
    out = tmp_path / "s.parquet"
    s = sample_trace(path, out, 1, method=method, seed=3)
    got = pl.read_parquet(out)
    expect = _reference_labels(recs, "native-4k")
    assert s.translations == expect.shape[0] == got.height
    assert np.array_equal(got["tlb"].to_numpy(), expect)
    _, addrs, _ = expand_translations(recs["kind"], recs["gva"], recs["size"])
    assert np.array_equal(got["gva"].to_numpy(), addrs)
    assert set(got["data_page_size"].to_list()) == {4096}


def test_native_thp_labels_carry_the_2m_entry_size(mixed, tmp_path):
    path, recs = mixed
    out = tmp_path / "s.parquet"
    sample_trace(path, out, 1, native_config="native-thp")
    got = pl.read_parquet(out)
    assert np.array_equal(got["tlb"].to_numpy(), _reference_labels(recs, "native-thp"))
    assert set(got["data_page_size"].to_list()) == {1 << 21}


def test_fixed_period_takes_every_nth_translation_from_a_seeded_offset():
    p = Positions("fixed", 10, seed=5)
    idx = np.concatenate([p.take(35), p.take(1000)])
    assert np.all(np.diff(idx) == 10) and 0 <= idx[0] < 10 and idx[-1] < 1000 <= idx[-1] + 10


def test_jitter_takes_exactly_one_translation_per_block():
    idx = Positions("jitter", 50, seed=1).take(50 * 400)
    assert np.array_equal(idx // 50, np.arange(400))
    assert len(set((idx % 50).tolist())) > 30  # positions spread over the block, not fixed


def test_bernoulli_rate_is_one_over_period():
    idx = Positions("bernoulli", 100, seed=2).take(2_000_000)
    assert np.all(np.diff(idx) >= 1)
    # 20000 expected; 5 standard deviations is 707
    assert abs(idx.shape[0] - 20_000) < 707


def test_metadata_marks_the_trace_sampled_with_source_totals(mixed, tmp_path):
    path, recs = mixed
    out = tmp_path / "s.parquet"
    s = sample_trace(path, out, 7, method="jitter", seed=11)
    md = read_metadata(out)
    sm = md["sampling"]
    assert md["sampled"] is True and md["sample_period"] == 7
    assert sm["sample_method"] == "jitter" and sm["native_config"] == "native-4k"
    assert sm["source_instructions"] == int(np.count_nonzero(recs["kind"] == 0))
    assert sm["source_translations"] == s.translations
    assert sum(e - b for b, e in sm["source_footprint_extents_4k"]) == sm["source_footprint_pages_4k"]
    assert set(pl.read_parquet(out)["period"].to_list()) == {7}


def test_same_arguments_give_byte_identical_files(mixed, tmp_path):
    path, _ = mixed
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    sample_trace(path, a, 13, method="bernoulli", seed=4)
    sample_trace(path, b, 13, method="bernoulli", seed=4)
    assert a.read_bytes() == b.read_bytes()


def test_latency_filter_keeps_only_slow_enough_samples(mixed, tmp_path):
    path, recs = mixed
    out = tmp_path / "s.parquet"
    sample_trace(path, out, 1, latency_filter="latency>=30")
    got = pl.read_parquet(out)["tlb"].to_numpy()
    expect = _reference_labels(recs, "native-4k")
    assert NOMINAL_LATENCY[3] >= 30 > NOMINAL_LATENCY[2]
    assert np.all(got == 3) and got.shape[0] == int(np.count_nonzero(expect == 3))
    assert read_metadata(out)["sampling"]["sample_filter"] == "latency>=30"


@pytest.mark.parametrize("text", ["latency>30", "lat>=3", "latency>=x", ""])
def test_bad_filter_is_a_clear_error(text):
    with pytest.raises(SampleError, match="expected 'latency>=T'"):
        LatencyFilter.parse(text)


def test_sampling_a_sampled_trace_is_refused(mixed, tmp_path):
    path, _ = mixed
    s1 = tmp_path / "s1.parquet"
    sample_trace(path, s1, 5)
    with pytest.raises(MemmodelError, match="already a sampled trace"):
        sample_trace(s1, tmp_path / "s2.parquet", 5)


def test_cli_sample_writes_file_and_rejects_two_methods(mixed, tmp_path):
    path, _ = mixed
    out = tmp_path / "c.parquet"
    runner = CliRunner()
    r = runner.invoke(app, ["sample", str(path), "--period", "20", "--jitter", "--seed", "2", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert json.loads(json.dumps(read_metadata(out)["sampling"]))["sample_period"] == 20
    r = runner.invoke(app, ["sample", str(path), "--period", "20", "--jitter", "--bernoulli", "-o", str(out)])
    assert r.exit_code == 2 and "at most one" in r.output
    r = runner.invoke(app, ["sample", str(path), "--period", "20", "--native-config", "baseline-4k", "-o",
                            str(tmp_path / "v.parquet")])
    assert r.exit_code == 2 and "expected a native config" in r.output
    assert not (tmp_path / "v.parquet").exists()
