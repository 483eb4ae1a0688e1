"""What one replay produces: the exact counters of MODEL.md section 6, a walk-length histogram and a time series."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

#: Every counter of MODEL.md section 6, in the order results print them.
COUNTER_NAMES: Final = (
    "instructions",
    "accesses",
    "l1_hits",
    "l2_hits",
    "walks",
    "guest_pte_loads",
    "host_pte_loads",
    "walk_loads",
    "psc_guest_hits",
    "ntlb_hits",
    "ntlb_misses",
    "guest_faults",
    "guest_fallbacks",
    "guest_pages_4k",
    "guest_pages_2m",
    "guest_pages_1g",
    "guest_pt_pages",
    "guest_zeroed_bytes",
    "host_faults",
    "host_fallbacks",
    "host_pages_4k",
    "host_pages_2m",
    "host_pages_1g",
    "host_pt_pages",
    "host_backed_bytes",
    "host_zeroed_bytes",
    "touched_bytes",
    "host_unusable_index_2m",
    "host_unusable_index_1g",
    "host_extfrag_index_2m",
    "host_extfrag_index_1g",
)

#: The four float counters, absent from native runs (MODEL.md section 6).
HOST_INDEX_NAMES: Final = COUNTER_NAMES[-4:]

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
)


@dataclass(frozen=True)
class SimResult:
    """The outcome of replaying one trace through one config.

    Attributes:
        config_name: the config's ``name``.
        counters: MODEL.md section 6 counters (ints; the four host indices are floats rounded to 6
            decimals and absent when the run is native).
        walk_hist: ``walk_hist[n]`` = walks that cost exactly ``n`` page-table loads (guest + host).
        series: cumulative values at every ``window`` translations, one array per :data:`SERIES_NAMES`.
        window: translations per time-series window.
        host_nr_free: free blocks per order 0..18 of the host allocator at the end (guest's when native).
        guest_nr_free: free blocks per order 0..18 of the guest allocator at the end.
    """

    config_name: str
    counters: dict[str, Any]
    walk_hist: np.ndarray
    series: dict[str, np.ndarray]
    window: int
    host_nr_free: np.ndarray = field(default_factory=lambda: np.zeros(19, dtype=np.int64))
    guest_nr_free: np.ndarray = field(default_factory=lambda: np.zeros(19, dtype=np.int64))

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
