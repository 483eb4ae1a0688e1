"""One-pass miss-ratio curves (memmodel.analysis.mrc): each test is named after the rule it checks.

The reference is the engine itself: a config with one ``[[tlb.l1]]`` array (no L2) holding every
page size the config produces has ``walks`` = the curve's misses at that capacity.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memmodel.analysis.api import simulate
from memmodel.analysis.mrc import (
    TranslationStream,
    miss_ratio_curves,
    single_array_config,
    stack_histogram,
    translation_stream,
)
from memmodel.config import ModelConfig
from memmodel.config.load import load_raw, parse_config


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
