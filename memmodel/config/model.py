"""Configs of the canonical model (docs/model.md section 5): frozen, validated dataclasses and their TOML form.

A config says which machine is modelled: whether it is virtualized, the guest and host sides
(paging levels, preferred page size, zeroing, memory, pre-existing fragmentation) and the
translation caches (TLB levels, guest and host paging-structure caches, nested TLB).

Units: every memory amount is in bytes; page sizes are stored as page *shifts* (12, 21, 30).
Invariants (checked by :func:`memmodel.config.load.parse_config`): levels are 4 or 5; memory is a
positive multiple of 1 GiB; every array has ``entries % ways == 0``; a page size appears in at most
one array per TLB level; PSC levels are within ``1..levels-1`` and appear once per side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

PAGE_SHIFTS: Final = (12, 21, 30)
SHIFT_NAMES: Final = {12: "4K", 21: "2M", 30: "1G"}
NAME_SHIFTS: Final = {v: k for k, v in SHIFT_NAMES.items()}
GIB: Final = 1 << 30


@dataclass(frozen=True)
class TlbArray:
    """One set-associative, true-LRU array of a TLB level (or the nested TLB).

    Attributes:
        page_shifts: page sizes (as shifts) whose entries live in this array; empty for the nested TLB.
        entries: total entries; ``entries == 0`` means the array is absent.
        ways: associativity; ``sets = entries // ways``.
    """

    page_shifts: tuple[int, ...]
    entries: int
    ways: int

    @property
    def sets(self) -> int:
        """Number of sets (``entries // ways``)."""
        return self.entries // self.ways


@dataclass(frozen=True)
class PscArray:
    """A paging-structure cache for one level ``j`` (1 = root) of one side.

    An entry at level ``j`` holds the (host-physical) address of the level ``j+1`` table, so a hit
    lets the walk start at level ``j+1``.
    """

    level: int
    entries: int
    ways: int

    @property
    def sets(self) -> int:
        """Number of sets (``entries // ways``)."""
        return self.entries // self.ways


@dataclass(frozen=True)
class SideConfig:
    """One side (guest or host) of the machine.

    Attributes:
        levels: paging levels, 4 or 5.
        page_shift: preferred (largest) page shift, 12, 21 or 30.
        zeroing: whether this side zeroes the data pages it faults in.
        memory: physical memory of this side in bytes (a multiple of 1 GiB).
        fragmentation: fraction in [0, 1) of 2 MiB blocks broken by one unmovable 4 KiB frame.
        seed: seed of the fragmentation pattern (docs/model.md section 2).
        prealloc: host only: back all guest memory at start-up.
        placement: which free block an allocation takes (docs/model.md section 2): ``"lowest"`` address,
            or ``"random"`` (the k-th lowest, k drawn from splitmix64 of the seed and the allocation count).
        unmap: guest only (v2, section 7): ``"free"`` (the guest releases unmapped ranges and frees their
            frames) or ``"passthrough"`` (memctl: the guest passes the range to the host, which discards it).
    """

    levels: int = 4
    page_shift: int = 12
    zeroing: bool = True
    memory: int = 16 * GIB
    fragmentation: float = 0.0
    seed: int = 0
    prealloc: bool = False
    placement: str = "lowest"
    unmap: str = "free"


#: The configs `compare` and the report put side by side by default: native, both baselines (THP also
#: with free page reporting) and both memctl configs, each memctl one with its declared baseline.
DEFAULT_COMPARE_CONFIGS: Final = ("native-thp", "baseline-4k", "baseline-thp", "baseline-thp-fpr", "memctl-4k",
                                  "memctl-2m")

#: Allowed values of the v2 keys (docs/model.md section 5).
PLACEMENTS: Final = ("lowest", "random")
UNMAP_MODES: Final = ("free", "passthrough")
DEFAULT_REPORT_INTERVAL: Final = 1_000_000
DEFAULT_REPORT_ORDER: Final = 9


@dataclass(frozen=True)
class BalloonConfig:
    """virtio-balloon free page reporting (docs/model.md v2 section 8; virtualized configs only).

    Attributes:
        reporting: whether reporting passes run.
        interval: clock records (``I``, ``L``, ``S``, ``M``) between two passes (>= 1).
        order: smallest free-block order reported (0..18; 9 = 2 MiB, Linux's pageblock order).
    """

    reporting: bool = False
    interval: int = DEFAULT_REPORT_INTERVAL
    order: int = DEFAULT_REPORT_ORDER


@dataclass(frozen=True)
class ModelConfig:
    """A complete, resolved configuration of the canonical model.

    Attributes:
        name: free text; the name results are reported under.
        description: free text.
        virtualized: nested paging (True) or native (False; the host side is then ignored).
        cpu: the CPU preset the translation caches started from ("" if none).
        guest: the guest side (the machine itself when native).
        host: the host side.
        tlb_l1: L1 TLB arrays (absent arrays, entries 0, are dropped at load).
        tlb_l2: L2 TLB arrays.
        psc_guest: guest paging-structure caches, by level.
        psc_host: host paging-structure caches, by level.
        ntlb: the nested TLB (gpa -> hpa), or None.
        source: where the config came from (a file path or ``preset:NAME``), for error messages.
        cost: the optional ``[cost]`` table, as given (interpreted by :mod:`memmodel.analysis.costs`).
        balloon: free page reporting (v2).
        baseline: for a memctl config, the name of the baseline config it is fairly compared with
            (e.g. ``memctl-2m`` -> ``baseline-thp``); "" when none is declared.
    """

    name: str
    description: str = ""
    virtualized: bool = True
    cpu: str = ""
    guest: SideConfig = field(default_factory=SideConfig)
    host: SideConfig = field(default_factory=lambda: SideConfig(memory=64 * GIB))
    tlb_l1: tuple[TlbArray, ...] = ()
    tlb_l2: tuple[TlbArray, ...] = ()
    psc_guest: tuple[PscArray, ...] = ()
    psc_host: tuple[PscArray, ...] = ()
    ntlb: TlbArray | None = None
    source: str = ""
    cost: tuple[tuple[str, float], ...] = ()
    balloon: BalloonConfig = field(default_factory=BalloonConfig)
    baseline: str = ""

    def to_toml(self) -> str:
        """The resolved config as TOML in docs/model.md §5 syntax (every table inline, no ``cpu`` indirection)."""
        lines = [f"name = {_q(self.name)}"]
        if self.description:
            lines.append(f"description = {_q(self.description)}")
        lines.append(f"virtualized = {_b(self.virtualized)}")
        if self.baseline:
            lines.append(f"baseline = {_q(self.baseline)}")
        if self.cpu:
            lines.append(f"# translation caches resolved from cpu = {_q(self.cpu)}")
        sides: list[tuple[str, SideConfig]] = [("guest", self.guest), ("host", self.host)]
        for side_name, side in sides:
            lines += [
                "",
                f"[{side_name}]",
                f"levels = {side.levels}",
                f"page_size = {_q(SHIFT_NAMES[side.page_shift])}",
                f"zeroing = {_b(side.zeroing)}",
                f"memory = {_q(format_bytes(side.memory))}",
                f"fragmentation = {side.fragmentation!r}",
                f"seed = {side.seed}",
                f"placement = {_q(side.placement)}",
            ]
            if side_name == "guest":
                lines.append(f"unmap = {_q(side.unmap)}")
            if side_name == "host":
                lines.append(f"prealloc = {_b(side.prealloc)}")
        if self.virtualized:
            b = self.balloon
            lines += ["", "[balloon]", f"reporting = {_b(b.reporting)}", f"interval = {b.interval}",
                      f"order = {b.order}"]
        for level_name, arrays in (("l1", self.tlb_l1), ("l2", self.tlb_l2)):
            for arr in arrays:
                sizes = ", ".join(_q(SHIFT_NAMES[s]) for s in arr.page_shifts)
                lines += [
                    "",
                    f"[[tlb.{level_name}]]",
                    f"page_sizes = [{sizes}]",
                    f"entries = {arr.entries}",
                    f"ways = {arr.ways}",
                ]
        for side_name, pscs in (("guest", self.psc_guest), ("host", self.psc_host)):
            for psc in pscs:
                lines += [
                    "",
                    f"[[psc.{side_name}]]",
                    f"level = {psc.level}",
                    f"entries = {psc.entries}",
                    f"ways = {psc.ways}",
                ]
        if self.ntlb is not None:
            lines += ["", "[ntlb]", f"entries = {self.ntlb.entries}", f"ways = {self.ntlb.ways}"]
        if self.cost:
            lines += ["", "[cost]"] + [f"{k} = {v!r}" for k, v in self.cost]
        return "\n".join(lines) + "\n"


def format_bytes(n: int) -> str:
    """Render a byte count in the largest binary unit that divides it exactly ("16G", "1536M", "4096")."""
    for unit, shift in (("T", 40), ("G", 30), ("M", 20), ("K", 10)):
        if n and n % (1 << shift) == 0:
            return f"{n >> shift}{unit}"
    return str(n)


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _b(v: bool) -> str:
    return "true" if v else "false"
