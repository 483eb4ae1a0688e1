"""Estimated time costs of a run: zeroing, page faults and page walks. ESTIMATES, not model counters.

The counters of MODEL.md section 6 are exact; the seconds computed here are not. They multiply the
exact event counts by per-event costs measured on one machine kind (a Zen 4 "Genoa" KVM guest, the
project's research notes ``hardware.md`` sections 1.8 and 3.3, abbreviated "hw" below) and are meant
to show *orders of magnitude* and *which side pays*, not to predict wall-clock time.

A config may override any default in a ``[cost]`` table (``memmodel calibrate`` writes one for the
machine it runs on)::

    [cost]
    zero_gbps_2m = 14.0      # GB/s (1e9 bytes per second)
    host_fault_us_4k = 2.5   # microseconds per host fault of a 4 KiB page
    walk_load_ns = 4.0       # nanoseconds per page-table load of a walk

Arithmetic (per side, per page size ``z`` in 4K/2M/1G):

* zeroed bytes ``= pages_z * size_z`` when that side zeroes (MODEL.md: ``guest.zeroing``,
  ``host.zeroing``), which sums to the ``guest_zeroed_bytes`` / ``host_zeroed_bytes`` counters;
* zeroing seconds ``= zeroed bytes / (zero_gbps_z * 1e9)``;
* fault seconds ``= pages_z * {guest,host}_fault_us_z * 1e-6`` (the fault cost *without* zeroing:
  exception or EPT/NPT violation, allocation, page-table updates);
* walk seconds ``= walk_loads * walk_load_ns * 1e-9``.

Host faults include those taken for guest page-table pages and for prealloc (MODEL.md section 6).
Page-table page zeroing (4 KiB per table) is not costed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Final

from memmodel.errors import ConfigError

#: Page size names and their sizes in bytes.
SIZES: Final = {"4k": 1 << 12, "2m": 1 << 21, "1g": 1 << 30}


@dataclass(frozen=True)
class CostModel:
    """Per-event costs. Every field is a ``[cost]`` key of a config (same name, same unit).

    Attributes:
        zero_gbps_4k: zeroing bandwidth for a 4 KiB page, GB/s (1e9 B/s).
        zero_gbps_2m: zeroing bandwidth for a 2 MiB page, GB/s.
        zero_gbps_1g: zeroing bandwidth for a 1 GiB page, GB/s.
        guest_fault_us_4k: guest (or native) fault of a 4 KiB page, excluding zeroing, microseconds.
        guest_fault_us_2m: same for a 2 MiB page.
        guest_fault_us_1g: same for a 1 GiB page.
        host_fault_us_4k: host fault (EPT/NPT violation, VM exit, host page fault) of a 4 KiB host
            page, excluding zeroing, microseconds.
        host_fault_us_2m: same for a 2 MiB host page.
        host_fault_us_1g: same for a 1 GiB host page.
        walk_load_ns: latency of one page-table load of a walk, nanoseconds.
    """

    # hw §3.3 (a): cold 4 KiB pages streamed over 1 GiB, one `rep stosb` each (what clear_page_erms
    # does): 135 ns per page = 30.3 GB/s; hw §3.4 "clear_page bandwidth ... ≈ 30 GB/s".
    zero_gbps_4k: float = 30.3
    # hw §3.3 (b): THP write fault 182-185 µs per 2 MiB, 93-97 % of it in clear_page_erms
    # (folio_zero_user clears 512 subpages one by one): 2 MiB / (0.95 * 183 µs) = 12.1 GB/s;
    # hw §3.4 "kernel THP fault throughput ≈ 11-12 GB/s".
    zero_gbps_2m: float = 12.1
    # hw §3.1: gigantic folios are also cleared page by page; no 1 GiB fault measured on this machine
    # (hw §3.2: Milan page-at-a-time 1G 16.5-19.3 GB/s vs 2M 11.8-14.6 GB/s, ratio ≈ 1.3):
    # 12.1 * 1.3 ≈ 15.7 GB/s, an estimate.
    zero_gbps_1g: float = 15.7
    # hw §3.3 (b): 4K write fault, warm, 1.94 µs median, minus 0.135 µs of zeroing (above) = 1.8 µs.
    guest_fault_us_4k: float = 1.8
    # hw §3.3 (b): THP write fault 183 µs, of which 3-7 % is not clearing: ≈ 9 µs.
    guest_fault_us_2m: float = 9.0
    # assumed equal to the 2 MiB fault overhead (one fault entry, one PUD instead of one PMD update).
    guest_fault_us_1g: float = 9.0
    # hw §3.3 (b) and §3.4: cold (never host-backed) 4K touch 11.0 µs vs warm 1.94 µs -> ≈ 9 µs per
    # 4 KiB host page, minus 0.135 µs host zeroing = 8.9 µs (NPT violation + exit + host fault).
    # hw §3.4 calls it an upper-end value (this platform's hypervisor may be slower than bare KVM).
    host_fault_us_4k: float = 8.9
    # assumed: the exit + fault overhead does not depend on the host page size (no host 2M/1G fault
    # was measurable from inside the guest; the host there backs with 4 KiB, hw §1.8).
    host_fault_us_2m: float = 8.9
    host_fault_us_1g: float = 8.9
    # hw §1.8: at 4096 spread 4 KiB pages (page tables in cache) a TLB miss adds ≈ 10 ns over an
    # L2-TLB hit's 2.3 ns, ≈ 7.7 ns per walk of a few cached loads; L1D hit 1.1 ns, L2 ≈ 3.9 ns
    # (14 cycles at 3.6 GHz). 3 ns per load is assumed (a cached walk). Walks that reach DRAM cost
    # 144-171 ns extra (hw §1.8): raise walk_load_ns for footprints far beyond the caches.
    walk_load_ns: float = 3.0

    @classmethod
    def key_names(cls) -> tuple[str, ...]:
        """The allowed ``[cost]`` keys, in declaration order."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_table(cls, table: Mapping[str, Any] | Iterable[tuple[str, Any]], source: str = "<config>") -> CostModel:
        """The defaults overridden by a ``[cost]`` table.

        Args:
            table: a mapping or ``(key, value)`` pairs (as in :attr:`ModelConfig.cost`).
            source: where the table came from, for error messages.

        Raises:
            ConfigError: an unknown key (the message lists the allowed keys), a non-number or a
                value that is not positive.
        """
        items = table.items() if isinstance(table, Mapping) else table
        allowed = cls.key_names()
        updates: dict[str, float] = {}
        for key, value in items:
            if key not in allowed:
                raise ConfigError(
                    f"{source}: unknown key 'cost.{key}'; allowed keys: {', '.join(allowed)}"
                )
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{source}: key 'cost.{key}' must be a number, got {value!r}")
            if not value > 0:
                raise ConfigError(f"{source}: key 'cost.{key}' must be > 0, got {value!r}")
            updates[key] = float(value)
        return replace(cls(), **updates)

    @classmethod
    def for_config(cls, config: Any) -> CostModel:
        """The cost model of a :class:`~memmodel.config.ModelConfig` (defaults + its ``[cost]``)."""
        return cls.from_table(config.cost, source=config.source or config.name)

    def to_dict(self) -> dict[str, float]:
        """Every cost key and its value."""
        return asdict(self)

    def to_toml(self, comments: Mapping[str, str] | None = None) -> str:
        """A ``[cost]`` table with every key (optionally a ``# comment`` per key)."""
        lines = ["[cost]"]
        for k, v in self.to_dict().items():
            c = (comments or {}).get(k)
            lines.append(f"{k} = {v:.6g}" + (f"  # {c}" if c else ""))
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class CostEstimate:
    """Estimated seconds of one run, by side and kind. All values in seconds except ``*_bytes``.

    Attributes:
        guest_zero_bytes_4k/2m/1g: guest-zeroed data bytes by page size (pages x size).
        host_zero_bytes_4k/2m/1g: host-zeroed data bytes by page size.
        guest_zero_s: guest zeroing time.
        host_zero_s: host zeroing time.
        guest_fault_s: guest fault overhead (excluding zeroing).
        host_fault_s: host fault / EPT-violation overhead (excluding zeroing).
        walk_s: page-walk time.
    """

    guest_zero_bytes_4k: int
    guest_zero_bytes_2m: int
    guest_zero_bytes_1g: int
    host_zero_bytes_4k: int
    host_zero_bytes_2m: int
    host_zero_bytes_1g: int
    guest_zero_s: float
    host_zero_s: float
    guest_fault_s: float
    host_fault_s: float
    walk_s: float

    @property
    def setup_s(self) -> float:
        """Memory set-up time: zeroing and faults on both sides."""
        return self.guest_zero_s + self.host_zero_s + self.guest_fault_s + self.host_fault_s

    @property
    def total_s(self) -> float:
        """Set-up time plus walk time."""
        return self.setup_s + self.walk_s

    def to_dict(self) -> dict[str, float]:
        """Every field plus ``setup_s`` and ``total_s``."""
        d: dict[str, float] = asdict(self)
        d["setup_s"] = self.setup_s
        d["total_s"] = self.total_s
        return d


#: Column names of :meth:`CostEstimate.to_dict` that are seconds.
SECONDS_KEYS: Final = ("guest_zero_s", "host_zero_s", "guest_fault_s", "host_fault_s", "walk_s", "setup_s", "total_s")


def estimate(
    counters: Mapping[str, Any], cost: CostModel, guest_zeroing: bool, host_zeroing: bool
) -> CostEstimate:
    """Estimate the time costs of one run from its exact counters.

    Args:
        counters: MODEL.md section 6 counters of the run.
        cost: per-event costs.
        guest_zeroing: whether the guest (or native kernel) zeroes data pages (``guest.zeroing``).
        host_zeroing: whether the host zeroes data pages (``host.zeroing``; host counters are 0 when native).

    Returns:
        The estimate; zeroed bytes by size are ``pages * size`` on a zeroing side, else 0.
    """
    gz = {z: (int(counters[f"guest_pages_{z}"]) * n if guest_zeroing else 0) for z, n in SIZES.items()}
    hz = {z: (int(counters[f"host_pages_{z}"]) * n if host_zeroing else 0) for z, n in SIZES.items()}
    bw = {z: getattr(cost, f"zero_gbps_{z}") * 1e9 for z in SIZES}
    return CostEstimate(
        guest_zero_bytes_4k=gz["4k"],
        guest_zero_bytes_2m=gz["2m"],
        guest_zero_bytes_1g=gz["1g"],
        host_zero_bytes_4k=hz["4k"],
        host_zero_bytes_2m=hz["2m"],
        host_zero_bytes_1g=hz["1g"],
        guest_zero_s=sum(gz[z] / bw[z] for z in SIZES),
        host_zero_s=sum(hz[z] / bw[z] for z in SIZES),
        guest_fault_s=sum(int(counters[f"guest_pages_{z}"]) * getattr(cost, f"guest_fault_us_{z}") for z in SIZES)
        * 1e-6,
        host_fault_s=sum(int(counters[f"host_pages_{z}"]) * getattr(cost, f"host_fault_us_{z}") for z in SIZES) * 1e-6,
        walk_s=int(counters["walk_loads"]) * cost.walk_load_ns * 1e-9,
    )


def estimate_run(run: Any, cost: CostModel | None = None) -> CostEstimate:
    """Estimate one :class:`~memmodel.analysis.api.Run` with its config's cost model (or ``cost``)."""
    cfg = run.config
    model = cost if cost is not None else CostModel.for_config(cfg)
    return estimate(run.result.counters, model, cfg.guest.zeroing, cfg.virtualized and cfg.host.zeroing)
