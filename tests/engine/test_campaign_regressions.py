"""Minimal reproducers from the exactness campaign (issue 8): the C engine against the literal reference.

The campaign replayed large real traces (the shipped lackey traces, slices of ``sparse`` around its
``U`` records) and adversarial synthetic traces (many ``U`` records at huge-page and 1 GiB boundaries,
the top of the address space, unaligned starts, n = 0, lengths up to 2^64 - 1) through random valid v2
configs and every VM x CPU preset, comparing every counter, the extras, the walk histogram and the time
series. Each disagreement it found is pinned here as the smallest trace and config that shows it.
"""

from __future__ import annotations

from engine_helpers import cfg, engine_counters
from reference_model import run_reference

TOP = 1 << 64

# An access of 16 bytes at 2^64 - 8 straddles the top of the address space: its second translation is
# of a + n - 1 = 2^64 + 7. docs/model.md Part 4, item 1 decides that translations wrap modulo 2^64, so
# that translation is of address 7 (page 0), the page the next record touches again.
WRAPPING_STRADDLE = [("L", TOP - 8, 16), ("L", 0, 8)]


def test_straddle_past_the_top_of_the_address_space_wraps_to_page_zero_in_the_engine() -> None:
    # Worked by hand (native, 4 KiB pages, 4 levels): pages 2^52 - 1 and 0 are translated; the second
    # record repeats page 0. Two data pages, each under its own level-2..4 tables (3 + 3) plus the root.
    counters = engine_counters(WRAPPING_STRADDLE, cfg({"virtualized": False}))
    assert counters["accesses"] == 3
    assert counters["touched_bytes"] == 2 * 4096
    assert counters["guest_faults"] == 2
    assert counters["guest_pt_pages"] == 1 + 3 + 3


def test_engine_equals_reference_on_a_straddle_past_the_top_of_the_address_space() -> None:
    config = cfg({"virtualized": False})
    assert engine_counters(WRAPPING_STRADDLE, config) == run_reference(WRAPPING_STRADDLE, config)
