"""MODEL.md v2 rules (sections 1, 2 and 7-9) worked by hand on tiny configs and tiny traces.

Each model test is a function of a ``run(records, cfg) -> counters`` callable so that the same hand-worked
expectations check every implementation of the model: the literal reference model now, the engine
(both are in ``RUNNERS``). The section 1 tests read tiny lackey texts with both the reference
reader and memmodel's reader. Frame numbers in the comments are 4 KiB guest-physical (or, for
the host allocator, host-physical) frames under ``placement = "lowest"`` on fresh memory, where
allocations of one order take the next frames in ascending order.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from engine_helpers import arrays, cfg, engine_counters
from hypothesis import given, settings
from hypothesis import strategies as st
from reference_model import parse_lackey_simple, run_reference, splitmix64

from memmodel.config import ModelConfig
from memmodel.errors import TraceError
from memmodel.trace import iter_batches
from memmodel.trace.schema import KIND_NAMES

Records = list[tuple[str, int, int]]
Run = Callable[[Records, ModelConfig], dict[str, Any]]

K4, M2, G1 = 1 << 12, 1 << 21, 1 << 30


def _reference_extras(records: Records, config: ModelConfig) -> dict[str, Any]:
    return run_reference(records, config, extras=True)[1]


def _engine_extras(records: Records, config: ModelConfig) -> dict[str, Any]:
    from memmodel.engine import Replay

    a = arrays(records)
    r = Replay(config)
    r.feed(a["kind"], a["gva"], a["size"])
    return r.result().extras


RUNNERS: dict[str, Run] = {"reference": run_reference, "engine": engine_counters}
EXTRA_RUNNERS: dict[str, Run] = {"reference": _reference_extras, "engine": _engine_extras}


@pytest.fixture(params=sorted(RUNNERS))
def run(request: pytest.FixtureRequest) -> Run:
    return RUNNERS[request.param]


@pytest.fixture(params=sorted(EXTRA_RUNNERS))
def run_extras(request: pytest.FixtureRequest) -> Run:
    return EXTRA_RUNNERS[request.param]


def native(page_size: str, **guest: Any) -> ModelConfig:
    return cfg({"virtualized": False, "guest": {"page_size": page_size, "memory": "1G", **guest}})


L1_4K_64 = {"l1": [{"page_sizes": ["4K"], "entries": 64, "ways": 64}]}


# ==== Section 7: U records, release =================================================================
def test_4k_munmap_inside_a_2m_page_splits_it_and_frees_one_frame(run: Run) -> None:
    c = run([("S", 0x4000_0000, 8), ("U", 0x4000_1000, K4)], native("2M"))
    assert (c["unmaps"], c["unmapped_bytes"]) == (1, K4)
    assert c["guest_splits"] == 1
    assert c["guest_freed_bytes"] == K4
    assert c["guest_resident_bytes"] == M2 - K4
    # root + level-2 and level-3 tables of the 2M fault + the level-4 table the split needs
    assert c["guest_pt_pages"] == 4
    # 1 page <= 33: invalidated one by one
    assert (c["tlb_page_invalidations"], c["tlb_flushes"]) == (1, 0)
    # splits change no cumulative counter
    assert (c["guest_faults"], c["guest_pages_2m"], c["guest_zeroed_bytes"]) == (1, 1, M2)


def test_a_released_4k_page_refaults_as_a_4k_fallback_inside_the_remaining_2m_region(run: Run) -> None:
    records = [("S", 0x4000_0000, 8), ("U", 0x4000_1000, K4), ("L", 0x4000_1000, 8)]
    c = run(records, native("2M"))
    assert (c["guest_faults"], c["guest_pages_2m"], c["guest_pages_4k"], c["guest_fallbacks"]) == (2, 1, 1, 1)
    assert c["guest_zeroed_bytes"] == M2 + K4  # cumulative
    assert c["guest_resident_bytes"] == M2
    assert c["touched_bytes"] == 2 * K4  # 0x40000000 and 0x40001000, the latter counted once


def test_a_region_emptied_over_several_partial_unmaps_takes_a_2m_page_and_a_partly_emptied_one_does_not(
        run: Run) -> None:
    # two 2M pages, each split by a 4K munmap; then [1M, 3M) frees 256 pages of region 0 and 255 of
    # region 1 in one release (two leaf tables, each partly); then [0, 1M) frees region 0's last 255
    records = [("S", 0, 8), ("S", M2, 8), ("U", K4, K4), ("U", M2 + K4, K4),
               ("U", M2 // 2, M2), ("U", 0, M2 // 2),
               ("L", 0, 8),              # region 0 holds nothing: a 2M page again
               ("L", M2 + 2 * K4, 8)]    # region 1 still holds 256 4K pages: a 4K fallback
    c = run(records, native("2M"))
    assert c["guest_splits"] == 2
    assert c["guest_freed_bytes"] == M2 + 256 * K4  # region 0 whole, region 1's first half
    assert (c["guest_faults"], c["guest_pages_2m"], c["guest_pages_4k"], c["guest_fallbacks"]) == (4, 3, 1, 1)
    assert c["guest_resident_bytes"] == M2 + 256 * K4 + K4


def test_a_2m_region_whose_4k_pages_were_all_released_takes_a_2m_page_again(run: Run) -> None:
    records = [("S", 0, 8), ("U", 0, K4), ("U", K4, M2 - K4), ("L", 0, 8)]
    c = run(records, native("2M"))
    assert c["guest_splits"] == 1  # the first U splits; the second frees the other 511 pages whole
    assert c["guest_freed_bytes"] == M2
    assert (c["guest_faults"], c["guest_pages_2m"], c["guest_pages_4k"], c["guest_fallbacks"]) == (2, 2, 0, 0)
    assert c["guest_zeroed_bytes"] == 2 * M2
    assert c["touched_bytes"] == K4  # a page unmapped and touched again counts once


def test_a_1g_page_crossing_p_splits_into_2m_pages_one_of_which_splits_again(run: Run) -> None:
    config = cfg({"virtualized": False, "guest": {"page_size": "1G", "memory": "2G", "zeroing": False}})
    c = run([("S", G1, 8), ("U", G1 + K4, K4)], config)
    assert c["guest_pages_1g"] == 1
    assert c["guest_splits"] == 2
    assert c["guest_pt_pages"] == 4  # root, level 2 (1G leaf), level 3 (1G split), level 4 (2M split)
    assert c["guest_freed_bytes"] == K4
    assert c["guest_resident_bytes"] == G1 - K4


def test_splits_at_p_come_first_then_at_q_and_only_pages_inside_are_freed(run: Run) -> None:
    # r = [1G + 2M - 4K, 1G + 2M + 4K): the 1G page crosses p (split 1), the 2M page under p (split 2),
    # then the 2M page under q (split 3); two 4 KiB pages lie inside r.
    config = cfg({"virtualized": False, "guest": {"page_size": "1G", "memory": "2G", "zeroing": False}})
    c = run([("S", G1, 8), ("U", G1 + M2 - K4, 2 * K4)], config)
    assert c["guest_splits"] == 3
    assert c["guest_pt_pages"] == 5  # root, level 2, level 3, two level-4 tables
    assert c["guest_freed_bytes"] == 2 * K4
    assert c["tlb_page_invalidations"] == 2


def test_unmap_range_rounds_both_ends_up_to_4k(run: Run) -> None:
    # U(0x1800, 4096): r = [0x2000, 0x3000); page 0x1000 stays, page 0x2000 is freed
    records = [("S", 0x1000, 8), ("S", 0x2000, 8), ("U", 0x1800, K4), ("L", 0x1000, 8), ("L", 0x2000, 8)]
    c = run(records, native("4K"))
    assert c["unmapped_bytes"] == K4
    assert c["guest_freed_bytes"] == K4
    assert c["guest_faults"] == 3  # only 0x2000 faults again


def test_unmap_range_is_capped_at_2_to_the_64(run: Run) -> None:
    top = 1 << 64
    records = [("U", top - 2 * K4, top - 1), ("U", top - K4 + 1, 10)]
    c = run(records, native("4K"))
    assert c["unmaps"] == 2
    assert c["unmapped_bytes"] == 2 * K4  # [2^64 - 8K, 2^64) and an empty [2^64, 2^64)


def test_n_zero_and_empty_ranges_count_in_unmaps_only(run: Run) -> None:
    config = cfg({"virtualized": False, "guest": {"page_size": "4K", "memory": "1G"}, "tlb": L1_4K_64})
    base = [("S", 0x5000, 8), ("S", 0x6000, 8)]
    plain = run([*base, ("L", 0x5000, 8)], config)
    c = run([*base, ("U", 0x5000, 0), ("U", 0x5800, 100), ("L", 0x5000, 8)], config)
    assert (c["unmaps"], c["unmapped_bytes"]) == (2, 0)
    assert {k: v for k, v in c.items() if k != "unmaps"} == {k: v for k, v in plain.items() if k != "unmaps"}
    assert c["l1_hits"] == 1  # no invalidation happened


def test_unmap_of_an_unmapped_range_frees_nothing_and_invalidates_nothing(run: Run) -> None:
    config = cfg({"virtualized": False, "guest": {"page_size": "4K", "memory": "1G"}, "tlb": L1_4K_64})
    c = run([("S", 0x5000, 8), ("U", 0x9000, 4 * K4), ("L", 0x5000, 8)], config)
    assert c["unmapped_bytes"] == 4 * K4
    assert c["guest_freed_bytes"] == c["guest_splits"] == 0
    assert c["tlb_page_invalidations"] == c["tlb_flushes"] == 0


def test_freed_guest_frames_stay_host_backed_under_unmap_free(run: Run) -> None:
    # guest: root 0, tables 1 and 2, the 2M page at frames 512..1023, the split's table 3; the freed
    # frame 513 is the only order-0 block, so the re-fault takes it again, still host-backed.
    config = cfg({"guest": {"page_size": "2M", "memory": "1G"}, "host": {"page_size": "2M", "memory": "2G"}})
    before = run([("S", 0x4000_0000, 8)], config)
    c = run([("S", 0x4000_0000, 8), ("U", 0x4000_1000, K4), ("L", 0x4000_1000, 8)], config)
    assert c["guest_freed_bytes"] == K4
    assert c["host_freed_bytes"] == c["host_discards"] == 0
    assert c["host_faults"] == before["host_faults"] == 2  # [0, 2M) for the tables, [2M, 4M) for the page
    assert c["host_resident_bytes"] == c["host_resident_peak_bytes"] == 2 * M2
    assert c["guest_pt_pages"] == 4


def test_native_runs_report_every_host_counter_as_zero_under_unmaps(run: Run) -> None:
    c = run([("S", 0, 8), ("U", K4, K4), ("L", K4, 8)], native("2M"))
    host = [k for k in c if k.startswith("host_") or k.startswith("ntlb_")]
    assert host and all(c[k] == 0 for k in host)
    assert "host_unusable_index_2m" not in c
    assert c["guest_splits"] == 1


# ==== Section 7: pass-through and host discard ==========================================================
def memctl(**extra: Any) -> ModelConfig:
    return cfg({
        "guest": {"page_size": "1G", "memory": "2G", "zeroing": False, "unmap": "passthrough"},
        "host": {"page_size": "2M", "memory": "1G"},
        **extra,
    })


def test_passthrough_keeps_guest_mappings_and_the_host_discards_the_image(run: Run) -> None:
    # guest root at frame 0; the level-2 table at frame 1; the 1G page at guest-physical [1G, 2G).
    c = run([("S", G1, 8), ("U", G1, M2), ("L", G1, 8)], memctl())
    assert c["guest_freed_bytes"] == c["guest_splits"] == 0
    assert c["guest_faults"] == 1 and c["guest_resident_bytes"] == G1
    assert (c["host_discards"], c["host_freed_bytes"], c["host_splits"]) == (1, M2, 0)
    assert c["host_faults"] == 3  # [0, 2M) for the tables, [1G, 1G + 2M) twice (re-fault after the discard)
    assert c["host_zeroed_bytes"] == 3 * M2  # cumulative
    assert c["host_resident_bytes"] == 2 * M2 and c["host_resident_peak_bytes"] == 2 * M2


def test_passthrough_frees_every_backed_frame_of_sparsely_backed_regions(run: Run) -> None:
    # guest: root at frame 0, the level-2 table at frame 1, the 1G page at guest frames 262144.. (page i of
    # the 1G page = guest frame 262144 + i), each touched page a 4K host page. The touched pages sit on
    # both sides of 8-frame word boundaries (the engine skips unbacked frames 8 at a time), the first
    # release starts at an unaligned frame (9) and ends inside a word of another 2M region.
    config = cfg({"guest": {"page_size": "1G", "memory": "2G", "zeroing": False, "unmap": "passthrough"},
                  "host": {"page_size": "4K", "memory": "1G"}})
    region0 = [0, 1, 7, 8, 9, 15, 16, 20, 22, 63, 64, 100, 255, 256, 510, 511]
    region3 = [3 * 512 + 5, 3 * 512 + 300]
    touches = [("S", G1 + i * K4, 8) for i in region0 + region3]
    first = run([*touches, ("U", G1 + 9 * K4, (3 * 512 + 6 - 9) * K4)], config)
    assert (first["host_discards"], first["host_freed_bytes"]) == (1, 13 * K4)  # 9..511 of region 0, 5 of region 3
    c = run([*touches, ("U", G1 + 9 * K4, (3 * 512 + 6 - 9) * K4), ("U", G1, G1)], config)
    assert (c["host_discards"], c["host_freed_bytes"], c["host_splits"]) == (2, 18 * K4, 0)
    assert c["host_faults"] == 2 + 18  # the two tables, then one 4K host page per touched page
    assert c["host_resident_bytes"] == 2 * K4  # the tables' frames stay backed


def test_release_frees_every_mapping_at_the_group_edges_of_a_leaf_table(run: Run) -> None:
    # 4K guest pages, one leaf table for [0, 2M): mappings on both sides of 8-entry group edges (the
    # engine visits a leaf table's mappings by the groups of 8 entries that hold one), releases that
    # start and end inside groups, one ending at entry 511 of the table; then two freed pages fault
    # again and a last release must find them.
    config = cfg({"guest": {"page_size": "4K", "memory": "1G", "zeroing": False},
                  "host": {"page_size": "4K", "memory": "1G"}})
    entries = [0, 1, 7, 8, 9, 15, 16, 63, 64, 255, 256, 503, 504, 505, 510, 511]
    touches: Records = [("S", i * K4, 8) for i in entries]
    middle = ("U", 9 * K4, (505 - 9) * K4)  # entries 9..504
    c = run([*touches, middle], config)
    assert c["guest_freed_bytes"] == 9 * K4  # 9, 15, 16, 63, 64, 255, 256, 503, 504
    tail = ("U", 505 * K4, 6 * K4)  # entries 505..510
    c = run([*touches, middle, tail], config)
    assert c["guest_freed_bytes"] == 11 * K4  # and 505, 510
    c = run([*touches, middle, tail, ("U", 0, M2)], config)
    assert c["guest_freed_bytes"] == 16 * K4 and c["guest_resident_bytes"] == 0  # and 0, 1, 7, 8, 511
    again: Records = [("S", 8 * K4, 8), ("S", 504 * K4, 8), ("U", 0, M2)]
    c = run([*touches, middle, tail, ("U", 0, M2), *again], config)
    assert c["guest_faults"] == 16 + 2
    assert c["guest_freed_bytes"] == 18 * K4 and c["guest_resident_bytes"] == 0


def test_freed_host_halves_merge_with_each_other_and_with_their_free_buddy(run: Run) -> None:
    # Host allocator (1 GiB = 2^18 frames, lowest placement):
    #   host root 0; the host page for guest-physical [0, 2M): tables 1, 2 and data 512..1023;
    #   the host page for guest-physical [1G, 1G + 2M): level-3 table 3, data 1024..1535 (1536 stays
    #   a free order-9 block).
    #   U #1 discards [1G, 1G + 1M): the 2M host page crosses q, splits (level-4 table at frame 4),
    #   and frames 1024..1279 are freed, merging into one order-8 block.
    #   U #2 discards [1G + 1M, 1G + 2M): 1280..1535 merge to order 8, then with 1024 (order 9), then
    #   with the free buddy 1536 (order 10).
    # Free at the end: 5 (o0), 6 (o1), 8..256 (o3..o8), 1024 (o10), 2048..131072 (o11..o17).
    c = run([("S", G1, 8), ("U", G1, 1 << 20), ("U", G1 + (1 << 20), 1 << 20)], memctl())
    assert (c["host_splits"], c["host_discards"], c["host_freed_bytes"]) == (1, 2, M2)
    assert c["host_pt_pages"] == 5
    free_pages = (1 << 18) - 5 - 512
    suitable_2m = sum(1 << (o - 9) for o in range(10, 18))
    free_blocks = 2 + len(range(3, 9)) + len(range(10, 18))
    assert c["host_unusable_index_2m"] == round((free_pages - suitable_2m * 512) / free_pages, 6)
    assert c["host_extfrag_index_1g"] == round(1 - (1 + free_pages / 2**18) / free_blocks, 6)
    assert c["host_unusable_index_1g"] == 1.0


def test_passthrough_discards_neighbouring_guest_pages_images_one_by_one(run: Run) -> None:
    # Guest 4K pages, lowest placement: root 0; region A = [0, 2M): tables 1, 2, 3, page A0 -> 4;
    # region B = [2M, 4M): table 5, page B511 -> 6; then A1..A511 -> frames 7..517 and B0..B505 ->
    # frames 518..1023. The 512 pages [A506, B506) map frames 512..1023: one host 2M page. Discarded
    # one by one, the first 4 KiB image splits that host page; merged into one range it would be
    # freed whole, without a split.
    config = cfg({
        "guest": {"page_size": "4K", "memory": "1G", "zeroing": False, "unmap": "passthrough"},
        "host": {"page_size": "2M", "memory": "1G"},
    })
    touches = [0, M2 + 511 * K4] + [j * K4 for j in range(1, 512)] + [M2 + j * K4 for j in range(506)]
    records: Records = [("S", a, 8) for a in touches]
    records.append(("U", 506 * K4, 512 * K4))
    c = run(records, config)
    assert (c["host_splits"], c["host_discards"], c["host_freed_bytes"]) == (1, 1, M2)
    assert c["guest_resident_bytes"] == len(touches) * K4
    assert c["guest_freed_bytes"] == c["guest_splits"] == 0


def test_passthrough_over_unmapped_virtual_space_does_nothing(run: Run) -> None:
    c = run([("S", G1, 8), ("U", 0x1_0000_0000_0000, G1)], memctl())
    assert c["unmapped_bytes"] == G1
    assert c["host_discards"] == c["host_freed_bytes"] == c["host_splits"] == 0


# ==== Section 9: TLB invalidation ============================================================================
@pytest.mark.parametrize(("pages", "flushed"), [(33, False), (34, True)])
def test_33_pages_are_invalidated_one_by_one_and_34_flush_the_tlb(run: Run, pages: int, flushed: bool) -> None:
    config = cfg({"virtualized": False, "guest": {"page_size": "4K", "memory": "1G"}, "tlb": L1_4K_64})
    base = 0x7000_0000
    records: Records = [("S", base + j * K4, 8) for j in range(35)]
    records += [("U", base, pages * K4), ("L", base + 34 * K4, 8)]  # page 34 lies outside r
    c = run(records, config)
    assert c["tlb_flushes"] == int(flushed)
    assert c["tlb_page_invalidations"] == (0 if flushed else pages)
    assert c["l1_hits"] == (0 if flushed else 1)
    assert c["walks"] == 35 + int(flushed)


def test_page_invalidation_removes_every_page_size_entry_covering_the_page(run: Run) -> None:
    # The 2M page's entry (21, 0) must go with the first 1-page invalidation (tag (21, x >> 21)); after
    # all 512 pages are released by U records of at most 33 pages, 0 faults as a 2M page again and its
    # lookup of (21, 0) must miss.
    config = cfg({"virtualized": False, "guest": {"page_size": "2M", "memory": "1G"},
                  "tlb": {"l1": [{"page_sizes": ["4K", "2M"], "entries": 8, "ways": 8}]}})
    records: Records = [("S", 0, 8), ("U", 0, K4)]
    records += [("U", K4 + j * 32 * K4, 32 * K4) for j in range(16)]
    records.append(("L", 0, 8))
    c = run(records, config)
    assert c["guest_splits"] == 1 and c["guest_freed_bytes"] == M2
    assert (c["tlb_page_invalidations"], c["tlb_flushes"]) == (1 + 16 * 32, 0)
    assert c["guest_pages_2m"] == 2
    assert (c["l1_hits"], c["walks"]) == (0, 2)


def test_guest_invalidation_empties_the_guest_pscs(run: Run) -> None:
    # Level-3 PSC (key v >> 21): the second walk in the 2M region hits it; after a 1-page invalidation
    # it is empty, so the third walk loads all 4 guest entries again.
    config = cfg({"virtualized": False, "guest": {"page_size": "4K", "memory": "1G"},
                  "psc": {"guest": [{"level": 3, "entries": 4, "ways": 4}]}})
    records: Records = [("S", 0x1000, 8), ("S", 0x2000, 8), ("U", 0x2000, K4), ("S", 0x3000, 8)]
    c = run(records, config)
    assert c["tlb_page_invalidations"] == 1
    assert c["psc_guest_hits"] == 1
    assert c["guest_pte_loads"] == 4 + 1 + 4


def test_guest_initiated_flush_keeps_the_nested_tlb(run: Run) -> None:
    # Virtualized 4K/2M; after a 34-page flush the walk of the kept page re-uses every nested TLB entry.
    config = cfg({
        "guest": {"page_size": "4K", "memory": "1G"},
        "host": {"page_size": "2M", "memory": "2G"},
        "tlb": L1_4K_64,
        "ntlb": {"entries": 16, "ways": 16},
    })
    base = 0x7000_0000
    records: Records = [("S", base + j * K4, 8) for j in range(35)]
    before = run(records, config)
    c = run([*records, ("U", base, 34 * K4), ("L", base + 34 * K4, 8)], config)
    assert c["tlb_flushes"] == 1 and c["walks"] == before["walks"] + 1
    assert c["ntlb_misses"] == before["ntlb_misses"]
    assert c["ntlb_hits"] == before["ntlb_hits"] + 5  # 4 guest tables + the data page


@pytest.mark.parametrize("backed", [True, False])
def test_a_host_discard_flushes_everything_but_a_discard_of_unbacked_frames_does_not(run: Run,
                                                                                     backed: bool) -> None:
    # The 1G guest page's image [1G, 2G) is host-backed only at [1G, 1G + 2M) (first touch).
    config = memctl(tlb={"l1": [{"page_sizes": ["4K", "2M", "1G"], "entries": 4, "ways": 4}]},
                    ntlb={"entries": 4, "ways": 4})
    target = G1 if backed else G1 + 4 * M2
    c = run([("S", G1, 8), ("U", target, M2), ("L", G1, 8)], config)
    assert c["host_discards"] == int(backed)
    assert c["host_freed_bytes"] == (M2 if backed else 0)
    assert c["l1_hits"] == (0 if backed else 1)
    assert c["walks"] == (2 if backed else 1)
    assert c["tlb_flushes"] == c["tlb_page_invalidations"] == 0  # pass-through never invalidates as the guest


# ==== Sections 3 and 9: hits on large entries (2M, 1G) ==========================================================
#: Separate L1 arrays per page size, as the CPU presets have (one set each: no conflict misses).
L1_BY_SIZE = {"l1": [{"page_sizes": ["4K"], "entries": 8, "ways": 8}, {"page_sizes": ["2M"], "entries": 8, "ways": 8},
                     {"page_sizes": ["1G"], "entries": 4, "ways": 4}]}


def test_a_page_first_touched_under_a_cached_2m_entry_hits_it_and_counts_as_touched(run: Run) -> None:
    # Two 2M regions, each faulted and walked once; the other pages of each region hit the region's entry,
    # on their first touch as later (alternating regions, so no translation repeats the last page)
    r0, r1 = 0x4000_0000, 0x4020_0000
    records: Records = [("S", r0, 8), ("S", r1, 8)]
    records += [("L", r + K4 * j, 8) for j in (1, 1, 7) for r in (r0, r1)]
    c = run(records, cfg({"virtualized": False, "guest": {"page_size": "2M", "memory": "1G"}, "tlb": L1_BY_SIZE}))
    assert (c["accesses"], c["walks"], c["l1_hits"], c["guest_faults"]) == (8, 2, 6, 2)
    assert c["touched_bytes"] == 6 * K4  # pages 0, 1 and 7 of both regions


def test_a_page_first_touched_under_a_cached_1g_entry_hits_it_and_counts_as_touched(run: Run) -> None:
    config = cfg({"virtualized": False, "guest": {"page_size": "1G", "memory": "3G", "zeroing": False},
                  "tlb": L1_BY_SIZE})
    records: Records = [("S", G1, 8), ("S", 2 * G1, 8), ("L", G1 + M2 + K4, 8), ("L", 2 * G1 + 5 * M2, 8),
                        ("L", G1 + M2 + K4, 8)]
    c = run(records, config)
    assert (c["accesses"], c["walks"], c["l1_hits"], c["guest_pages_1g"]) == (5, 2, 3, 2)
    assert c["touched_bytes"] == 4 * K4


def test_a_split_inside_a_2m_region_removes_its_entry_so_a_first_touch_there_walks(run: Run) -> None:
    # U of one page of r0 splits r0's 2M page and invalidates (2M, r0): the first touch of another page of
    # r0 then looks up its 4K entry (es = 4K now) and walks; r1's entry still serves r1's new page
    r0, r1 = 0x4000_0000, 0x4020_0000
    config = cfg({"virtualized": False, "guest": {"page_size": "2M", "memory": "1G"}, "tlb": L1_BY_SIZE})
    records: Records = [("S", r0, 8), ("S", r1, 8), ("U", r0 + 5 * K4, K4), ("L", r0 + K4, 8), ("L", r1 + K4, 8)]
    c = run(records, config)
    assert (c["guest_splits"], c["tlb_page_invalidations"]) == (1, 1)
    assert (c["walks"], c["l1_hits"]) == (3, 1)
    assert c["touched_bytes"] == 4 * K4


def test_a_host_split_under_a_2m_entry_flushes_it_so_the_region_s_pages_walk_as_4k(run: Run) -> None:
    # memctl-like: a 1G guest page over 2M host pages (es = 2M). A pass-through U of one page splits the
    # host page and discards a frame (a host flush): every page of the region then has es = 4K and walks,
    # the one touched before and a new one alike
    config = cfg({"guest": {"page_size": "1G", "memory": "2G", "zeroing": False, "unmap": "passthrough"},
                  "host": {"page_size": "2M", "memory": "4G"}, "tlb": L1_BY_SIZE})
    records: Records = [("S", G1, 8), ("L", G1 + K4, 8), ("U", G1 + 2 * K4, K4), ("L", G1 + K4, 8),
                        ("L", G1 + 3 * K4, 8), ("L", G1 + K4, 8)]
    c = run(records, config)
    assert (c["host_discards"], c["host_splits"]) == (1, 1)  # a counted discard: the host flushes (section 9)
    assert (c["walks"], c["l1_hits"]) == (3, 2)  # L1 hits: the second load, and the last (a 4K entry)
    assert c["touched_bytes"] == 3 * K4


# ==== Section 8: the clock and free page reporting =============================================================
def thp_reporting(interval: int) -> ModelConfig:
    return cfg({
        "guest": {"page_size": "2M", "memory": "1G"},
        "host": {"page_size": "2M", "memory": "2G"},
        "balloon": {"reporting": True, "interval": interval, "order": 9},
    })


# Guest frames (lowest placement): root 0, tables 1, 2; S 0 -> the 2M page 512..1023; S 2M -> the
# order-10 block 1024 is split, the page takes 1024..1535 and 1536 stays free (order 9, never
# touched). U(0, 2M) frees 512..1023: free order-9 blocks 512 (host-backed) and 1536 (not).
LIFECYCLE: Records = [("S", 0, 8), ("S", M2, 8), ("U", 0, M2)]


def test_a_pass_after_every_record_leaves_the_host_backing_what_one_pass_at_the_end_leaves(run: Run) -> None:
    # Reporting at order 0 on a guest whose free frames are scattered (random placement, half its memory
    # taken at start): each first touch of a far address allocates guest tables and a page in fresh
    # 2 MiB regions, which the host backs with 2 MiB pages holding hundreds of free guest frames; a `U`
    # frees a page. Whether a pass runs after every record or once after the last, the last pass leaves
    # every free block unbacked, so the host ends with the same frames (the engine's passes after the
    # first visit only the blocks that guest frees and host faults touched since the pass before: Part 3
    # item 7; the pass at the end is a first pass, which visits every free block).
    def config(interval: int) -> ModelConfig:
        return cfg({"guest": {"page_size": "4K", "memory": "1G", "zeroing": False, "placement": "random",
                              "seed": 0, "fragmentation": 0.5},
                    "host": {"page_size": "2M", "memory": "2G"},
                    "balloon": {"reporting": True, "interval": interval, "order": 0}})

    records: Records = [("S", 0, 8), ("S", 1 << 39, 8), ("S", 2 << 39, 8), ("U", 1 << 39, K4), ("L", 0, 8)]
    for i in (1, 2, 3, 5):  # prefixes ending in a clock tick (a `U` does not tick)
        every = run(records[:i], config(1))
        once = run(records[:i], config(sum(kind != "U" for kind, _, _ in records[:i])))
        assert (every["report_ticks"], once["report_ticks"]) == (i - (i == 5), 1)
        assert every["host_resident_bytes"] == once["host_resident_bytes"], records[i - 1]
        assert every["host_faults"] == once["host_faults"] > 0
        assert every["host_discards"] > 0
    assert every["guest_freed_bytes"] == K4


def test_a_reporting_pass_discards_free_backed_blocks_and_counts_one_discard_each(run: Run) -> None:
    c = run([*LIFECYCLE, ("I", 0x400000, 4)], thp_reporting(3))
    assert c["report_ticks"] == 1
    assert (c["host_discards"], c["host_freed_bytes"]) == (1, M2)
    assert c["host_resident_bytes"] == 2 * M2 and c["host_resident_peak_bytes"] == 3 * M2


def test_reported_blocks_keep_no_mark_and_unbacked_blocks_are_not_discarded_again(run: Run) -> None:
    c = run([*LIFECYCLE, *[("I", 0x400000, 4)] * 10], thp_reporting(3))
    assert c["report_ticks"] == 4  # clock 3, 6, 9, 12
    assert (c["host_discards"], c["host_freed_bytes"]) == (1, M2)


def test_u_does_not_advance_the_clock(run: Run) -> None:
    # clock: S 1, S 2, U -, L 3. The pass runs after L, whose fault took block 512 back: nothing free is
    # backed. Had U ticked the clock, the pass would have discarded 512 before the fault.
    c = run([*LIFECYCLE, ("L", 2 * M2, 8)], thp_reporting(3))
    assert c["report_ticks"] == 1
    assert c["host_discards"] == c["host_freed_bytes"] == 0
    assert c["host_faults"] == 3  # [0, 2M) for the tables and two pages; the re-fault is still backed


def test_a_report_pass_runs_after_both_translations_of_a_straddle(run: Run) -> None:
    # The straddle's first byte is on the mapped page [2M, 4M), its last byte faults at 4M and takes
    # block 512. A pass between the two translations would have discarded block 512 first.
    c = run([*LIFECYCLE, ("L", 2 * M2 - 4, 8)], thp_reporting(3))
    assert c["accesses"] == 4 and c["guest_faults"] == 3
    assert c["report_ticks"] == 1
    assert c["host_discards"] == c["host_freed_bytes"] == 0
    assert c["host_faults"] == 3


def test_reporting_respects_the_order_threshold(run: Run) -> None:
    config = cfg({
        "guest": {"page_size": "2M", "memory": "1G"},
        "host": {"page_size": "2M", "memory": "2G"},
        "balloon": {"reporting": True, "interval": 1, "order": 10},
    })
    c = run([*LIFECYCLE, ("I", 0x400000, 4)], config)
    assert c["report_ticks"] == 3
    assert c["host_discards"] == 0  # the backed free block 512 is of order 9 < 10


# ==== Section 2: random placement =============================================================================
def _k(seed: int, i: int, m: int) -> int:
    """MODEL.md section 2: k = splitmix64(splitmix64(seed XOR 0xA5A5A5A5) + i) mod m."""
    return splitmix64((splitmix64(seed ^ 0xA5A5A5A5) + i) % (1 << 64)) % m


@pytest.mark.parametrize("k", [0, 1])
def test_random_placement_takes_the_kth_lowest_block_of_the_smallest_sufficient_order(run: Run, k: int) -> None:
    # Guest allocations (2M pages, 1 GiB, no zeroing): i=0 root 0, i=1 table 1, i=2 table 2, i=3 page A
    # 512, i=4 page B 1024 (1536 stays free), i=5 page C 1536; all with m = 1. U(A) and U(C) free
    # 512 and 1536 (two order-9 blocks, m = 2). A was host-backed (4K host pages) only at its offset 0,
    # C only at offset 4K. Page D's fault (i = 6) takes block 512 (k = 0: its offset 0 is backed, no
    # host fault) or 1536 (k = 1: a host fault).
    seed = next(s for s in range(100) if _k(s, 6, 2) == k)
    config = cfg({
        "guest": {"page_size": "2M", "memory": "1G", "zeroing": False, "placement": "random", "seed": seed},
        "host": {"page_size": "4K", "memory": "1G"},
    })
    records: Records = [("S", 0, 8), ("S", M2, 8), ("S", 2 * M2 + K4, 8), ("U", 0, M2), ("U", 2 * M2, M2),
                        ("L", 3 * M2, 8)]
    c = run(records, config)
    # host faults: guest root, tables 1 and 2, A, B, C, and D unless it landed on A's backed frame
    assert c["host_faults"] == 6 + k
    assert c["guest_freed_bytes"] == 2 * M2


def test_lowest_placement_is_k_zero(run: Run) -> None:
    config = cfg({
        "guest": {"page_size": "2M", "memory": "1G", "zeroing": False},
        "host": {"page_size": "4K", "memory": "1G"},
    })
    records: Records = [("S", 0, 8), ("S", M2, 8), ("S", 2 * M2 + K4, 8), ("U", 0, M2), ("U", 2 * M2, M2),
                        ("L", 3 * M2, 8)]
    assert run(records, config)["host_faults"] == 6


# ==== Extras (non-canonical) ===================================================================================
def test_zeroed_refault_extras_count_only_refaults(run_extras: Run) -> None:
    # Guest side: page 0x1000 translated, released and translated again: one 4 KiB guest re-fault.
    # Host side (pass-through): [1G, 1G + 2M) discarded and touched again: one 2M host re-fault.
    guest = run_extras([("S", 0x1000, 8), ("U", 0x1000, K4), ("L", 0x1000, 8), ("L", 0x2000, 8)], native("4K"))
    assert guest["guest_zeroed_refault_bytes"] == K4
    assert guest["host_zeroed_refault_bytes"] == 0
    host = run_extras([("S", G1, 8), ("U", G1, M2), ("L", G1, 8)],
                      cfg({"guest": {"page_size": "1G", "memory": "2G", "unmap": "passthrough"},
                           "host": {"page_size": "2M", "memory": "4G"}}))
    # the guest zeroed its 1G page once (no guest re-fault); the host re-faulted [1G, 1G + 2M) once
    assert host["guest_zeroed_refault_bytes"] == 0
    assert host["host_zeroed_refault_bytes"] == M2


# ==== Section 1: syscall lines -> U records (the reference reader and memmodel's) ===============================
Read = Callable[[str], Records]


def _memmodel_reader(tmp_path: Path) -> Read:
    def read(text: str) -> Records:
        path = tmp_path / "t.lackey"
        path.write_text(text)
        out: Records = []
        for batch in iter_batches(path, format="lackey"):
            out += [(KIND_NAMES[k], a, n) for k, a, n in zip(batch["kind"].tolist(), batch["gva"].tolist(),
                                                              batch["size"].tolist(), strict=True)]
        return out

    return read


@pytest.fixture(params=["reference", "memmodel"])
def read(request: pytest.FixtureRequest, tmp_path: Path) -> Read:
    return parse_lackey_simple if request.param == "reference" else _memmodel_reader(tmp_path)


def test_munmap_and_unmapping_madvise_advice_give_u_where_they_complete(read: Read) -> None:
    text = (
        "SYSCALL[7,1](11) sys_munmap ( 0x5000, 4096 )[sync] --> Success(0x0) \n"
        "SYSCALL[7,1](28) sys_madvise ( 0x6000, 8192, 3 )[sync] --> Success(0x0) \n"
        "SYSCALL[7,1](28) sys_madvise ( 0x6000, 8192, 8 )[sync] --> Success(0x0) \n"
        "SYSCALL[7,1](28) sys_madvise ( 24576, 4096, 9 )[sync] --> Success(0x0) \n"
        "SYSCALL[7,1](11) sys_munmap ( 0x9000, 4096 )[sync] --> Failure(0x16) \n"
        " L 1000,8\n"
    )
    assert read(text) == [("U", 0x5000, 4096), ("U", 0x6000, 8192), ("U", 24576, 4096), ("L", 0x1000, 8)]


def test_async_halves_complete_the_pending_call_of_the_same_pid_tid_and_nr(read: Read) -> None:
    text = (
        "SYSCALL[7,1](28) sys_madvise ( 0x10000, 4096, 4 ) --> [async] ... \n"
        "SYSCALL[7,2](28) sys_madvise ( 0x20000, 4096, 4 ) --> [async] ... \n"
        " L 1000,8\n"
        "SYSCALL[7,2](28) ... [async] --> Failure(0x16) \n"
        " S 2000,4\n"
        "SYSCALL[7,1](28) ... [async] --> Success(0x0) \n"
    )
    assert read(text) == [("L", 0x1000, 8), ("S", 0x2000, 4), ("U", 0x10000, 4096)]


def test_a_continuation_line_completes_the_most_recently_begun_open_call(read: Read) -> None:
    text = (
        "SYSCALL[7,1](11) sys_munmap ( 0x5000, 4096 )==7== a message glued by valgrind\n"
        "==7== and its second line\n"
        "   [sync] --> Success(0x0) \n"
        "SYSCALL[8,1](11) sys_munmap ( 0x7000, 4096 )==8== another one\n"
        " --> [async] ... \n"
        " L 1000,8\n"
        "SYSCALL[8,1](11) ... [async] --> Success(0x0) \n"
    )
    assert read(text) == [("U", 0x5000, 4096), ("L", 0x1000, 8), ("U", 0x7000, 4096)]


def test_brk_keeps_one_break_per_pid_and_only_a_shrink_gives_u(read: Read) -> None:
    text = (
        "SYSCALL[1,1](12) sys_brk ( 0x0 ) --> [pre-success] Success(0x1000000) \n"
        "SYSCALL[2,1](12) sys_brk ( 0x0 ) --> [pre-success] Success(0x3000000) \n"
        "SYSCALL[1,1](12) sys_brk ( 0x1100000 ) --> [pre-success] Success(0x1100000) \n"
        "SYSCALL[2,1](12) sys_brk ( 0x2f00000 ) --> [pre-success] Success(0x2f00000) \n"
        "SYSCALL[1,1](12) sys_brk ( 0x1080000 ) --> [pre-success] Success(0x1080000) \n"
    )
    assert read(text) == [("U", 0x2F00000, 0x100000), ("U", 0x1080000, 0x80000)]


def test_mremap_gives_u_for_a_move_or_a_shrink_and_nothing_for_a_grow(read: Read) -> None:
    text = (
        "SYSCALL[1,1](25) sys_mremap ( 0x40000000, 8192, 16384, 0x1 ) --> [pre-success] Success(0x40000000) \n"
        "SYSCALL[1,1](25) sys_mremap ( 0x40000000, 16384, 16384, 0x1 ) --> [pre-success] Success(0x60000000) \n"
        "SYSCALL[1,1](25) sys_mremap ( 0x60000000, 16384, 4096, 0x1 ) --> [pre-success] Success(0x60000000) \n"
    )
    assert read(text) == [("U", 0x40000000, 16384), ("U", 0x60001000, 12288)]


def test_a_u_line_is_not_a_lackey_record_but_an_error_naming_its_line() -> None:
    with pytest.raises(ValueError, match="line 2"):
        parse_lackey_simple(" L 1000,8\n U 4000000,8\n")


def test_memmodel_reader_rejects_a_u_line_naming_its_line(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="2"):
        _memmodel_reader(tmp_path)(" L 1000,8\n U 4000000,8\n")


# ==== Section 6: accounting identities on random lifecycle traces ==============================================
_BASES = [0x0, 0x4000_0000, 0x7F_FFE0_0000]
_U_SIZES = [0, 100, K4, 2 * K4, 33 * K4, 34 * K4, M2 - K4, M2, G1]


@st.composite
def lifecycle_traces(draw: st.DrawFn) -> Records:
    out: Records = []
    for _ in range(draw(st.integers(1, 60))):
        kind = draw(st.sampled_from("ILSMUU"))
        a = draw(st.sampled_from(_BASES)) + draw(st.integers(0, 600)) * draw(st.sampled_from([K4, K4, 512 * K4]))
        a += draw(st.sampled_from([0, 8, 4095, 2048]))
        n = draw(st.sampled_from(_U_SIZES)) if kind == "U" else draw(st.sampled_from([1, 8, 16]))
        out.append((kind, a, n))
    return out


@st.composite
def lifecycle_configs(draw: st.DrawFn) -> ModelConfig:
    virtualized = draw(st.booleans())
    guest: dict[str, Any] = {
        "page_size": draw(st.sampled_from(["4K", "2M", "1G"])), "memory": "2G",
        "zeroing": draw(st.booleans()), "placement": draw(st.sampled_from(["lowest", "random"])),
        "seed": draw(st.integers(0, 5)), "fragmentation": draw(st.sampled_from([0.0, 0.5])),
    }
    if guest["page_size"] == "1G":
        guest["zeroing"] = False  # keep the reference quick: no 2^18 host touches per fault
    raw: dict[str, Any] = {"virtualized": virtualized, "guest": guest,
                           "tlb": {"l1": [{"page_sizes": ["4K", "2M", "1G"], "entries": 4, "ways": 2}]}}
    if virtualized:
        guest["unmap"] = draw(st.sampled_from(["free", "passthrough"]))
        raw["host"] = {"page_size": draw(st.sampled_from(["4K", "2M"])), "memory": "4G",
                       "placement": draw(st.sampled_from(["lowest", "random"]))}
        raw["balloon"] = {"reporting": draw(st.booleans()), "interval": draw(st.integers(1, 7)),
                          "order": draw(st.sampled_from([0, 9]))}
        raw["ntlb"] = {"entries": 2, "ways": 2}
    return cfg(raw)


@settings(max_examples=60, deadline=None)
@given(records=lifecycle_traces(), config=lifecycle_configs())
def test_counters_obey_the_section_6_identities_on_random_lifecycle_traces(records: Records,
                                                                           config: ModelConfig) -> None:
    for name in sorted(RUNNERS):
        c = RUNNERS[name](records, config)
        assert c["accesses"] == c["l1_hits"] + c["l2_hits"] + c["walks"]
        assert c["walk_loads"] == c["guest_pte_loads"] + c["host_pte_loads"]
        assert c["unmaps"] == sum(1 for k, _, _ in records if k == "U")
        assert c["instructions"] == sum(1 for k, _, _ in records if k == "I")
        faulted = c["guest_pages_4k"] * K4 + c["guest_pages_2m"] * M2 + c["guest_pages_1g"] * G1
        assert c["guest_resident_bytes"] == faulted - c["guest_freed_bytes"] >= 0
        assert c["host_resident_bytes"] == c["host_backed_bytes"] - c["host_freed_bytes"]
        assert c["host_resident_bytes"] <= c["host_resident_peak_bytes"] <= c["host_backed_bytes"]
        if config.guest.unmap == "passthrough":
            assert c["guest_freed_bytes"] == c["guest_splits"] == c["tlb_flushes"] == 0
        if not config.balloon.reporting and config.guest.unmap == "free":
            assert c["host_discards"] == c["host_freed_bytes"] == c["host_splits"] == 0
        if c["host_freed_bytes"] == 0:
            assert c["host_discards"] == 0
        clock = sum(1 for k, _, _ in records if k != "U")
        want_ticks = clock // config.balloon.interval if config.virtualized and config.balloon.reporting else 0
        assert c["report_ticks"] == want_ticks
