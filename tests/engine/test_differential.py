"""Differential tests: the C engine core against the literal pure-Python reference of MODEL.md.

Random small traces x random valid configs (every page size, 4/5 levels, shared and split TLB arrays,
PSCs at any level, nested TLB, fragmentation, prealloc, native) must give identical counters.
"""

from __future__ import annotations

from typing import Any

from engine_helpers import cfg, engine_counters
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference_model import run_reference

SIZES = ["4K", "2M", "1G"]

# Addresses cluster in a few regions (1 GiB apart, some 2 MiB apart, page-boundary offsets) so that
# pages repeat, TLB sets conflict, PSC keys are shared, and accesses straddle 4 KiB boundaries.
REGION_BASES = [0x0, 0x40000000, 0x7FF000000, 0x5555_5540_0000, 0x7F_FFE0_0000, 0x1FFF_0000_0000]


@st.composite
def traces(draw: st.DrawFn, max_len: int = 120) -> list[tuple[str, int, int]]:
    n = draw(st.integers(1, max_len))
    out = []
    for _ in range(n):
        kind = draw(st.sampled_from("ILLLSSM"))
        base = draw(st.sampled_from(REGION_BASES))
        page = draw(st.integers(0, 40)) * draw(st.sampled_from([1, 1, 1, 512, 4096]))
        offset = draw(st.sampled_from([0, 8, 4088, 4095, 2048]))
        size = draw(st.sampled_from([1, 4, 8, 8, 16, 32, 512, 5000]))
        out.append((kind, base + page * 4096 + offset, size))
    return out


@st.composite
def tlb_level(draw: st.DrawFn) -> list[dict[str, Any]]:
    present = draw(st.lists(st.sampled_from(SIZES), unique=True, max_size=3))
    arrays: list[dict[str, Any]] = []
    rest = list(present)
    while rest:
        k = draw(st.integers(1, len(rest)))
        group, rest = rest[:k], rest[k:]
        ways = draw(st.integers(1, 4))
        sets = draw(st.sampled_from([1, 2, 3, 4]))
        arrays.append({"page_sizes": group, "entries": ways * sets, "ways": ways})
    return arrays


@st.composite
def pscs(draw: st.DrawFn, levels: int) -> list[dict[str, Any]]:
    chosen = draw(st.lists(st.integers(1, levels - 1), unique=True, max_size=levels - 1))
    out = []
    for level in chosen:
        ways = draw(st.integers(1, 3))
        out.append({"level": level, "entries": ways * draw(st.integers(1, 3)), "ways": ways})
    return out


@st.composite
def configs(draw: st.DrawFn) -> dict[str, Any]:
    virtualized = draw(st.booleans())
    g_levels = draw(st.sampled_from([4, 5]))
    h_levels = draw(st.sampled_from([4, 5]))
    g_page = draw(st.sampled_from(SIZES))
    h_page = draw(st.sampled_from(SIZES))
    g_zero = draw(st.booleans())
    frag = st.sampled_from([0.0, 0.0, 0.5, 0.99])
    guest = {
        "levels": g_levels, "page_size": g_page, "zeroing": g_zero,
        "memory": draw(st.sampled_from(["2G", "3G"])), "fragmentation": draw(frag), "seed": draw(st.integers(0, 9)),
    }
    host: dict[str, Any] = {
        "levels": h_levels, "page_size": h_page, "zeroing": draw(st.booleans()),
        "memory": draw(st.sampled_from(["4G", "6G"])), "fragmentation": draw(frag), "seed": draw(st.integers(0, 9)),
    }
    # Keep the pure-Python reference quick: 4 KiB host pages under 1 GiB guest zeroing or prealloc
    # would mean ~10^6 Python-level host faults per example.
    if host["page_size"] == "4K" or host["fragmentation"] > 0:
        if g_page == "1G" and g_zero:
            guest["zeroing"] = False
    else:
        host["prealloc"] = draw(st.booleans())
    raw: dict[str, Any] = {
        "virtualized": virtualized, "guest": guest, "host": host,
        "tlb": {"l1": draw(tlb_level()), "l2": draw(tlb_level())},
        "psc": {"guest": draw(pscs(g_levels)), "host": draw(pscs(h_levels))},
    }
    if draw(st.booleans()):
        ways = draw(st.integers(1, 4))
        raw["ntlb"] = {"entries": ways * draw(st.integers(1, 3)), "ways": ways}
    return raw


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trace=traces(), raw=configs(), batch=st.sampled_from([0, 0, 1, 5]))
def test_engine_equals_reference_on_random_traces_and_configs(trace: list[tuple[str, int, int]],
                                                              raw: dict[str, Any], batch: int) -> None:
    config = cfg(raw)
    assert engine_counters(trace, config, batch=batch) == run_reference(trace, config)


@settings(max_examples=150, deadline=None)
@given(trace=traces(max_len=300), raw=configs())
def test_engine_equals_reference_with_tiny_tlbs_and_many_repeats(trace: list[tuple[str, int, int]],
                                                                 raw: dict[str, Any]) -> None:
    # repeats of the same page exercise run collapsing; dropping the L1 for some sizes forces
    # the repeat-by-repeat path
    trace = [r for rec in trace for r in (rec, rec)]
    raw["tlb"]["l1"] = [a for a in raw["tlb"]["l1"] if "4K" not in a["page_sizes"]]
    config = cfg(raw)
    assert engine_counters(trace, config) == run_reference(trace, config)
