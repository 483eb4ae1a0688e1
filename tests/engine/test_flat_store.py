"""The flat store of native 4 KiB replays (docs/model.md Part 3, item 9) against the tables and slots.

A native replay whose guest maps only 4 KiB pages keeps its guest as bitmaps per 2 MiB region, the pages'
frames and a set of the tables above the leaf level, instead of radix tables and per-page slots. It must be
the same model step for step: the same counters, extras, walk histogram and free lists as the tables'
path (``Replay(..., flat=False)``), and the literal reference's counters, through faults, releases of every
shape, batch boundaries and running out of memory.
"""

from __future__ import annotations

from typing import Any

import pytest
from engine_helpers import arrays, cfg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference_model import OutOfMemory, run_reference
from test_differential import pscs, tlb_level
from test_differential_v2 import lifecycle_traces

from memmodel.config import ModelConfig
from memmodel.engine import Replay
from memmodel.errors import OutOfMemoryError

Records = list[tuple[str, int, int]]
K4, M2, G1 = 1 << 12, 1 << 21, 1 << 30


def _replay(records: Records, config: ModelConfig, flat: bool, batch: int = 0,
            outcomes: bool = False) -> dict[str, Any]:
    """Everything a replay gives (or the first record of the batch that ran out of memory); with
    ``outcomes``, also every translation's TLB outcome (the loop that records them)."""
    a = arrays(records)
    r = Replay(config, flat=flat, outcomes=outcomes)
    assert r.flat_store == flat
    step = batch or max(len(records), 1)
    for i in range(0, len(records), step):
        try:
            r.feed(a["kind"][i : i + step], a["gva"][i : i + step], a["size"][i : i + step])
        except OutOfMemoryError as exc:
            return {"out_of_memory_in_batch_at": i, "message": str(exc)}
    out: dict[str, Any] = {"outcomes": [x.tolist() for x in r.take_outcomes()]} if outcomes else {}
    res = r.result()
    return {**out, "counters": res.counters, "extras": res.extras, "walk_hist": res.walk_hist.tolist(),
            "guest_nr_free": res.guest_nr_free.tolist(), "series": {k: v.tolist() for k, v in res.series.items()}}


def test_native_4k_replays_take_the_flat_store_and_no_other_replay_does() -> None:
    assert Replay(cfg({"virtualized": False, "guest": {"page_size": "4K"}})).flat_store
    assert not Replay(cfg({"virtualized": False, "guest": {"page_size": "4K"}}), flat=False).flat_store
    assert not Replay(cfg({"virtualized": False, "guest": {"page_size": "2M"}})).flat_store
    assert not Replay(cfg({"guest": {"page_size": "4K"}, "host": {"page_size": "4K"}})).flat_store
    with pytest.raises(ValueError, match="flat"):
        Replay(cfg({"virtualized": False, "guest": {"page_size": "2M"}}), flat=True)


def test_page_tables_are_counted_once_per_table_and_kept_after_a_release() -> None:
    """4 levels: the root at start-up; a first touch at 0 adds the level-2, level-3 and leaf tables (4);
    2 MiB on, a new leaf (5); 1 GiB on, a level-3 table and a leaf (7); 512 GiB on, all three (10). A
    release of everything frees the four pages and no table; touching 0 again re-faults: 4 KiB of
    re-fault zeroing, no new page touched, no new table."""
    config = cfg({"virtualized": False, "guest": {"page_size": "4K", "levels": 4}})
    records: Records = [("L", 0, 8), ("L", M2, 8), ("L", G1, 8), ("L", 512 * G1, 8)]
    records += [("U", 0, (1 << 64) - 1), ("S", 0, 8)]
    flat = _replay(records, config, flat=True)
    c = flat["counters"]
    assert c["guest_pt_pages"] == 10
    assert c["guest_faults"] == 5 and c["touched_bytes"] == 4 * K4
    assert c["guest_freed_bytes"] == 4 * K4 and c["guest_resident_bytes"] == K4
    assert flat["extras"]["guest_zeroed_refault_bytes"] == K4
    assert c == run_reference(records, config)
    assert flat == _replay(records, config, flat=False)


@pytest.mark.parametrize(("what", "release"), [
    # regions in range no more than those that exist: probed one by one
    ("a few regions, probed", ("U", 3 * M2 + 5 * K4, 2 * M2)),
    # far more region numbers than regions: the index is scanned, the regions sorted by address
    ("a terabyte, scanned", ("U", 0, 1 << 40)),
    ("everything, scanned", ("U", 4095, (1 << 64) - 1)),
    ("nothing mapped inside", ("U", 100 * G1, 1 << 30)),
])
def test_a_release_frees_the_mapped_pages_inside_its_range_in_address_order(what: str,
                                                                            release: tuple[str, int, int]) -> None:
    """Pages in eight 2 MiB regions over 2 GiB, released by one U, then all touched again: the same
    counters as the reference and the same free lists as the tables' path (random placement: the frees'
    order decides which frames the re-faults get)."""
    config = cfg({"virtualized": False, "guest": {"page_size": "4K", "placement": "random", "seed": 7}})
    pages = [r * M2 + i * 37 * K4 for r in (0, 1, 3, 4, 6, 200, 511, 900) for i in range(12)]
    records: Records = [("L", p, 8) for p in pages] + [release] + [("S", p + 8, 8) for p in pages]
    flat = _replay(records, config, flat=True)
    assert flat["counters"] == run_reference(records, config)
    assert flat == _replay(records, config, flat=False)


def test_out_of_memory_falls_on_the_same_record_as_with_the_tables() -> None:
    """A guest of 1 GiB (262,144 frames, half of its 2 MiB blocks missing a frame, random placement)
    touched one page per 2 MiB region, each region in a new leaf table: two frames per page and a new
    level-3 table every 512 regions, so it runs out after about 130,000 pages. The flat store runs out on
    the same record as the tables' path, and the replays of everything before that record agree."""
    config = cfg({"virtualized": False, "guest": {"page_size": "4K", "memory": "1G", "levels": 5,
                                                   "fragmentation": 0.5, "placement": "random", "seed": 3}})
    records: Records = [("L", (r * 512 + r * 7 % 512) * K4, 8) for r in range(140_000)]
    a = arrays(records)

    def first_failing(flat: bool) -> int:
        r = Replay(config, flat=flat)
        for start in range(0, len(records), 4096):
            try:
                r.feed(a["kind"][start : start + 4096], a["gva"][start : start + 4096], a["size"][start : start + 4096])
            except OutOfMemoryError:
                break
        else:
            return -1
        r = Replay(config, flat=flat)
        r.feed(a["kind"][:start], a["gva"][:start], a["size"][:start])
        for i in range(start, start + 4096):
            try:
                r.feed(a["kind"][i : i + 1], a["gva"][i : i + 1], a["size"][i : i + 1])
            except OutOfMemoryError:
                return i
        raise AssertionError("out of memory in a batch but not record by record")

    at = first_failing(True)
    assert 100_000 < at < 140_000
    assert first_failing(False) == at
    assert _replay(records[:at], config, flat=True) == _replay(records[:at], config, flat=False)


@st.composite
def native_4k_configs(draw: st.DrawFn) -> dict[str, Any]:
    levels = draw(st.sampled_from([4, 5]))
    return {
        "virtualized": False,
        "guest": {"levels": levels, "page_size": "4K", "zeroing": draw(st.booleans()),
                  "memory": draw(st.sampled_from(["1G", "2G"])),
                  "fragmentation": draw(st.sampled_from([0.0, 0.0, 0.5, 0.99, 0.9999])),
                  "seed": draw(st.integers(0, 9)), "placement": draw(st.sampled_from(["lowest", "random"]))},
        "tlb": {"l1": draw(tlb_level()), "l2": draw(tlb_level())},
        "psc": {"guest": draw(pscs(levels))},
    }


# no reference in the loop: hundreds of examples in a few seconds
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trace=lifecycle_traces(), raw=native_4k_configs(), batch=st.sampled_from([0, 0, 1, 3]),
       outcomes=st.booleans())
def test_the_flat_store_replays_exactly_as_the_tables_and_slots(trace: Records, raw: dict[str, Any],
                                                                batch: int, outcomes: bool) -> None:
    config = cfg(raw)
    flat = _replay(trace, config, flat=True, batch=batch, outcomes=outcomes)
    assert flat == _replay(trace, config, flat=False, batch=batch, outcomes=outcomes)


@pytest.mark.slow
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trace=lifecycle_traces(), raw=native_4k_configs())
def test_the_flat_store_equals_the_reference(trace: Records, raw: dict[str, Any]) -> None:
    config = cfg(raw)
    flat = _replay(trace, config, flat=True)
    try:
        ref_counters, ref_extras = run_reference(trace, config, extras=True)
    except OutOfMemory:
        assert "out_of_memory_in_batch_at" in flat
        return
    assert flat["counters"] == ref_counters
    assert flat["extras"] == ref_extras
