"""Every layout of the engine's LRU arrays keeps the literal LRU list of MODEL.md section 3.

The engine stores a set of up to 4 ways as an order word and the tags in place, 5 to 16 ways with 8-bit
fingerprints in one or two words before the tags, 17 to 255 ways (Zen's fully associative L1s) with
fingerprints and a doubly linked recency list, and more ways as a list shifted on every hit; the
record loop is compiled separately for the 4 KiB L1/L2 geometry (sets and ways) of the CPU presets.
These tests run every one of those shapes against the literal reference (a plain most-recent-first
list), with pages chosen to crowd a few sets, tags whose fingerprints collide inside a set, and ``U``
records that invalidate entries in the middle of a set's order.
"""

from __future__ import annotations

from typing import Any

import pytest
from engine_helpers import arrays, cfg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference_model import run_reference

from memmodel.engine import Replay
from memmodel.trace.compact import compact_batches, pack

BASE = 0x7F00_0000_0000  # a user-space region (4 KiB pages below are offsets in it)
_GOLDEN = 0x9E3779B97F4A7C15  # the engine's fingerprint multiplier (core/lru.h)


def fingerprint(page: int) -> int:
    """The engine's 8-bit fingerprint of the 4 KiB tag of virtual page ``page``."""
    return (((page << 2) * _GOLDEN) & ((1 << 64) - 1)) >> 56


def colliding_pages(sets: int, count: int) -> list[int]:
    """``count`` page offsets from BASE in one set (same index mod ``sets``) with one fingerprint."""
    first = BASE >> 12
    want = fingerprint(first)
    out = [0]
    k = 1
    while len(out) < count:
        if fingerprint(first + k * sets) == want:
            out.append(k * sets)
        k += 1
    return out


def test_colliding_pages_share_set_and_fingerprint() -> None:
    pages = colliding_pages(3, 4)
    assert len({p % 3 for p in pages}) == 1
    assert len({fingerprint((BASE >> 12) + p) for p in pages}) == 1


def _native(l1: tuple[int, int], l2: tuple[int, int] | None) -> dict[str, Any]:
    tlb: dict[str, Any] = {"l1": [{"page_sizes": ["4K"], "entries": l1[0] * l1[1], "ways": l1[1]}]}
    tlb["l2"] = [{"page_sizes": ["4K"], "entries": l2[0] * l2[1], "ways": l2[1]}] if l2 else []
    return {"virtualized": False, "guest": {"page_size": "4K", "memory": "4G"}, "tlb": tlb}


def _engine(records: list[tuple[str, int, int]], config: Any) -> dict[str, Any]:
    """The engine's counters, fed the plain columns (the generic loop) and the packed compact form (the
    loops specialised for the presets' ways, which every replay of a store takes; a native 4 KiB config
    takes their flat-store variants, so it is replayed without the flat store too): all must agree."""
    a = arrays(records)
    plain, packed = Replay(config), Replay(config)
    others = [packed, Replay(config, flat=False)] if plain.flat_store else [packed]
    plain.feed(a["kind"], a["gva"], a["size"])
    for b in compact_batches([a]):
        for r in others:
            r.feed_packed(pack(b))
    counters = plain.result().counters
    for r in others:
        assert r.result().counters == counters
    return counters


@st.composite
def crowded_traces(draw: st.DrawFn, sets: int, ways: int, spread: int = 0) -> list[tuple[str, int, int]]:
    """Accesses to about 2 x ways pages per set (hits, evictions, refills), fingerprint collisions, U;
    with ``spread``, the pages fall in the first ``spread`` sets only (a large array crowded all the same)."""
    pool = [p * sets + draw(st.integers(0, min(sets, spread or sets) - 1)) for p in range(2 * ways + 2)]
    pool += colliding_pages(sets, 3)
    n = draw(st.integers(1, max(160, 4 * ways)))
    out: list[tuple[str, int, int]] = []
    for _ in range(n):
        page = draw(st.sampled_from(pool))
        if draw(st.integers(0, 11)) == 0:
            out.append(("U", BASE + page * 4096, draw(st.sampled_from([4096, 2 * 4096]))))
        else:
            out.append((draw(st.sampled_from("LSM")), BASE + page * 4096 + draw(st.sampled_from([0, 8])), 8))
    return out


WAYS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 15, 16, 17, 24, 64, 72, 96, 256]


@pytest.mark.parametrize("ways", WAYS)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_single_array_of_any_ways_keeps_the_lru_list(ways: int, data: st.DataObject) -> None:
    sets = data.draw(st.sampled_from([1, 2, 3]), label="sets")
    trace = data.draw(crowded_traces(sets, ways), label="trace")
    config = cfg(_native((sets, ways), None))
    assert _engine(trace, config) == run_reference(trace, config)


# the (sets, ways) of the (L1, L2) 4 KiB arrays the record loop is specialised for (Skylake, Ice Lake,
# Sapphire Rapids, Zen 2/3, Zen 4, Zen 5), then shapes that take the generic loop: the presets' ways with
# other sets, and others
SPECIALISED = [((16, 4), (128, 12)), ((16, 4), (128, 16)), ((16, 6), (128, 16)), ((1, 64), (256, 8)),
               ((1, 72), (384, 8)), ((1, 96), (512, 8))]
GENERIC = [((16, 4), (4, 16)), ((16, 6), (4, 16)), ((1, 64), (2, 8)), ((1, 72), (3, 8)), ((1, 96), (2, 8)),
           ((1, 20), (8, 8)), ((2, 4), (3, 8)), ((3, 5), (2, 12)), ((4, 4), (2, 3))]


@pytest.mark.parametrize(("l1", "l2"), SPECIALISED + GENERIC)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_two_level_tlbs_of_every_specialised_loop_keep_the_lru_lists(l1: tuple[int, int], l2: tuple[int, int],
                                                                     data: st.DataObject) -> None:
    # pages crowd the first two L2 sets (and so, the L2 sets being a multiple of the L1's, two L1 sets)
    trace = data.draw(crowded_traces(l2[0], l2[1], spread=2), label="trace")
    config = cfg(_native(l1, l2))
    assert _engine(trace, config) == run_reference(trace, config)


def test_every_cpu_presets_4k_tlb_geometry_is_among_the_specialised_ones_under_test() -> None:
    """The record loop is specialised for the presets' 4 KiB L1/L2 geometry; a preset whose geometry
    changed would silently take the generic loop (and the test above would not cover its loop)."""
    from memmodel.config import load_config, preset_names

    for cpu in preset_names("cpu"):
        config = load_config("native-4k", cpu=cpu)
        l1 = next(a for a in config.tlb_l1 if 12 in a.page_shifts)
        l2 = next(a for a in config.tlb_l2 if 12 in a.page_shifts)
        assert ((l1.sets, l1.ways), (l2.sets, l2.ways)) in SPECIALISED, cpu


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_nested_tlb_and_pscs_with_fingerprinted_sets_match_the_reference(data: st.DataObject) -> None:
    # PSCs of 8 and 12 ways and a 6-way nested TLB (fingerprinted rows) on a virtualized 4K/4K machine
    ways = data.draw(st.sampled_from([5, 8, 12]), label="ways")
    raw = {
        "virtualized": True,
        "guest": {"page_size": "4K", "memory": "2G"}, "host": {"page_size": "4K", "memory": "4G"},
        "tlb": {"l1": [{"page_sizes": ["4K"], "entries": 8, "ways": 4}],
                "l2": [{"page_sizes": ["4K"], "entries": 2 * ways, "ways": ways}]},
        "psc": {"guest": [{"level": 3, "entries": ways, "ways": ways}],
                "host": [{"level": 3, "entries": 2 * ways, "ways": ways}]},
        "ntlb": {"entries": 12, "ways": 6},
    }
    trace = data.draw(crowded_traces(2, ways), label="trace")
    # spread some accesses over many 2 MiB regions so the PDE caches evict
    trace += [("L", BASE + (k * 37 % 64) * (1 << 21), 8) for k in range(data.draw(st.integers(0, 40)))]
    config = cfg(raw)
    assert _engine(trace, config) == run_reference(trace, config)
