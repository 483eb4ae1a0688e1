"""What one replay produces: the exact counters of docs/model.md §6, a walk-length histogram and a time series."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

#: The counters of a result, in print order: (name, where it comes from). One table generates
#: :data:`COUNTER_NAMES`, the result mapping (:func:`counters_from_raw`) and the JSON keys; the engine
#: core (``_core.c``) keeps its raw counters in an X-macro table of the same names.
#:
#: Sources: ``"raw"`` a raw engine counter of the same name; ``"sum:a+b"`` a sum of raw counters;
#: ``"pages:x"`` 4096 x raw counter ``x``; ``"index"`` a host fragmentation index (float, computed
#: from the host allocator's free lists, absent in native runs).
COUNTER_TABLE: Final = (
    ("instructions", "raw"),
    ("accesses", "raw"),
    ("l1_hits", "raw"),
    ("l2_hits", "raw"),
    ("walks", "raw"),
    ("guest_pte_loads", "raw"),
    ("host_pte_loads", "raw"),
    ("walk_loads", "sum:guest_pte_loads+host_pte_loads"),
    ("psc_guest_hits", "raw"),
    ("ntlb_hits", "raw"),
    ("ntlb_misses", "raw"),
    ("guest_faults", "raw"),
    ("guest_fallbacks", "raw"),
    ("guest_pages_4k", "raw"),
    ("guest_pages_2m", "raw"),
    ("guest_pages_1g", "raw"),
    ("guest_pt_pages", "raw"),
    ("guest_zeroed_bytes", "raw"),
    ("host_faults", "raw"),
    ("host_fallbacks", "raw"),
    ("host_pages_4k", "raw"),
    ("host_pages_2m", "raw"),
    ("host_pages_1g", "raw"),
    ("host_pt_pages", "raw"),
    ("host_backed_bytes", "raw"),
    ("host_zeroed_bytes", "raw"),
    ("touched_bytes", "pages:touched_pages"),
    # v2: the memory lifecycle (docs/model.md sections 7-9)
    ("unmaps", "raw"),
    ("unmapped_bytes", "raw"),
    ("guest_freed_bytes", "raw"),
    ("guest_splits", "raw"),
    ("host_splits", "raw"),
    ("host_discards", "raw"),
    ("host_freed_bytes", "raw"),
    ("report_ticks", "raw"),
    ("tlb_flushes", "raw"),
    ("tlb_page_invalidations", "raw"),
    ("guest_resident_bytes", "raw"),
    ("host_resident_bytes", "raw"),
    ("host_resident_peak_bytes", "raw"),
    ("host_unusable_index_2m", "index"),
    ("host_unusable_index_1g", "index"),
    ("host_extfrag_index_2m", "index"),
    ("host_extfrag_index_1g", "index"),
)

#: Every counter of docs/model.md section 6, in the order results print them.
COUNTER_NAMES: Final = tuple(name for name, _ in COUNTER_TABLE)

#: The four float counters, absent from native runs (docs/model.md section 6).
HOST_INDEX_NAMES: Final = tuple(name for name, src in COUNTER_TABLE if src == "index")

#: Counters that can exceed 2^63 (a U record may cover up to 2^64 - 1 bytes, and they add up): tables
#: hold them as 128-bit integers; every other integer counter fits int64.
WIDE_COUNTERS: Final = ("unmapped_bytes",)

#: Outputs beyond docs/model.md section 6 (docs/model.md defines them); never mixed into the counters.
EXTRA_NAMES: Final = ("guest_zeroed_refault_bytes", "host_zeroed_refault_bytes")

#: Columns of the per-window time series (cumulative values after ``translations`` translations).
SERIES_NAMES: Final = (
    "translations",
    "l1_hits",
    "l2_hits",
    "walks",
    "walk_loads",
    "guest_faults",
    "host_faults",
    "host_backed_bytes",
    "guest_zeroed_bytes",
    "host_zeroed_bytes",
    "host_resident_bytes",
    "guest_resident_bytes",
    "tlb_flushes",
    "host_discards",
    "unmaps",
)


_RAW, _SUM, _PAGES, _INDEX = range(4)


def _plan(table: tuple[tuple[str, str], ...]) -> tuple[tuple[str, int, tuple[str, ...]], ...]:
    """:data:`COUNTER_TABLE` parsed: (name, source kind, raw counters read) per counter, in order."""
    plan: list[tuple[str, int, tuple[str, ...]]] = []
    for name, src in table:
        if src == "raw":
            plan.append((name, _RAW, (name,)))
        elif src.startswith("sum:"):
            plan.append((name, _SUM, tuple(src[4:].split("+"))))
        elif src.startswith("pages:"):
            plan.append((name, _PAGES, (src[6:],)))
        else:
            plan.append((name, _INDEX, (name,)))
    return tuple(plan)


#: :data:`COUNTER_TABLE` parsed once (parsing its sources on every result cost ~3 us of a ~0.8 ms replay of
#: a short trace).
_COUNTER_PLAN: Final = _plan(COUNTER_TABLE)


def counters_from_raw(raw: dict[str, int], indices: dict[str, float] | None) -> dict[str, Any]:
    """The section 6 counters from the engine's raw counters (and host indices; None when native)."""
    out: dict[str, Any] = {}
    for name, kind, keys in _COUNTER_PLAN:
        if kind == _RAW:
            out[name] = int(raw[name])
        elif kind == _SUM:
            out[name] = sum([int(raw[k]) for k in keys])
        elif kind == _PAGES:
            out[name] = int(raw[keys[0]]) * 4096
        elif indices is not None:
            out[name] = indices[name]
    return out


@dataclass(frozen=True)
class SimResult:
    """The outcome of replaying one trace through one config.

    Attributes:
        config_name: the config's ``name``.
        counters: docs/model.md section 6 counters (ints; the four host indices are floats rounded to 6
            decimals and absent when the run is native).
        walk_hist: ``walk_hist[n]`` = walks that cost exactly ``n`` page-table loads (guest + host).
        series: cumulative values at every ``window`` translations, one array per :data:`SERIES_NAMES`.
        window: translations per time-series window.
        host_nr_free: free blocks per order 0..18 of the host allocator at the end (guest's when native).
        guest_nr_free: free blocks per order 0..18 of the guest allocator at the end.
        extras: outputs beyond docs/model.md section 6 (:data:`EXTRA_NAMES`, defined in docs/model.md):
            zeroed bytes of re-faults after a release, by side.
    """

    config_name: str
    counters: dict[str, Any]
    walk_hist: np.ndarray
    series: dict[str, np.ndarray]
    window: int
    host_nr_free: np.ndarray = field(default_factory=lambda: np.zeros(19, dtype=np.int64))
    guest_nr_free: np.ndarray = field(default_factory=lambda: np.zeros(19, dtype=np.int64))
    extras: dict[str, int] = field(default_factory=dict)

    def derived(self) -> dict[str, float | None]:
        """Rates derived from the counters (None where a denominator is zero)."""
        return derived_metrics(self.counters)


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def derived_metrics(c: dict[str, Any]) -> dict[str, float | None]:
    """Hit rates, loads per walk and per-kilo-instruction figures from a counter dict.

    Units: rates are fractions of translations (or of host translations for the nested TLB);
    ``*_mpki`` are events per 1000 ``I`` records (None when the trace has no ``I`` records).
    """
    acc = c["accesses"]
    host_tr = c["ntlb_hits"] + c["ntlb_misses"]
    kilo = c["instructions"] / 1000.0
    return {
        "l1_hit_rate": _ratio(c["l1_hits"], acc),
        "l2_hit_rate": _ratio(c["l2_hits"], acc),
        "tlb_miss_rate": _ratio(c["walks"], acc),
        "l2_hit_rate_of_l1_misses": _ratio(c["l2_hits"], acc - c["l1_hits"]),
        "loads_per_walk": _ratio(c["walk_loads"], c["walks"]),
        "guest_loads_per_walk": _ratio(c["guest_pte_loads"], c["walks"]),
        "host_loads_per_walk": _ratio(c["host_pte_loads"], c["walks"]),
        "walk_loads_per_access": _ratio(c["walk_loads"], acc),
        "psc_guest_hit_rate": _ratio(c["psc_guest_hits"], c["walks"]),
        "ntlb_hit_rate": _ratio(c["ntlb_hits"], host_tr),
        "walks_mpki": _ratio(c["walks"], kilo),
        "walk_loads_pki": _ratio(c["walk_loads"], kilo),
        "l1_misses_mpki": _ratio(acc - c["l1_hits"], kilo),
        "guest_mapped_bytes": float(guest_mapped_bytes(c)),
        # memory the machine committed beyond what the program touched: host-backed bytes when
        # virtualized (the host's cost), guest-mapped bytes when native
        "bloat_bytes": float(
            (c["host_backed_bytes"] if "host_unusable_index_2m" in c else guest_mapped_bytes(c))
            - c["touched_bytes"]
        ),
    }


def guest_mapped_bytes(c: dict[str, Any]) -> int:
    """Bytes of guest data pages mapped (4K, 2M and 1G pages)."""
    return (c["guest_pages_4k"] << 12) + (c["guest_pages_2m"] << 21) + (c["guest_pages_1g"] << 30)
