"""Rules of MODEL.md checked on tiny geometries that can be worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
from engine_helpers import arrays, cfg, engine_counters
from reference_model import Buddy as RefBuddy
from reference_model import extfrag_index as ref_extfrag
from reference_model import run_reference
from reference_model import splitmix64 as ref_splitmix64
from reference_model import unusable_index as ref_unusable

from memmodel.engine import replay
from memmodel.engine.replay import Buddy, Replay, extfrag_index, removed_frames, splitmix64, unusable_index
from memmodel.errors import OutOfMemoryError

NAMES = {12: "4K", 21: "2M", 30: "1G"}


def leaf(levels: int, shift: int) -> int:
    return levels - (shift - 12) // 9


@pytest.mark.parametrize("g_levels", [4, 5])
@pytest.mark.parametrize("h_levels", [4, 5])
@pytest.mark.parametrize("gs", [12, 21, 30])
@pytest.mark.parametrize("hs", [12, 21, 30])
def test_2d_walk_without_caches_costs_G_plus_1_times_H_plus_1_minus_1(g_levels: int, h_levels: int, gs: int,
                                                                    hs: int) -> None:
    config = cfg({
        "guest": {"levels": g_levels, "page_size": NAMES[gs], "zeroing": False},
        "host": {"levels": h_levels, "page_size": NAMES[hs]},
    })
    # three loads on three different guest pages, far apart: every one walks
    records = [("L", 0x10_0000_0000, 8), ("L", 0x20_0000_0000, 8), ("L", 0x7F_0000_0000, 8)]
    c = engine_counters(records, config)
    G, H = leaf(g_levels, gs), leaf(h_levels, hs)
    assert c["walks"] == 3
    assert c["walk_loads"] == 3 * ((G + 1) * (H + 1) - 1)
    assert c["guest_pte_loads"] == 3 * G
    assert c["ntlb_misses"] == 3 * (G + 1)


def test_2d_walk_costs_24_loads_for_4k_over_4k_and_35_with_5_levels() -> None:
    for levels, want in ((4, 24), (5, 35)):
        config = cfg({"guest": {"levels": levels}, "host": {"levels": levels}})
        assert engine_counters([("L", 0x1234_5678, 4)], config)["walk_loads"] == want


@pytest.mark.parametrize("levels", [4, 5])
@pytest.mark.parametrize("gs", [12, 21, 30])
def test_native_walk_loads_one_entry_per_guest_level(levels: int, gs: int) -> None:
    config = cfg({"virtualized": False, "guest": {"levels": levels, "page_size": NAMES[gs]}})
    c = engine_counters([("S", 0xDEAD_B000, 8)], config)
    assert c["walk_loads"] == c["guest_pte_loads"] == leaf(levels, gs)
    assert c["host_faults"] == c["ntlb_misses"] == c["host_pte_loads"] == 0
    assert "host_unusable_index_2m" not in c


def test_splintering_1g_guest_page_on_2m_host_fills_2m_entries() -> None:
    config = cfg({
        "guest": {"page_size": "1G", "zeroing": False},
        "host": {"page_size": "2M"},
        "tlb": {"l1": [{"page_sizes": ["4K", "2M", "1G"], "entries": 16, "ways": 16}]},
    })
    base = 0x40000000  # one guest 1G page
    records = [
        ("L", base, 8),
        ("L", base + 0x1000, 8),  # same 2 MiB: hit on the 2M entry
        ("L", base + 0x1F_F000, 8),  # same 2 MiB: hit
        ("L", base + 0x20_0000, 8),  # next 2 MiB of the same 1G guest page: miss (splintered)
    ]
    c = engine_counters(records, config)
    assert c["guest_pages_1g"] == 1
    assert (c["walks"], c["l1_hits"]) == (2, 2)
    assert c["host_pages_2m"] >= 2


def test_without_splintering_a_1g_over_1g_entry_covers_the_whole_gigabyte() -> None:
    config = cfg({
        "guest": {"page_size": "1G", "zeroing": False},
        "host": {"page_size": "1G"},
        "tlb": {"l1": [{"page_sizes": ["4K", "2M", "1G"], "entries": 16, "ways": 16}]},
    })
    records = [("L", 0x40000000 + off, 8) for off in (0, 0x20_0000, 0x3FF0_0000)]
    assert engine_counters(records, config)["walks"] == 1


def test_straddling_access_translates_both_pages_and_M_is_one_translation() -> None:
    config = cfg({"virtualized": False})
    c = engine_counters([("L", 0x1FFC, 8), ("M", 0x5000, 4), ("I", 0x400000, 4), ("S", 0x9000, 4096)], config)
    # 0x1FFC+8 crosses into page 2; the M is one translation; a 4096-byte aligned store does not straddle
    assert c["accesses"] == 4
    assert c["instructions"] == 1
    assert c["touched_bytes"] == 4 * 4096


def test_access_wider_than_a_page_translates_first_and_last_byte_only() -> None:
    config = cfg({"virtualized": False})
    c = engine_counters([("L", 0x10010, 3 * 4096)], config)
    assert c["accesses"] == 2
    assert c["touched_bytes"] == 2 * 4096  # pages strictly between are not translated


def test_splitmix64_is_the_standard_function() -> None:
    # first output of the SplitMix64 generator seeded with 0 (Vigna's reference values)
    assert int(splitmix64(np.array([0], dtype=np.uint64))[0]) == 0xE220A8397B1DCDAF
    assert ref_splitmix64(0) == 0xE220A8397B1DCDAF
    xs = np.array([1, 2**63, 2**64 - 1, 12345], dtype=np.uint64)
    assert [int(v) for v in splitmix64(xs)] == [ref_splitmix64(int(x)) for x in xs]


def test_fragmentation_breaks_the_fraction_of_2m_blocks_the_hash_selects() -> None:
    frames = 4 << 18  # 4 GiB
    removed = removed_frames(frames, 0.5, 7)
    # one removed frame per broken block, inside its block, ascending
    assert np.all(np.diff(removed // 512) > 0)
    assert 0.4 < len(removed) / (frames // 512) < 0.6
    assert len(removed_frames(frames, 0.0, 7)) == 0


def test_buddy_free_space_is_the_canonical_decomposition() -> None:
    frames = 1 << 18  # 1 GiB
    for f, seed in ((0.0, 0), (0.3, 1), (0.99, 5)):
        fast = Buddy.build(frames, f, seed)
        ref = RefBuddy(frames, f, seed)
        assert list(fast.nr_free) == ref.nr_free()
    intact = Buddy.build(frames, 0.0, 0)
    assert intact.nr_free[18] == 1 and intact.nr_free[:18].sum() == 0
    broken = RefBuddy(512, 0.999999, 3)  # one 2 MiB block with one frame removed: orders 0..8 once each
    assert broken.nr_free()[:9] == [1] * 9


def test_buddy_alloc_takes_the_lowest_block_of_the_smallest_sufficient_order() -> None:
    b = Buddy.build(1 << 18, 0.0, 0)
    assert b.alloc(0) == 0  # splits the 1 GiB block: orders 0..17 stay free above frame 0
    assert b.alloc(9) == 512  # the order-9 block at 512 is the lowest of that order
    assert b.alloc(0) == 1
    assert b.alloc(1) == 2
    assert b.alloc(18) == -1
    ref = RefBuddy(1 << 18, 0.0, 0)
    assert [ref.alloc(o, "t") for o in (0, 9, 0, 1)] == [0, 512, 1, 2]


def test_guest_falls_back_to_4k_when_fragmentation_leaves_no_free_2m_block() -> None:
    frames = 1 << 18
    intact = (frames // 512) - len(removed_frames(frames, 0.99, 11))
    config = cfg({"virtualized": False, "guest": {"page_size": "2M", "memory": "1G", "fragmentation": 0.99,
                                                  "seed": 11}})
    n = intact + 3
    records = [("L", 0x4000_0000 + i * (1 << 21), 8) for i in range(n)]  # n distinct 2 MiB regions
    c = engine_counters(records, config)
    assert c["guest_pages_2m"] == intact
    assert c["guest_pages_4k"] == c["guest_fallbacks"] == 3


def test_host_falls_back_under_host_fragmentation_and_counts_host_fallbacks() -> None:
    # guest 2M pages spread guest-physical memory over 40 regions; the host has ~no intact 2 MiB block
    config = cfg({"guest": {"page_size": "2M", "memory": "1G"},
                  "host": {"page_size": "2M", "memory": "1G", "fragmentation": 0.999, "seed": 2}})
    c = engine_counters([("L", i << 21, 8) for i in range(40)], config)
    assert c["host_fallbacks"] > 0
    assert c["host_pages_4k"] == c["host_fallbacks"]
    assert c["host_extfrag_index_2m"] >= -1.0


def test_guest_out_of_memory_is_a_clear_error_naming_the_side() -> None:
    config = cfg({"virtualized": False, "guest": {"page_size": "4K", "memory": "1G"}})
    records = [("L", i << 12, 8) for i in range((1 << 18) + 1)]  # one more 4 KiB page than 1 GiB holds
    with pytest.raises(OutOfMemoryError, match="guest out of memory"):
        engine_counters(records, config)


def test_host_prealloc_backs_all_guest_memory_at_start_up() -> None:
    config = cfg({"guest": {"memory": "2G"}, "host": {"page_size": "1G", "prealloc": True}})
    c = engine_counters([("L", 0x1000, 8)], config)
    assert c["host_pages_1g"] == 2
    assert c["host_backed_bytes"] == c["host_zeroed_bytes"] == 2 << 30


def test_unusable_and_extfrag_indices_match_hand_computed_free_lists() -> None:
    nr = np.zeros(19, dtype=np.int64)
    nr[0], nr[9] = 1, 1  # 513 free frames, one order-9 block
    assert unusable_index(nr, 9) == round(1 / 513, 6) == 0.001949
    assert extfrag_index(nr, 9) == -1.0
    assert unusable_index(nr, 18) == 1.0
    assert extfrag_index(nr, 18) == round(1 - (1 + 513 / 2**18) / 2, 6)
    empty = np.zeros(19, dtype=np.int64)
    assert unusable_index(empty, 9) == 0.0 and extfrag_index(empty, 9) == 0.0
    three = np.zeros(19, dtype=np.int64)
    three[0], three[3] = 3, 2  # 19 free frames, 5 blocks, nothing suitable at order 9
    assert unusable_index(three, 9) == 1.0
    assert extfrag_index(three, 9) == round(1 - (1 + 19 / 512) / 5, 6) == 0.792578
    for arr in (nr, three):
        assert unusable_index(arr, 9) == ref_unusable(list(arr), 9)
        assert extfrag_index(arr, 18) == ref_extfrag(list(arr), 18)


def test_a_result_computes_the_four_host_indices_as_the_index_functions_do() -> None:
    """Replay.result computes the four indices in one pass over the free lists (replay._host_indices): the
    same numbers, bit for bit, as unusable_index and extfrag_index at orders 9 and 18."""
    from memmodel.engine.replay import _host_indices

    rng = np.random.default_rng(5)
    cases = [np.zeros(19, dtype=np.int64), np.eye(19, dtype=np.int64)[0], np.eye(19, dtype=np.int64)[18]]
    cases += [rng.integers(0, 4, 19) * (rng.random(19) < rng.random()) for _ in range(2000)]
    cases += [rng.integers(0, 1 << 40, 19) for _ in range(200)]
    for nr in cases:
        nr = nr.astype(np.int64)
        expected = {f"host_{name}_index_{size}": fn(nr, order) for size, order in (("2m", 9), ("1g", 18))
                    for name, fn in (("unusable", unusable_index), ("extfrag", extfrag_index))}
        got = _host_indices(nr)
        assert got == expected and all(type(got[k]) is float for k in got), nr


def test_psc_hit_skips_the_upper_guest_levels() -> None:
    config = cfg({"virtualized": False, "psc": {"guest": [{"level": 3, "entries": 4, "ways": 4}]}})
    # two 4K pages under the same level-4 table: the second walk hits the PDE cache (level 3)
    c = engine_counters([("L", 0x200000, 8), ("L", 0x201000, 8)], config)
    assert c["psc_guest_hits"] == 1
    assert c["guest_pte_loads"] == 4 + 1


def test_nested_tlb_hit_saves_the_host_walk() -> None:
    config = cfg({"guest": {"zeroing": False}, "ntlb": {"entries": 64, "ways": 64}})
    c = engine_counters([("L", 0x200000, 8), ("L", 0x201000, 8)], config)
    # second walk: the 4 guest table gpas hit the nested TLB; only its data gpa (new page) misses
    assert c["walks"] == 2
    assert c["ntlb_hits"] == 4
    assert c["ntlb_misses"] == 5 + 1
    assert c["walk_loads"] == 24 + (4 + 4)


def test_growing_tables_mid_batch_does_not_change_any_counter() -> None:
    # 30,000 distinct pages (the slot and aux tables grow several times inside one batch) and a
    # 7-translation window (the series buffer grows too): counters equal the reference model's.
    rng = np.random.default_rng(3)
    pages = rng.permutation(30_000).astype(np.uint64)
    gva = np.concatenate([pages, pages[:5000]]) * np.uint64(4096) * np.uint64(3) + np.uint64(0x7F00_0000_0000)
    records = [("L", int(a), 8) for a in gva]
    config = cfg({"guest": {"page_size": "4K", "memory": "2G"}, "host": {"page_size": "2M", "memory": "4G"},
                  "tlb": {"l1": [{"page_sizes": ["4K", "2M"], "entries": 16, "ways": 4}]},
                  "psc": {"guest": [{"level": 3, "entries": 8, "ways": 2}]}, "ntlb": {"entries": 8, "ways": 8}})
    result = replay([arrays(records)], config, window=7)
    assert result.counters == run_reference(records, config)
    s = result.series
    assert s["translations"][-1] == (len(records) // 7) * 7
    assert np.all(np.diff(s["walks"]) >= 0) and s["walks"][-1] <= result.counters["walks"]



def test_a_replay_stopped_out_of_memory_has_no_partial_result() -> None:
    """docs/model.md Part 4: an out-of-memory stop reports no counters (a partial result would look
    complete); the Replay refuses result() and further feeding with the same error."""
    c = cfg({"virtualized": False, "guest": {"memory": "1G", "page_size": "2M"}})
    r = Replay(c)
    gva = np.arange(768, dtype=np.uint64) << np.uint64(21)  # 1.5 GiB of 2 MiB pages: more than 1 GiB
    with pytest.raises(OutOfMemoryError, match="guest out of memory"):
        r.feed(np.full(768, 2, np.uint8), gva, np.full(768, 8, np.uint64))
    with pytest.raises(OutOfMemoryError, match=r"guest out of memory.*this replay is over"):
        r.result()
    with pytest.raises(OutOfMemoryError, match="this replay is over"):
        r.feed(np.full(1, 1, np.uint8), gva[:1], np.full(1, 8, np.uint64))

