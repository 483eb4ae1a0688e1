"""One-pass miss-ratio curves (memmodel.analysis.mrc): each test is named after the rule it checks.

The reference is the engine itself: a config with one ``[[tlb.l1]]`` array (no L2) holding every
page size the config produces has ``walks`` = the curve's misses at that capacity.
"""

from __future__ import annotations

from collections import OrderedDict
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memmodel.analysis.api import simulate
from memmodel.analysis.mrc import (
    StackPass,
    TranslationStream,
    es_probe_config,
    miss_ratio_curves,
    single_array_config,
    stack_histogram,
    translation_stream,
)
from memmodel.config import ModelConfig
from memmodel.config.load import load_raw, parse_config
from memmodel.engine import Replay


def _trace(seed: int = 3, n: int = 20_000, span_pages: int = 1 << 14) -> dict[str, np.ndarray]:
    """Records with a hot set (60 %) and a uniform tail over ``span_pages`` 4 KiB pages; some straddle."""
    rng = np.random.default_rng(seed)
    pages = np.where(rng.random(n) < 0.6, rng.integers(0, 200, n), rng.integers(0, span_pages, n))
    gva = (pages.astype(np.uint64) << np.uint64(12)) + rng.integers(0, 4096, n).astype(np.uint64)
    return {"kind": rng.integers(0, 4, n).astype(np.uint8), "gva": gva,
            "size": rng.choice(np.array([1, 8, 64], dtype=np.uint16), n)}


def _config(name: str, **tables: dict[str, Any]) -> ModelConfig:
    raw, source = load_raw(name)
    for table, values in tables.items():
        raw.setdefault(table, {}).update(values)
    return parse_config(raw, source)


TRACE = _trace()
CONFIGS = {
    "4k": _config("baseline-4k"),
    # guest THP in 1 GiB of guest memory with 97 % of 2 MiB blocks broken: 4K and 2M pages mix
    "native-thp-frag": _config("native-thp", guest={"memory": "1G", "fragmentation": 0.97}),
    # memctl: guest 1G pages splintered by a fragmented host into 2M and 4K entries
    "memctl-2m-frag": _config("memctl-2m", host={"fragmentation": 0.999}),
}
STREAMS = {k: translation_stream(TRACE, cfg) for k, cfg in CONFIGS.items()}


def _walks(cfg: ModelConfig, shifts: tuple[int, ...], entries: int, ways: int) -> int:
    return int(simulate(TRACE, single_array_config(cfg, shifts, entries, ways))["walks"][0])


def test_mixed_configs_really_produce_mixed_page_sizes() -> None:
    assert STREAMS["4k"].shifts() == (12,)
    assert STREAMS["native-thp-frag"].shifts() == (12, 21)
    assert STREAMS["memctl-2m-frag"].shifts() == (12, 21)


@pytest.mark.parametrize("key", list(CONFIGS))
def test_fully_associative_curve_equals_simulate_walks_at_sampled_capacities(key: str) -> None:
    stream, cfg = STREAMS[key], CONFIGS[key]
    hist = stack_histogram(stream, stream.shifts(), sets=1)
    assert hist.accesses == stream.translations and hist.skipped == 0
    for entries in (1, 2, 5, 16, 64, 300):
        assert int(hist.misses(entries)[0]) == _walks(cfg, stream.shifts(), entries, entries), entries


@pytest.mark.parametrize("key", list(CONFIGS))
@pytest.mark.parametrize("sets", [4, 16])
def test_set_associative_curve_equals_simulate_walks_at_sampled_capacities(key: str, sets: int) -> None:
    stream, cfg = STREAMS[key], CONFIGS[key]
    hist = stack_histogram(stream, stream.shifts(), sets=sets)
    for ways in (1, 2, 3, 8):
        assert int(hist.misses(ways)[0]) == _walks(cfg, stream.shifts(), sets * ways, ways), (sets, ways)


def test_array_listing_some_sizes_sees_only_those_translations() -> None:
    """An L1 array holding only 2M: 4K translations skip it (and walk), 2M ones follow the curve."""
    stream, cfg = STREAMS["native-thp-frag"], CONFIGS["native-thp-frag"]
    hist = stack_histogram(stream, (21,), sets=2)
    assert hist.skipped == int(stream.counts[stream.es == 12].sum()) > 0
    for ways in (1, 4):
        assert int(hist.misses(ways)[0]) + hist.skipped == _walks(cfg, (21,), 2 * ways, ways)


def test_first_translation_of_a_page_is_compulsory_and_repeats_are_hits() -> None:
    # pages 1 1 1 2 1 3: compulsory misses for 1, 2, 3; the re-touch of 1 has stack distance 1
    stream = TranslationStream(np.array([1, 2, 1, 3], np.int64), np.array([3, 1, 1, 1], np.int64),
                               np.full(4, 12, np.uint8), 0)
    hist = stack_histogram(stream, (12,))
    assert hist.accesses == 6 and hist.compulsory == 3
    assert hist.misses([1, 2, 10]).tolist() == [4, 3, 3]


def test_pages_sharing_a_large_entry_share_one_tag() -> None:
    # two 4 KiB pages of one 2 MiB entry: the second is a hit (distance 0) after the first
    stream = TranslationStream(np.array([512, 513, 512], np.int64), np.ones(3, np.int64),
                               np.full(3, 21, np.uint8), 0)
    hist = stack_histogram(stream, (21,))
    assert hist.compulsory == 1 and hist.misses(1).tolist() == [1]


def _lru_misses(tags: list[tuple[int, int]], sets: int, ways: int) -> int:
    """A literal set-associative true-LRU array (MODEL.md section 3)."""
    rows: list[OrderedDict[tuple[int, int], None]] = [OrderedDict() for _ in range(sets)]
    misses = 0
    for es, vpn in tags:
        row = rows[vpn % sets]
        if (es, vpn) in row:
            row.move_to_end((es, vpn))
            continue
        misses += 1
        if len(row) == ways:
            row.popitem(last=False)
        row[(es, vpn)] = None
    return misses


@settings(max_examples=60, deadline=None)
@given(
    p4=st.lists(st.integers(0, 3000), min_size=1, max_size=120),
    big=st.lists(st.booleans(), min_size=120, max_size=120),
    sets=st.sampled_from([1, 2, 3, 4]),
    ways=st.integers(1, 6),
)
def test_stack_distances_match_a_literal_lru_array(p4: list[int], big: list[bool], sets: int, ways: int) -> None:
    # es per page must be consistent: decide it by the 2 MiB region
    es = np.array([21 if big[(p >> 9) % len(big)] else 12 for p in p4], np.uint8)
    stream = TranslationStream(np.array(p4, np.int64), np.ones(len(p4), np.int64), es, 0)
    tags = [(int(e), p >> (int(e) - 12)) for p, e in zip(p4, es, strict=True)]
    hist = stack_histogram(stream, (12, 21), sets=sets)
    assert int(hist.misses(ways)[0]) == _lru_misses(tags, sets, ways)


def test_curve_frame_has_exact_counts_and_level_arrays() -> None:
    frame = miss_ratio_curves(TRACE, CONFIGS["memctl-2m-frag"], level="l2", sizes=[16, 256, 1536])
    assert set(frame["array"]) == {"l2:4K+2M", "l2:1G"}
    stlb = frame.filter((frame["array"] == "l2:4K+2M") & (frame["sets"] == 128))
    assert stlb["entries"].to_list() == [256, 1536]
    hist = stack_histogram(STREAMS["memctl-2m-frag"], (12, 21), sets=128)
    assert stlb["misses"].to_list() == hist.misses([2, 12]).tolist()
    assert (frame["miss_ratio"] * frame["accesses"]).round(6).to_list() == frame["misses"].cast(float).to_list()


def test_mrc_cli_writes_parquet_json_and_figure(tmp_path: Path) -> None:
    import polars as pl
    from typer.testing import CliRunner

    from memmodel.cli import app
    from memmodel.trace import write_store

    trace = tmp_path / "t.parquet"
    write_store(trace, TRACE)
    runner = CliRunner()
    res = runner.invoke(app, ["mrc", str(trace), "-c", "baseline-4k", "--sets", "1", "--sets", "4",
                              "--sizes", "4,16,64", "-o", str(tmp_path / "m.parquet"),
                              "--html", str(tmp_path / "m.html")])
    assert res.exit_code == 0, res.output
    frame = pl.read_parquet(tmp_path / "m.parquet")
    assert frame.height == 6
    assert "plotly" in (tmp_path / "m.html").read_text()[:200_000].lower()
    res = runner.invoke(app, ["mrc", str(trace), "--sizes", "8", "-o", str(tmp_path / "m.json")])
    assert res.exit_code == 0, res.output
    assert pl.read_json(tmp_path / "m.json")["misses"].to_list() == [_walks(CONFIGS["4k"], (12,), 8, 8)]
    res = runner.invoke(app, ["mrc", str(trace), "--level", "l3"])
    assert res.exit_code == 2 and "l1, l2" in res.output


def test_mrc_figure_draws_one_line_per_curve() -> None:
    from memmodel.report.mrc_figure import mrc_figure

    frame = miss_ratio_curves(TRACE, CONFIGS["4k"], sets=(1, 4))
    fig = mrc_figure(frame)
    assert len(fig.data) == 2
    assert list(fig.data[0].y) == frame.filter(frame["sets"] == 1)["miss_ratio"].to_list()


# ---- the C pass against a literal stack-distance reference ---------------------------------------
def _reference_pass(p4: list[int], es: list[int], counts: list[int], shifts: set[int],
                    sets: int) -> tuple[list[int], int, int, int]:
    """Mattson's definition, literally: one LRU stack (most recent first) per set; a run's first
    translation has distance = its tag's depth in its set's stack, the repeats are not references."""
    stacks: dict[int, list[tuple[int, int]]] = {}
    hist: dict[int, int] = {}
    cold = accesses = skipped = 0
    for p, e, n in zip(p4, es, counts, strict=True):
        if e not in shifts:
            skipped += n
            continue
        accesses += n
        vpn = p >> (e - 12)
        stack = stacks.setdefault(vpn % sets, [])
        if (e, vpn) in stack:
            d = stack.index((e, vpn))
            hist[d] = hist.get(d, 0) + 1
            stack.remove((e, vpn))
        else:
            cold += 1
        stack.insert(0, (e, vpn))
    out = [hist.get(d, 0) for d in range(max(hist) + 1)] if hist else []
    return out, cold, accesses, skipped


def _c_pass(p4: list[int], es: list[int], counts: list[int], shifts: set[int], sets: int,
            cuts: list[int]) -> tuple[list[int], int, int, int]:
    sp = StackPass(shifts, sets)
    a = np.array(p4, np.int64)
    e = np.array(es, np.uint8)
    n = np.array(counts, np.int64)
    bounds = [0, *sorted(c % (len(p4) + 1) for c in cuts), len(p4)]
    for lo, hi in pairwise(bounds):  # the same stream fed in batches
        sp.feed(a[lo:hi], e[lo:hi], n[lo:hi])
    h = sp.histogram()
    return h.hist.tolist(), h.compulsory, h.accesses, h.skipped


@settings(max_examples=150, deadline=None)
@given(
    refs=st.lists(st.tuples(st.integers(0, 1 << 20), st.sampled_from([12, 21, 30]), st.integers(1, 3)),
                  min_size=0, max_size=300),
    hot=st.integers(1, 40),
    shifts=st.sets(st.sampled_from([12, 21, 30]), min_size=1),
    sets=st.sampled_from([1, 2, 3, 4, 7, 64]),
    cuts=st.lists(st.integers(0, 1000), max_size=4),
)
def test_c_stack_pass_equals_a_literal_stack_distance_reference(
        refs: list[tuple[int, int, int]], hot: int, shifts: set[int], sets: int, cuts: list[int]) -> None:
    # fold pages onto a few hot ones so that most references are re-references at small distances
    p4 = [p % (hot * 700) for p, _, _ in refs]
    es = [e for _, e, _ in refs]
    counts = [n for _, _, n in refs]
    assert _c_pass(p4, es, counts, shifts, sets, cuts) == _reference_pass(p4, es, counts, shifts, sets)


@pytest.mark.parametrize("sets", [1, 4, 64])
def test_c_stack_pass_equals_the_reference_through_hash_growth_and_timeline_renumbering(sets: int) -> None:
    # 2,500 distinct tags (the hash table starts at 1,024 slots) and 12,000 references (each set's
    # timeline fills and is renumbered many times)
    rng = np.random.default_rng(sets)
    pages = np.where(rng.random(12_000) < 0.5, rng.integers(0, 60, 12_000), rng.integers(0, 2_500, 12_000))
    p4 = [int(p) for p in pages]
    es = [12] * len(p4)
    counts = [int(n) for n in rng.integers(1, 3, len(p4))]
    ref = _reference_pass(p4, es, counts, {12}, sets)
    assert ref[1] > 2_000 and len(ref[0]) > 1_000 // sets
    assert _c_pass(p4, es, counts, {12}, sets, [3_000, 7_777]) == ref


def test_pass_state_is_bounded_by_distinct_tags_not_stream_length() -> None:
    rng = np.random.default_rng(5)
    sp = StackPass((12,), sets=1)
    batch = rng.integers(0, 100, 1 << 16).astype(np.int64)
    sp.feed(batch, np.full(batch.shape, 12, np.uint8), np.ones(batch.shape, np.int64))
    after_one = sp.state_bytes
    for _ in range(15):  # 16x the references, the same 100 pages
        sp.feed(batch, np.full(batch.shape, 12, np.uint8), np.ones(batch.shape, np.int64))
    assert sp.state_bytes == after_one < 64 * 1024
    assert sp.histogram().accesses == 16 << 16 and sp.histogram().compulsory == 100


def test_stack_pass_refuses_bad_runs() -> None:
    sp = StackPass((12,))
    with pytest.raises(ValueError, match="entry shift 13"):
        sp.feed(np.array([1], np.int64), np.array([13], np.uint8), np.array([1], np.int64))
    with pytest.raises(ValueError, match="count 0"):
        sp.feed(np.array([1], np.int64), np.array([12], np.uint8), np.array([0], np.int64))
    with pytest.raises(ValueError, match="same length"):
        sp.feed(np.array([1, 2], np.int64), np.array([12], np.uint8), np.array([1], np.int64))
    with pytest.raises(ValueError, match="page shift 13"):
        StackPass((13,))
    with pytest.raises(ValueError, match="sets"):
        StackPass((12,), sets=0)


@pytest.mark.parametrize("key", list(CONFIGS))
def test_probe_config_maps_every_translation_to_the_configs_entry_size(key: str) -> None:
    """The mapping-only probe (one large direct-mapped array) reports the es of the config itself."""
    def shifts(cfg: ModelConfig) -> np.ndarray:
        r = Replay(cfg, outcomes=True)
        r.feed(TRACE["kind"], TRACE["gva"], TRACE["size"].astype(np.uint64))
        return r.take_outcomes()[1]

    stream = STREAMS[key]
    assert np.array_equal(shifts(es_probe_config(CONFIGS[key])), shifts(CONFIGS[key]))
    assert np.array_equal(np.repeat(stream.es, stream.counts), shifts(CONFIGS[key]))


def test_streamed_curves_equal_the_stream_in_memory_in_any_batch_size(tmp_path: Path) -> None:
    from memmodel.trace import write_store

    cfg = CONFIGS["memctl-2m-frag"]
    write_store(tmp_path / "t.parquet", TRACE)
    whole = miss_ratio_curves(TRACE, cfg, sets=(1, 8))
    batched = miss_ratio_curves(tmp_path / "t.parquet", cfg, sets=(1, 8), batch_rows=777)  # 26 batches
    assert batched.drop("trace").equals(whole.drop("trace"))
    hist = stack_histogram(STREAMS["memctl-2m-frag"], (12, 21), sets=8)
    rows = whole.filter(whole["sets"] == 8)
    assert rows["misses"].to_list() == hist.misses(rows["ways"].to_numpy()).tolist()
    assert set(whole["page_sizes"]) == {"4K+2M"}


def test_stream_of_a_store_counts_every_instruction_and_translation(tmp_path: Path) -> None:
    """The stream is read from the store's compact form (I records as counts): nothing is lost."""
    from memmodel.trace import write_store

    write_store(tmp_path / "t.parquet", TRACE)
    stream = translation_stream(tmp_path / "t.parquet", CONFIGS["4k"], batch_rows=1000)
    straddles = int(((TRACE["gva"] & np.uint64(4095)) + TRACE["size"] > 4096)[TRACE["kind"] != 0].sum())
    assert stream.instructions == int((TRACE["kind"] == 0).sum()) > 0
    assert stream.translations == int((TRACE["kind"] != 0).sum()) + straddles
    whole = STREAMS["4k"]  # the same translations, whatever the batch boundaries split
    assert np.array_equal(np.repeat(stream.p4, stream.counts), np.repeat(whole.p4, whole.counts))
    assert np.array_equal(np.repeat(stream.es, stream.counts), np.repeat(whole.es, whole.counts))
