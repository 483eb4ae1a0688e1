"""Differential tests of the memory lifecycle (MODEL.md v2): the C engine against the literal reference.

Random small traces with ``U`` records (partial huge-page unmaps, re-touch after release, unaligned
starts, n = 0, ranges of terabytes and up to the top of the address space) x random valid v2 configs
(both placements on both sides, ``unmap = "free"`` and ``"passthrough"``, free page reporting at small
intervals and every order, native) must give identical counters and identical extras, whatever the
batch boundaries (including a boundary between a ``U`` and its neighbours).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from engine_helpers import arrays, cfg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference_model import run_reference
from test_differential import REGION_BASES, SIZES, pscs, tlb_level

from memmodel.engine import Replay

# U lengths: a page, around Linux's 33-page single-invalidation ceiling, a 2 MiB page and a bit, a
# 1 GiB page, terabytes, and 0 (counts only).
U_LENGTHS = [0, 1, 4096, 3 * 4096, 33 * 4096, 34 * 4096, 1 << 21, (1 << 21) + 4096, 1 << 30, 1 << 41]


@st.composite
def lifecycle_traces(draw: st.DrawFn, max_len: int = 90) -> list[tuple[str, int, int]]:
    n = draw(st.integers(1, max_len))
    out: list[tuple[str, int, int]] = []
    for _ in range(n):
        base = draw(st.sampled_from(REGION_BASES))
        page = draw(st.integers(0, 40)) * draw(st.sampled_from([1, 1, 1, 512, 4096]))
        if draw(st.integers(0, 5)) == 0:
            # an unmap: aligned or not, of any length; now and then the whole address space
            if draw(st.integers(0, 15)) == 0:
                out.append(("U", draw(st.sampled_from([0, 4095])), (1 << 64) - 1))
            else:
                offset = draw(st.sampled_from([0, 0, 0, 100, 4095]))
                out.append(("U", base + page * 4096 + offset, draw(st.sampled_from(U_LENGTHS))))
            continue
        kind = draw(st.sampled_from("ILLLSSM"))
        offset = draw(st.sampled_from([0, 8, 4088, 4095, 2048]))
        size = draw(st.sampled_from([1, 4, 8, 8, 16, 512, 5000]))
        out.append((kind, base + page * 4096 + offset, size))
    return out


@st.composite
def v2_configs(draw: st.DrawFn) -> dict[str, Any]:
    virtualized = draw(st.booleans())
    g_levels = draw(st.sampled_from([4, 5]))
    h_levels = draw(st.sampled_from([4, 5]))
    g_page = draw(st.sampled_from(SIZES))
    h_page = draw(st.sampled_from(["2M", "1G", "4K"]))
    frag = st.sampled_from([0.0, 0.0, 0.5, 0.99])
    guest: dict[str, Any] = {
        "levels": g_levels, "page_size": g_page, "zeroing": draw(st.booleans()),
        "memory": draw(st.sampled_from(["2G", "3G"])), "fragmentation": draw(frag), "seed": draw(st.integers(0, 9)),
        "placement": draw(st.sampled_from(["lowest", "random"])),
    }
    host: dict[str, Any] = {
        "levels": h_levels, "page_size": h_page, "zeroing": draw(st.booleans()),
        "memory": draw(st.sampled_from(["4G", "6G"])), "fragmentation": draw(frag),
        "seed": draw(st.sampled_from([0, 3, (1 << 64) - 1])),
        "placement": draw(st.sampled_from(["lowest", "random"])),
    }
    # keep the literal reference quick: no 1 GiB guest zeroing over 4 KiB host pages
    if (h_page == "4K" or host["fragmentation"] > 0) and g_page == "1G":
        guest["zeroing"] = False
    raw: dict[str, Any] = {
        "virtualized": virtualized, "guest": guest, "host": host,
        "tlb": {"l1": draw(tlb_level()), "l2": draw(tlb_level())},
        "psc": {"guest": draw(pscs(g_levels)), "host": draw(pscs(h_levels))},
    }
    if virtualized:
        guest["unmap"] = draw(st.sampled_from(["free", "passthrough"]))
        if draw(st.booleans()):
            raw["balloon"] = {"reporting": True, "interval": draw(st.sampled_from([3, 7, 25])),
                              "order": draw(st.sampled_from([0, 1, 9, 10, 18]))}
        if draw(st.booleans()):
            ways = draw(st.integers(1, 4))
            raw["ntlb"] = {"entries": ways * draw(st.integers(1, 3)), "ways": ways}
    return raw


def _engine(records: list[tuple[str, int, int]], config: Any, batch: int) -> tuple[dict[str, Any], dict[str, int]]:
    a = arrays(records)
    r = Replay(config)
    step = batch or max(len(records), 1)
    for i in range(0, len(records), step):
        r.feed(a["kind"][i : i + step], a["gva"][i : i + step], a["size"][i : i + step])
    res = r.result()
    return res.counters, res.extras


# the literal reference dominates the time (about 1 s per example on a loaded 2-core machine; 500 + 200
# examples passed when the engine landed, the suite keeps a smaller sample)
@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trace=lifecycle_traces(), raw=v2_configs(), batch=st.sampled_from([0, 0, 1, 2, 5]))
def test_engine_equals_reference_through_the_memory_lifecycle(trace: list[tuple[str, int, int]],
                                                              raw: dict[str, Any], batch: int) -> None:
    config = cfg(raw)
    counters, extras = _engine(trace, config, batch)
    ref_counters, ref_extras = run_reference(trace, config, extras=True)
    assert counters == ref_counters
    assert extras == ref_extras


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trace=lifecycle_traces(max_len=60), raw=v2_configs())
def test_repeats_around_unmaps_and_reporting_ticks_stay_exact(trace: list[tuple[str, int, int]],
                                                             raw: dict[str, Any]) -> None:
    # every access twice in a row: the repeat collapsing must end at every event (a U record between
    # two translations of one page, a reporting pass that flushes between them)
    trace = [r for rec in trace for r in ((rec, rec) if rec[0] != "U" else (rec,))]
    config = cfg(raw)
    counters, extras = _engine(trace, config, 0)
    ref_counters, ref_extras = run_reference(trace, config, extras=True)
    assert counters == ref_counters
    assert extras == ref_extras


def _many_pages_then_short_releases(seed: int) -> list[tuple[str, int, int]]:
    """17,000 touched 4 KiB pages (the slot table grows to 65,536 slots, so a release of up to 1,024 pages,
    a split 2 MiB page included, marks only its own pages' slots stale instead of bumping the generation),
    then rounds of short releases inside 2 MiB and 1 GiB pages (one page, three pages, 33 pages, unaligned),
    each followed by translations of the released pages, of their neighbours in the same huge page and of
    far pages."""
    rng = np.random.default_rng(seed)
    base = 0x7F00_0000_0000
    pages = [base + (r << 21) + (i << 12) for r in range(34) for i in range(500)]
    out: list[tuple[str, int, int]] = [("S", p, 8) for p in pages]
    for _ in range(12):
        region = int(rng.integers(0, 34))
        at = base + (region << 21) + (int(rng.integers(1, 400)) << 12) + int(rng.choice([0, 0, 100]))
        out.append(("U", at, int(rng.choice([1, 4096, 3 * 4096, 33 * 4096]))))
        for p in (at, at + 4096, at - 4096, at + (50 << 12), base + (int(rng.integers(0, 34)) << 21)):
            out.append(("L", p, 8))
        out += [("L", int(p), 8) for p in rng.choice(pages, 300)]
    return out


SHORT_RELEASE_CONFIGS = {
    # native 4K: slots without their cold half (only nested walks read it), grown twice by the 17,000 pages
    "native-4k": {"virtualized": False, "guest": {"page_size": "4K"}},
    "native-thp": {"virtualized": False, "guest": {"page_size": "2M"}},
    "nested-thp-free": {"guest": {"page_size": "2M"}, "host": {"page_size": "2M"}},
    "nested-4k-on-2m-free": {"guest": {"page_size": "4K"}, "host": {"page_size": "2M"}},
    "passthrough-1g-on-2m": {"guest": {"page_size": "1G", "zeroing": False, "unmap": "passthrough"},
                             "host": {"page_size": "2M"}},
    "passthrough-2m-on-4k": {"guest": {"page_size": "2M", "unmap": "passthrough"}, "host": {"page_size": "4K"}},
    "passthrough-4k-on-2m": {"guest": {"page_size": "4K", "unmap": "passthrough"}, "host": {"page_size": "2M"}},
}


@pytest.mark.parametrize("name", sorted(SHORT_RELEASE_CONFIGS))
def test_a_short_release_marks_stale_only_the_pages_it_changed(name: str) -> None:
    """A short release (up to 1/64 of the slot table in pages, splits and host pages around it included)
    marks only the slots of the pages it changed stale; every other page keeps its cached slot. The
    counters must equal the reference's, where nothing is cached (pass-through with host pages larger than
    the guest's falls back to making every slot stale, and must agree too)."""
    raw = dict(SHORT_RELEASE_CONFIGS[name])
    raw["tlb"] = {"l1": [{"page_sizes": ["4K", "2M", "1G"], "entries": 8, "ways": 2}], "l2": []}
    config = cfg(raw)
    trace = _many_pages_then_short_releases(seed=len(name))
    counters, extras = _engine(trace, config, 0)
    ref_counters, ref_extras = run_reference(trace, config, extras=True)
    assert counters["unmaps"] == 12 and counters["touched_bytes"] >= 17_000 * 4096
    assert counters == ref_counters
    assert extras == ref_extras


def _long_releases_then_revisits(seed: int) -> list[tuple[str, int, int]]:
    """1,500 touched pages (a 4,096-slot table: a release of more than 64 pages bumps the generation), then
    rounds of long releases (65 to 700 pages, 2 MiB, unaligned) each followed by translations inside the
    released range, of its neighbours and of far pages; some pages are walked again only after more
    releases than the engine keeps ranges of."""
    rng = np.random.default_rng(seed)
    base = 0x7F00_0000_0000
    pages = [base + (r << 21) + (i << 12) for r in range(3) for i in range(500)]
    out: list[tuple[str, int, int]] = [("S", p, 8) for p in pages]
    for _ in range(20):
        at = base + (int(rng.integers(0, 3)) << 21) + (int(rng.integers(0, 450)) << 12) + int(rng.choice([0, 100]))
        out.append(("U", at, int(rng.choice([65 * 4096, 200 * 4096, 700 * 4096, 1 << 21]))))
        for p in (at, at + 4096, at - 4096, at + (80 << 12), at + (800 << 12)):
            out.append(("L", p, 8))
        out += [("L", int(p), 8) for p in rng.choice(pages, 40)]
    out += [("L", p, 8) for p in pages]
    return out


@pytest.mark.parametrize("name", [*sorted(SHORT_RELEASE_CONFIGS), "nested-thp-reporting"])
def test_a_long_release_revalidates_only_the_pages_outside_its_range(name: str) -> None:
    """A release longer than 1/64 of the slot table bumps the generation and records its range; a slot of
    a page outside every range recorded since the slot was computed is current again, any other is
    resolved again. The counters must equal the reference's, also when more releases fall between two
    walks of a page than the engine keeps ranges of, and with reporting passes among them (which change
    no slot)."""
    raw = dict(SHORT_RELEASE_CONFIGS.get(name, SHORT_RELEASE_CONFIGS["nested-thp-free"]))
    if name == "nested-thp-reporting":
        raw["balloon"] = {"reporting": True, "interval": 150, "order": 0}
    raw["tlb"] = {"l1": [{"page_sizes": ["4K", "2M", "1G"], "entries": 8, "ways": 2}], "l2": []}
    config = cfg(raw)
    trace = _long_releases_then_revisits(seed=len(name))
    counters, extras = _engine(trace, config, 0)
    ref_counters, ref_extras = run_reference(trace, config, extras=True)
    assert counters["unmaps"] == 20
    assert counters == ref_counters
    assert extras == ref_extras


def _frees_among_touched_pages(seed: int) -> list[tuple[str, int, int]]:
    """3,000 contiguous touched pages, then 30 rounds of a free (one page, three pages or 2 MiB) and 200
    loads of random pages of the region, with reporting passes falling between them."""
    rng = np.random.default_rng(seed)
    base = 0x7F00_0000_0000
    pages = [base + (i << 12) for i in range(3000)]
    out: list[tuple[str, int, int]] = [("S", p, 8) for p in pages]
    for _ in range(30):
        out.append(("U", base + (int(rng.integers(0, 3000)) << 12), int(rng.choice([4096, 3 * 4096, 1 << 21]))))
        out += [("L", int(p) + 8, 8) for p in rng.choice(pages, 200)]
    return out


@pytest.mark.parametrize(("guest_page", "host_page", "order"), [
    ("4K", "2M", 0), ("4K", "1G", 0), ("4K", "1G", 9), ("2M", "2M", 0), ("2M", "1G", 0), ("2M", "1G", 9),
    ("1G", "1G", 9),
])
def test_a_reporting_pass_changes_no_cached_page(guest_page: str, host_page: str, order: int) -> None:
    """A reporting pass discards host pages of free guest blocks and splits the host pages at their edges;
    it leaves every mapped page's frame, backing and effective size as they were (docs/model.md Part 3
    item 3), so the engine keeps every page's cached slot across it. The counters must equal the
    reference's with discards and host splits around mapped pages."""
    raw = {"guest": {"page_size": guest_page, "memory": "4G", "zeroing": guest_page != "1G"},
           "host": {"page_size": host_page, "memory": "8G"},
           "balloon": {"reporting": True, "interval": 97, "order": order},
           "tlb": {"l1": [{"page_sizes": ["4K", "2M", "1G"], "entries": 16, "ways": 4}], "l2": []}}
    config = cfg(raw)
    trace = _frees_among_touched_pages(seed=order + len(guest_page + host_page))
    counters, extras = _engine(trace, config, 0)
    ref_counters, ref_extras = run_reference(trace, config, extras=True)
    assert counters["host_discards"] > 0 and counters["host_splits"] > 0
    assert counters == ref_counters
    assert extras == ref_extras


# The shapes of the walk's caches in every CPU preset (4-level tables): the engine walks them with code
# specialised for these shapes (Replay.preset_walk, docs/model.md Part 3 item 10).
PRESET_PSCS = [{"level": 3, "entries": 32, "ways": 8}, {"level": 2, "entries": 8, "ways": 4},
               {"level": 1, "entries": 4, "ways": 4}]
PRESET_NTLB = {"entries": 32, "ways": 8}


@st.composite
def preset_shaped_configs(draw: st.DrawFn) -> dict[str, Any]:
    raw = draw(v2_configs())
    raw["guest"]["levels"] = raw["host"]["levels"] = 4
    raw["psc"] = {"guest": PRESET_PSCS, "host": PRESET_PSCS}
    raw["ntlb"] = PRESET_NTLB
    return raw


def _check_against_reference(trace: list[tuple[str, int, int]], raw: dict[str, Any], batch: int) -> None:
    config = cfg(raw)
    assert Replay(config).preset_walk
    counters, extras = _engine(trace, config, batch)
    ref_counters, ref_extras = run_reference(trace, config, extras=True)
    assert counters == ref_counters
    assert extras == ref_extras


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trace=lifecycle_traces(max_len=60), raw=preset_shaped_configs(), batch=st.sampled_from([0, 0, 3]))
def test_the_walk_specialised_for_the_presets_cache_shapes_equals_the_reference(
        trace: list[tuple[str, int, int]], raw: dict[str, Any], batch: int) -> None:
    _check_against_reference(trace, raw, batch)


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trace=lifecycle_traces(), raw=preset_shaped_configs(), batch=st.sampled_from([0, 0, 1, 5]))
def test_the_walk_specialised_for_the_presets_cache_shapes_equals_the_reference_at_length(
        trace: list[tuple[str, int, int]], raw: dict[str, Any], batch: int) -> None:
    _check_against_reference(trace, raw, batch)


def _with(raw: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = {**raw, "psc": {"guest": PRESET_PSCS, "host": PRESET_PSCS}, "ntlb": PRESET_NTLB}
    out.update(changes)
    return out


@pytest.mark.parametrize(("name", "raw", "expected"), [
    ("the presets' shapes", _with({}), True),
    ("native, the presets' guest PSCs", _with({"virtualized": False}, ntlb={"entries": 0, "ways": 1}), True),
    ("a nested TLB of 4 ways", _with({}, ntlb={"entries": 32, "ways": 4}), False),
    ("no nested TLB", _with({}, ntlb={"entries": 0, "ways": 1}), False),
    ("a level-3 PSC of 16 sets", _with({}, psc={"guest": [{"level": 3, "entries": 128, "ways": 8}, *PRESET_PSCS[1:]],
                                               "host": PRESET_PSCS}), False),
    ("no level-1 host PSC", _with({}, psc={"guest": PRESET_PSCS, "host": PRESET_PSCS[:2]}), False),
    ("5-level host tables", _with({"host": {"levels": 5}}), False),
])
def test_only_the_presets_cache_shapes_take_the_specialised_walk(name: str, raw: dict[str, Any],
                                                                 expected: bool) -> None:
    assert Replay(cfg(raw)).preset_walk is expected, name


@pytest.mark.parametrize(("host_page", "fragmentation"), [("1G", 0.0), ("2M", 0.3)])
def test_host_splits_and_discards_return_the_frames_the_host_pages_hold(host_page: str,
                                                                        fragmentation: float) -> None:
    # The engine stores a huge host page's host frame at its first guest frame only; a split writes the
    # host frames of the new pages' first frames, and a discard frees what the page's first frame holds.
    # Random host placement on a fragmented host makes every host frame count: after each record the
    # host's free lists and the re-fault extras equal the reference's (splits of 1 GiB -> 2 MiB -> 4 KiB
    # pages, discards of split pages, re-faults of 4 KiB frames of a region a huge page once backed).
    from reference_model import Reference

    k4, m2, g1 = 1 << 12, 1 << 21, 1 << 30
    config = cfg({"guest": {"page_size": "1G", "memory": "4G", "zeroing": False, "unmap": "passthrough"},
                  "host": {"page_size": host_page, "memory": "8G", "fragmentation": fragmentation,
                           "placement": "random", "seed": 7}})
    records = [("S", g1, 8), ("S", g1 + 5 * m2, 8), ("U", g1 + 3 * m2 + 7 * k4, k4),
               ("U", g1 + 5 * m2 + k4, 3 * k4), ("L", g1 + 3 * m2 + 7 * k4, 8), ("L", g1 + 5 * m2 + 2 * k4, 8),
               ("U", g1, g1)]
    ref = Reference(config)
    engine = Replay(config)
    for record in records:
        ref.record(*record)
        a = arrays([record])
        engine.feed(a["kind"], a["gva"], a["size"])
        got = engine.result()
        assert got.host_nr_free.tolist() == ref.host.alloc.nr_free(), record
        assert got.extras == dict(ref.extras), record
    assert got.counters["host_splits"] >= 1 and got.extras["host_zeroed_refault_bytes"] > 0
