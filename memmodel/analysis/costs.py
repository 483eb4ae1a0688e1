"""Estimated time costs of a run: zeroing, page faults and page walks. ESTIMATES, not model counters.

The counters of the model (``docs/model.md``) are exact; the seconds computed here are not. They
multiply the exact event counts by per-event costs measured on one machine kind (a Zen 4 "Genoa"
KVM guest, Linux 6.18) or taken from published figures, and are meant to show *orders of
magnitude* and *which side pays*, not to predict wall-clock time. Every default, its derivation
and its sources are in :data:`COST_SOURCES` (printed in every HTML report) and in ``docs/costs.md``.

A config may override any default in a ``[cost]`` table, and ``--cost FILE`` applies one table to
every config of a command (``memmodel calibrate`` writes one for the machine it runs on)::

    [cost]
    zero_gbps_2m = 14.0      # GB/s (1e9 bytes per second)
    host_fault_us_4k = 2.5   # microseconds per host fault of a 4 KiB page
    walk_load_ns = 4.0       # nanoseconds per page-table load of a walk

Arithmetic (per side, per page size ``z`` in 4K/2M/1G):

* zeroed bytes ``= pages_z * size_z`` when that side zeroes (``guest.zeroing``, ``host.zeroing``),
  which sums to the ``guest_zeroed_bytes`` / ``host_zeroed_bytes`` counters;
* zeroing seconds ``= zeroed bytes / (zero_gbps_z * 1e9)``;
* fault seconds ``= pages_z * {guest,host}_fault_us_z * 1e-6`` (the fault cost *without* zeroing:
  exception or EPT/NPT violation, allocation, page-table updates);
* walk seconds ``= walk_loads * walk_load_ns * 1e-9``.

Set-up (zeroing + faults) is paid once per page a run maps; walk time is paid on every TLB miss for
as long as the program runs. On a short trace set-up dominates the total, so reports show the two
apart and per translated access / per 1000 instructions (:func:`per_event`).

Host faults include those taken for guest page-table pages and for prealloc. Page-table page
zeroing (4 KiB per table) is not costed.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Final

from memmodel.errors import ConfigError

#: Page size names and their sizes in bytes.
SIZES: Final = {"4k": 1 << 12, "2m": 1 << 21, "1g": 1 << 30}


@dataclass(frozen=True)
class CostSource:
    """Where a default cost comes from, in words a reader can check.

    Attributes:
        unit: the unit of the value.
        meaning: what one unit of the key pays for.
        derivation: the arithmetic from measured or published figures to the default value.
        sources: the measurements and publications used (short references; ``docs/costs.md`` lists them).
        kind: "measured" (on the reference machine), "published", or "assumed".
    """

    unit: str
    meaning: str
    derivation: str
    sources: str
    kind: str


#: The reference machine of the "measured" defaults.
REFERENCE_MACHINE: Final = ("a KVM guest with 2 vCPUs on an AMD EPYC Zen 4 (Genoa) host, Linux 6.18, "
                            "THP enabled=madvise; medians of repeated runs (the host was shared)")

_ZEN4 = "measured on the reference machine (Zen 4 Genoa KVM guest)"

#: Per ``[cost]`` key: unit, meaning, derivation and sources of the default (printed in reports).
COST_SOURCES: Final[dict[str, CostSource]] = {
    "zero_gbps_4k": CostSource(
        "GB/s", "bandwidth of clearing one freshly allocated (cache-cold) 4 KiB page",
        "cold 4 KiB pages streamed over 1 GiB, one `rep stosb` of 4096 B each (what the kernel's "
        "clear_page_erms does): 135 ns per page = 4096 B / 135 ns = 30.3 GB/s",
        f"{_ZEN4}, zero-fill microbenchmark (15 trials); Linux arch/x86/lib/clear_page_64.S", "measured"),
    "zero_gbps_2m": CostSource(
        "GB/s", "bandwidth of clearing a 2 MiB huge page at fault (folio_zero_user, 512 x clear_page)",
        "THP write fault 183 µs per 2 MiB (182-185 µs), 93-97 % of its samples in clear_page_erms: "
        "2 MiB / (0.95 x 183 µs) = 12.1 GB/s; published: 11.8-14.6 GB/s on AMD Milan "
        "(perf bench mem map, page-at-a-time clearing)",
        f"{_ZEN4}, first-touch fault benchmark + perf profile; A. Arora, LKML 2023-2025 "
        "('x86/clear_huge_page: multi-page clearing', 'mm: folio_zero_user: clear contiguous pages')",
        "measured"),
    "zero_gbps_1g": CostSource(
        "GB/s", "bandwidth of clearing a 1 GiB page at fault",
        "not measurable without a 1 GiB hugetlbfs pool; published page-at-a-time clearing on Milan is "
        "≈ 1.3x faster for 1 GiB than for 2 MiB (16.5-19.3 vs 11.8-14.6 GB/s): 12.1 x 1.3 ≈ 15.7 GB/s",
        "A. Arora, LKML cover letters 2023-2025 (AMD EPYC 7J13 figures); estimate", "published"),
    "guest_fault_us_4k": CostSource(
        "µs per fault", "a 4 KiB anonymous write fault excluding its zeroing (exception, allocation, "
        "memcg charge, page-table update)",
        "4 KiB write fault (MADV_NOHUGEPAGE, guest-physical memory already host-backed) 1.94 µs median, "
        "minus 0.135 µs of zeroing at 30.3 GB/s = 1.8 µs",
        f"{_ZEN4}, first-touch fault benchmark (9 trials)", "measured"),
    "guest_fault_us_2m": CostSource(
        "µs per fault", "a 2 MiB THP write fault excluding its zeroing",
        "THP write fault 183 µs, of which 3-7 % is not clearing: ≈ 0.05 x 183 µs ≈ 9 µs",
        f"{_ZEN4}, first-touch fault benchmark + perf profile", "measured"),
    "guest_fault_us_1g": CostSource(
        "µs per fault", "a 1 GiB fault excluding its zeroing",
        "assumed equal to the 2 MiB fault overhead (one fault entry; a PUD instead of a PMD update)",
        "assumption", "assumed"),
    "host_fault_us_4k": CostSource(
        "µs per fault", "a host fault backing one 4 KiB host page, excluding host zeroing (EPT/NPT "
        "violation, VM exit, host page fault, re-entry)",
        "first touch of never-backed guest memory 11.0 µs per 4 KiB page vs 1.94 µs when already "
        "host-backed: ≈ 9 µs, minus 0.135 µs of host zeroing = 8.9 µs; an upper-end value (this "
        "hypervisor may be slower than bare KVM)",
        f"{_ZEN4}, cold vs warm first-touch benchmark (6 trials)", "measured"),
    "host_fault_us_2m": CostSource(
        "µs per fault", "a host fault backing one 2 MiB host page, excluding host zeroing",
        "assumed equal to the 4 KiB host fault: the exit and fault path does not depend on the host page "
        "size, and no host 2 MiB fault was measurable from inside the guest (the host backed it with 4 KiB)",
        "assumption", "assumed"),
    "host_fault_us_1g": CostSource(
        "µs per fault", "a host fault backing one 1 GiB host page, excluding host zeroing",
        "assumed equal to the 4 KiB host fault (as for 2 MiB)", "assumption", "assumed"),
    "walk_load_ns": CostSource(
        "ns per load", "one page-table load of a walk (guest or host entry)",
        "4096 spread 4 KiB pages (page tables in the caches): a TLB miss adds ≈ 10 ns over a 2.3 ns "
        "L2-TLB hit, ≈ 7.7 ns per walk of a few cached loads; L1D hit 1.1 ns, L2 ≈ 3.9 ns: 3 ns per "
        "load assumed (a cached walk). Walks whose loads reach DRAM cost 144-171 ns more: raise this "
        "for footprints far beyond the caches",
        f"{_ZEN4}, pointer-chase latency at constant data footprint (9 rounds)", "measured"),
}


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

    # Each default's derivation and sources: COST_SOURCES below (and docs/costs.md).
    zero_gbps_4k: float = 30.3
    zero_gbps_2m: float = 12.1
    zero_gbps_1g: float = 15.7
    guest_fault_us_4k: float = 1.8
    guest_fault_us_2m: float = 9.0
    guest_fault_us_1g: float = 9.0
    host_fault_us_4k: float = 8.9
    host_fault_us_2m: float = 8.9
    host_fault_us_1g: float = 8.9
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
        counters: docs/model.md section 6 counters of the run.
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


def per_event(seconds: float | None, events: int | float | None, scale: float = 1e9) -> float | None:
    """``seconds / events`` in ``1 / scale`` seconds (ns by default); None when there are no events.

    Used for the normalised estimates of reports: ns per translated access (``events = accesses``)
    and ns per 1000 instructions (``events = instructions / 1000``; None for traces without ``I``
    records, e.g. perf samples).
    """
    if seconds is None or not events:
        return None
    return seconds / float(events) * scale


def read_cost_file(path: str | Path) -> dict[str, float]:
    """The ``[cost]`` table of a TOML file (as ``memmodel calibrate`` writes it, or any config file).

    Args:
        path: the file.

    Returns:
        The table, validated (known keys, positive numbers).

    Raises:
        ConfigError: the file is missing or not TOML, has no ``[cost]`` table, or a key or value
            is wrong; the message names the file.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the cost file: {exc.strerror or exc}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    table = doc.get("cost")
    if not isinstance(table, dict):
        raise ConfigError(f"{p}: no [cost] table; expected a [cost] table with keys "
                          f"{', '.join(CostModel.key_names())} (e.g. the output of `memmodel calibrate`)")
    CostModel.from_table(table, source=str(p))  # validates every key and value
    return {k: float(v) for k, v in table.items()}


def with_cost(config: Any, table: Mapping[str, float]) -> Any:
    """A copy of ``config`` whose ``[cost]`` table is its own overridden by ``table`` (``--cost FILE``)."""
    merged = dict(config.cost)
    merged.update(table)
    return replace(config, cost=tuple(sorted(merged.items())))
