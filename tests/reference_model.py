"""A slow, literal pure-Python reading of MODEL.md (the canonical model, v2), for differential tests.

Written straight from the text, section by section, with no optimisation (no run collapsing, no
caches of derived state), so that it can be read side by side with MODEL.md. Comments quote the
rule each block implements. The fast engine (:mod:`memmodel.engine`) must give exactly the same
counters for every trace and config; ``run_reference(records, cfg, extras=True)`` also returns the
two non-canonical extras the engine reports (``guest_zeroed_refault_bytes``,
``host_zeroed_refault_bytes``).

Records are ``(kind, address, size)`` tuples with kind one of ``"ILSMU"``; for ``U`` the size is the
unmap length n (any size up to 2^64 - 1). :func:`parse_lackey_simple` is an independent reader of
lackey text (section 1, syscall lines included) that pins memmodel's own reader.

Units: addresses and lengths in bytes; frames are 4 KiB frame numbers; shifts are 12, 21 or 30.
"""

from __future__ import annotations

import bisect
import re
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, overload

from memmodel.config.model import ModelConfig, SideConfig

MASK64 = (1 << 64) - 1
ADDR_END = 1 << 64  # "both ends capped at 2^64" (section 7)
MAX_ORDER = 18
SHIFTS_DESC = (30, 21, 12)

#: The counters of MODEL.md section 6 that every run reports (the four host indices come on top
#: for virtualized runs).
COUNTERS = (
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
    "unmaps",
    "unmapped_bytes",
    "guest_freed_bytes",
    "guest_splits",
    "host_splits",
    "host_discards",
    "host_freed_bytes",
    "report_ticks",
    "tlb_flushes",
    "tlb_page_invalidations",
    "guest_resident_bytes",
    "host_resident_bytes",
    "host_resident_peak_bytes",
)
HOST_COUNTERS = (*(c for c in COUNTERS if c.startswith("host_")), "ntlb_hits", "ntlb_misses")
EXTRAS = ("guest_zeroed_refault_bytes", "host_zeroed_refault_bytes")


class OutOfMemory(Exception):
    """The run stopped: a side ran out of memory (the message names the side)."""


def splitmix64(x: int) -> int:
    """The standard splitmix64 output function of state ``x`` (MODEL.md section 2)."""
    z = (x + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def leaf(levels: int, shift: int) -> int:
    """``leaf(s) = L - (s - 12) / 9``: the level that holds a leaf of shift s (section 2)."""
    return levels - (shift - 12) // 9


# ==== Section 2: the buddy allocator ==============================================================
class Buddy:
    """Buddy allocator over 4 KiB frames, orders 0..18 (MODEL.md section 2).

    Invariant: ``free[o]`` holds the first frame of every free block of order o, and the blocks are
    always the canonical decomposition of the free frames into maximal aligned power-of-two blocks.
    """

    def __init__(
        self, frames: int, fragmentation: float, seed: int, placement: str = "lowest", side: str = "guest"
    ) -> None:
        self.side = side
        self.placement = placement
        self.seed = seed
        # "i counts the allocations this allocator has made before this one (every successful alloc)".
        self.allocs = 0
        # "for every 2 MiB block index b (ascending), let h = splitmix64((s << 32) XOR b); if
        # (h >> 11) * 2^-53 < f, frame b*512 + (splitmix64(h) mod 512) is removed from the free space".
        removed: list[int] = []
        for b in range(frames // 512):
            h = splitmix64(((seed << 32) ^ b) & MASK64)
            if (h >> 11) * 2.0**-53 < fragmentation:
                removed.append(b * 512 + splitmix64(h) % 512)
        self.free: list[set[int]] = [set() for _ in range(MAX_ORDER + 1)]
        # "Its free space is always the canonical decomposition of the free frames into maximal
        # aligned power-of-two blocks."
        for start in range(0, frames, 1 << MAX_ORDER):
            self._decompose(start, MAX_ORDER, removed)

    def _decompose(self, start: int, order: int, removed: list[int]) -> None:
        lo = bisect.bisect_left(removed, start)
        hi = bisect.bisect_left(removed, start + (1 << order))
        if lo == hi:
            self.free[order].add(start)
        elif order > 0:
            half = 1 << (order - 1)
            self._decompose(start, order - 1, removed)
            self._decompose(start + half, order - 1, removed)

    def can_alloc(self, order: int) -> bool:
        """Whether a free block of order ``order`` or larger exists."""
        return any(self.free[o] for o in range(order, MAX_ORDER + 1))

    def alloc(self, order: int, side: str | None = None) -> int:
        """Allocate 2^order frames; return the first frame.

        Raises OutOfMemory naming the side (``side``, default the allocator's own).
        """
        # "take the smallest order o >= order that has a free block"
        for o in range(order, MAX_ORDER + 1):
            if not self.free[o]:
                continue
            blocks = sorted(self.free[o])
            if self.placement == "random":
                # "the k-th lowest (k = 0 is the lowest), k = splitmix64(splitmix64(seed XOR
                # 0xA5A5A5A5) + i) mod m (arithmetic modulo 2^64), where m is the number of free
                # blocks of order o"
                inner = splitmix64((self.seed ^ 0xA5A5A5A5) & MASK64)
                k = splitmix64((inner + self.allocs) & MASK64) % len(blocks)
            else:
                # "placement = "lowest" (the default) the one with the lowest address"
                k = 0
            block = blocks[k]
            self.free[o].remove(block)
            # "the allocation is the lowest 2^order frames of it, and the rest of it stays free (as
            # blocks of orders order..o-1)"
            for j in range(order, o):
                self.free[j].add(block + (1 << j))
            self.allocs += 1
            return block
        raise OutOfMemory(f"{side or self.side} out of memory (alloc of order {order})")

    def free_block(self, frame: int, order: int) -> None:
        """Return the aligned block [frame, frame + 2^order) to the free space.

        "free returns frames to the free space, which becomes the canonical decomposition of the new
        set of free frames (freed blocks merge with free buddies)". With the canonical invariant a
        block's buddy is entirely free exactly when it is itself a free block of the same order, so
        merging upwards with free buddies gives the canonical decomposition.
        """
        assert frame % (1 << order) == 0, "freed blocks are aligned"
        assert not any(self._is_free(f) for f in (frame, frame + (1 << order) - 1)), "double free"
        while order < MAX_ORDER:
            buddy = frame ^ (1 << order)
            if buddy not in self.free[order]:
                break
            self.free[order].remove(buddy)
            frame = min(frame, buddy)
            order += 1
        self.free[order].add(frame)

    def _is_free(self, f: int) -> bool:
        return any((f >> o << o) in self.free[o] for o in range(MAX_ORDER + 1))

    def blocks(self) -> list[tuple[int, int]]:
        """Every free block as (first frame, order), in ascending address order."""
        return sorted((b, o) for o in range(MAX_ORDER + 1) for b in self.free[o])

    def nr_free(self) -> list[int]:
        """Free blocks per order 0..18."""
        return [len(s) for s in self.free]


# ==== Section 3: set-associative true-LRU arrays =================================================
class Lru:
    """A set-associative true-LRU array; ``sets = entries / ways``, set index = key mod sets."""

    def __init__(self, entries: int, ways: int) -> None:
        self.ways = ways
        self.nsets = entries // ways
        self.sets: list[OrderedDict[object, None]] = [OrderedDict() for _ in range(self.nsets)]

    def lookup(self, index: int, tag: object) -> bool:
        """'a hit makes the entry most recent'."""
        s = self.sets[index % self.nsets]
        if tag in s:
            s.move_to_end(tag)
            return True
        return False

    def fill(self, index: int, tag: object) -> None:
        """'a fill inserts as most recent and evicts the least recent when the set is full'."""
        s = self.sets[index % self.nsets]
        if tag in s:
            s.move_to_end(tag)
            return
        if len(s) >= self.ways:
            s.popitem(last=False)
        s[tag] = None

    def invalidate(self, index: int, tag: object) -> None:
        """'Invalidating an entry removes it from its set; the other entries keep their order' (section 9)."""
        self.sets[index % self.nsets].pop(tag, None)

    def empty(self) -> None:
        """'Emptying an array removes all its entries' (section 9)."""
        for s in self.sets:
            s.clear()


# ==== Section 2: one side's mappings and page tables =============================================
@dataclass
class Side:
    """Page tables and data pages of one side (guest: gva -> gpa; host: gpa -> hpa).

    Attributes:
        cfg: the side's config.
        name: "guest" or "host" (for out-of-memory errors).
        alloc: the side's buddy allocator.
        pages_by_key: (shift, address >> shift) -> first frame of each mapped data page.
        inside: (shift t, address >> t) -> number of mapped pages lying in that aligned 2^t region
            (t = 12, 21, 30), to answer "whose aligned region ... contains no existing mapping".
        tables: (level, table id) -> frame of each page table at levels 2..L (the root is ``root``).
    """

    cfg: SideConfig
    name: str
    alloc: Buddy
    pages_by_key: dict[tuple[int, int], int] = field(default_factory=dict)
    inside: dict[tuple[int, int], int] = field(default_factory=dict)
    tables: dict[tuple[int, int], int] = field(default_factory=dict)
    root: int = -1
    pages: dict[int, int] = field(default_factory=lambda: {12: 0, 21: 0, 30: 0})
    faults: int = 0
    fallbacks: int = 0
    pt_pages: int = 0
    splits: int = 0
    freed_bytes: int = 0
    resident_bytes: int = 0

    def lookup(self, a: int) -> tuple[int, int, int] | None:
        """(shift, page start, physical address of a) if a is mapped on this side, else None."""
        for s in SHIFTS_DESC:
            frame = self.pages_by_key.get((s, a >> s))
            if frame is not None:
                return s, a >> s << s, (frame << 12) + (a & ((1 << s) - 1))
        return None

    def table_id(self, a: int, level: int) -> int:
        """'The table at level k >= 2 that covers address a is identified by a >> (12 + 9 * (L - k + 1))'."""
        return a >> (12 + 9 * (self.cfg.levels - level + 1))

    def region_free(self, a: int, s: int) -> bool:
        """Whether the aligned 2^s region around a contains no existing mapping."""
        if self.inside.get((s, a >> s), 0) > 0:
            return False
        # A larger page containing the whole region is a mapping in it too.
        return all((t, a >> t) not in self.pages_by_key for t in SHIFTS_DESC if t > s)

    def choose_shift(self, a: int) -> int:
        """'the largest of 1G, 2M, 4K that is not larger than page_size, whose aligned region of that
        size around v contains no existing mapping, and for which the allocator can satisfy alloc(s - 12)'."""
        for s in SHIFTS_DESC:
            if s > self.cfg.page_shift:
                continue
            if not self.region_free(a, s):
                continue
            if self.alloc.can_alloc(s - 12):
                return s
        raise OutOfMemory(f"{self.name} out of memory (no page for a fault at {a:#x})")

    def add_page(self, start: int, s: int, frame: int) -> None:
        """Record the mapping of the page [start, start + 2^s) to ``frame``."""
        self.pages_by_key[(s, start >> s)] = frame
        for t in (12, 21, 30):
            if t >= s:
                self.inside[(t, start >> t)] = self.inside.get((t, start >> t), 0) + 1

    def remove_page(self, start: int, s: int) -> int:
        """Drop the mapping of the page [start, start + 2^s); return its first frame."""
        frame = self.pages_by_key.pop((s, start >> s))
        for t in (12, 21, 30):
            if t >= s:
                self.inside[(t, start >> t)] -= 1
        return frame

    def mapped_pages(self) -> list[tuple[int, int, int]]:
        """Every mapped data page as (start, shift, frame), ascending by address."""
        return sorted((idx << s, s, frame) for (s, idx), frame in self.pages_by_key.items())

    def pages_inside(self, p: int, q: int) -> list[tuple[int, int, int]]:
        """The mapped data pages lying entirely inside [p, q), as (start, shift, frame), ascending: the
        pages of mapped_pages() with start >= p and start + size <= q. Per size it looks the range's
        possible pages up when they are fewer than the mapped pages, else filters those (a reporting
        pass discards every free block, often one small block at a time: sorting every mapped page for
        each made one generated example of the lifecycle test run for over 15 minutes)."""
        out = []
        for s in SHIFTS_DESC:
            first, last = (p + (1 << s) - 1) >> s, (q >> s) - 1  # pages [first, last] fit in [p, q)
            if last < first:
                continue
            if last - first + 1 <= len(self.pages_by_key):
                for idx in range(first, last + 1):
                    frame = self.pages_by_key.get((s, idx))
                    if frame is not None:
                        out.append((idx << s, s, frame))
            else:
                out.extend((idx << t, t, frame) for (t, idx), frame in self.pages_by_key.items()
                           if t == s and first <= idx <= last)
        return sorted(out)

    def page_crossing(self, b: int) -> tuple[int, int] | None:
        """(start, shift) of the page that 'starts below the boundary b and ends above it', if any."""
        found = self.lookup(b) if b < ADDR_END else None
        if found is None:
            return None
        s, start, _ = found
        return (start, s) if start < b else None

    def count_new_page(self, s: int) -> None:
        """A fault mapped a new data page of shift s (cumulative counters, section 6)."""
        self.pages[s] += 1
        self.faults += 1
        if s < self.cfg.page_shift:
            self.fallbacks += 1
        self.resident_bytes += 1 << s


class Reference:
    """The canonical model, literally."""

    def __init__(self, cfg: ModelConfig) -> None:
        self.cfg = cfg
        self.virt = cfg.virtualized
        self.c: dict[str, int] = {k: 0 for k in COUNTERS}
        self.extras: dict[str, int] = {k: 0 for k in EXTRAS}
        self.touched: set[int] = set()
        # (shift, gpa >> shift) of every host page ever mapped: which guest-physical frames "had been
        # host-backed before" (extras only).
        self.ever_host_backed: set[tuple[int, int]] = set()
        self.l1_arrays = [(Lru(a.entries, a.ways), a.page_shifts) for a in cfg.tlb_l1]
        self.l2_arrays = [(Lru(a.entries, a.ways), a.page_shifts) for a in cfg.tlb_l2]
        self.l1 = self._tlb_level(self.l1_arrays)
        self.l2 = self._tlb_level(self.l2_arrays)
        self.gpsc = {p.level: Lru(p.entries, p.ways) for p in cfg.psc_guest}
        self.hpsc = {p.level: Lru(p.entries, p.ways) for p in cfg.psc_host}
        self.ntlb = Lru(cfg.ntlb.entries, cfg.ntlb.ways) if cfg.ntlb else None
        self.walk_hist: dict[int, int] = {}
        # Section 5 (v2 keys).
        self.unmap_mode = cfg.guest.unmap
        self.reporting = self.virt and cfg.balloon.reporting
        self.interval = cfg.balloon.interval
        self.report_order = cfg.balloon.order
        # Section 8: "The clock counts I, L, S and M records."
        self.clock = 0
        # Start-up (MODEL.md section 2), in order.
        # "1. Build each side's allocator and apply its fragmentation."
        self.guest = self._side(cfg.guest, "guest")
        self.host = self._side(cfg.host, "host") if self.virt else None
        # "2. If virtualized: allocate the host root table. If host.prealloc: host-touch [0, guest.memory)."
        if self.host is not None:
            self.host.root = self.host.alloc.alloc(0)
            self.host.pt_pages += 1
            if cfg.host.prealloc:
                self.host_touch(0, cfg.guest.memory)
        # "3. Allocate the guest root table; the guest zeroes it (always: page tables are always
        # zeroed); if virtualized, host-touch its 4 KiB."
        self.guest.root = self.guest.alloc.alloc(0)
        self.guest.pt_pages += 1
        if self.virt:
            self.host_touch(self.guest.root << 12, 4096)

    @staticmethod
    def _side(side: SideConfig, name: str) -> Side:
        return Side(side, name, Buddy(side.memory >> 12, side.fragmentation, side.seed, side.placement, name))

    @staticmethod
    def _tlb_level(arrays: list[tuple[Lru, tuple[int, ...]]]) -> dict[int, Lru]:
        out: dict[int, Lru] = {}
        for lru, shifts in arrays:
            for s in shifts:
                out[s] = lru
        return out

    # ---- section 2: host side --------------------------------------------------------------------
    def host_touch(self, start: int, length: int) -> None:
        """'walk it in ascending order; every address not yet backed takes a host fault'."""
        assert self.host is not None
        for p in range(start >> 12 << 12, start + length, 4096):
            if self.host.lookup(p) is None:
                self.host_fault(p)

    def host_fault(self, p: int) -> None:
        host = self.host
        assert host is not None
        if p >= self.cfg.guest.memory:
            # "A touch beyond guest.memory is an error."
            raise ValueError(f"host touch at {p:#x} beyond guest memory")
        # "choose the shift s exactly like the guest (limited by host.page_size, region free of
        # backings, order available)"
        s = host.choose_shift(p)
        # "allocate every missing host table at levels 2..leaf(s), top-down"
        for level in range(2, leaf(host.cfg.levels, s) + 1):
            self._ensure_table(host, level, p)
        # "allocate the data frame; count host_zeroed_bytes += 2^s if host.zeroing"
        frame = host.alloc.alloc(s - 12)
        start = p >> s << s
        refault = any((t, p >> t) in self.ever_host_backed for t in SHIFTS_DESC)
        host.add_page(start, s, frame)
        host.count_new_page(s)
        self.ever_host_backed.add((s, start >> s))
        self.c["host_backed_bytes"] += 1 << s
        if host.cfg.zeroing:
            self.c["host_zeroed_bytes"] += 1 << s
            if refault:
                self.extras["host_zeroed_refault_bytes"] += 1 << s
        self.c["host_resident_peak_bytes"] = max(self.c["host_resident_peak_bytes"], host.resident_bytes)

    def _ensure_table(self, side: Side, level: int, a: int) -> None:
        """Allocate the side's level-``level`` table covering ``a`` if it does not exist.

        'Tables are 4 KiB, allocated with alloc(0) when first needed.' A guest table is zeroed by the
        guest (page tables are not counted in guest_zeroed_bytes) and host-touched if virtualized;
        'Host page tables are host memory: ... not host-touched, backed or zeroed bytes.'
        """
        key = (level, side.table_id(a, level))
        if key in side.tables:
            return
        frame = side.alloc.alloc(0)
        side.tables[key] = frame
        side.pt_pages += 1
        if side is self.guest and self.virt:
            self.host_touch(frame << 12, 4096)

    # ---- section 2: guest fault --------------------------------------------------------------------
    def guest_fault(self, v: int, refault: bool) -> None:
        g = self.guest
        s = g.choose_shift(v)
        # "allocate every missing guest table at levels 2..leaf(s), top-down, each zeroed by the
        # guest and (if virtualized) host-touched"
        for level in range(2, leaf(g.cfg.levels, s) + 1):
            self._ensure_table(g, level, v)
        # "allocate the data frame with that order"
        frame = g.alloc.alloc(s - 12)
        g.add_page(v >> s << s, s, frame)
        g.count_new_page(s)
        # "if guest.zeroing, the guest zeroes all 2^s bytes and (if virtualized) host-touches them"
        if g.cfg.zeroing:
            self.c["guest_zeroed_bytes"] += 1 << s
            if refault:
                self.extras["guest_zeroed_refault_bytes"] += 1 << s
            if self.virt:
                self.host_touch(frame << 12, 1 << s)

    # ---- section 3: one translation ------------------------------------------------------------------
    def translate(self, v: int) -> None:
        self.c["accesses"] += 1
        # Extras: a guest fault whose 4 KiB virtual page "had been translated before".
        refault = (v >> 12) in self.touched
        self.touched.add(v >> 12)
        # "1. If v is unmapped, take a guest fault."
        if self.guest.lookup(v) is None:
            self.guest_fault(v, refault)
        found = self.guest.lookup(v)
        assert found is not None
        gs, _, gpa = found
        if self.virt:
            # "2. If gpa is not backed, host-touch the single address gpa."
            assert self.host is not None
            if self.host.lookup(gpa) is None:
                self.host_fault(gpa)
            hfound = self.host.lookup(gpa)
            assert hfound is not None
            # "3. The TLB entry covers es = min(gs, hs) (splintering)"
            es = min(gs, hfound[0])
        else:
            es = gs
        vpn = v >> es
        tag = (es, vpn)
        # "4. L1: the L1 array that lists page size es (if any). Hit: l1_hits += 1, done."
        l1 = self.l1.get(es)
        if l1 is not None and l1.lookup(vpn, tag):
            self.c["l1_hits"] += 1
            return
        # "5. L2 ... Hit: l2_hits += 1, fill L1, done."
        l2 = self.l2.get(es)
        if l2 is not None and l2.lookup(vpn, tag):
            self.c["l2_hits"] += 1
            if l1 is not None:
                l1.fill(vpn, tag)
            return
        # "6. Otherwise walks += 1: do the walk (section 4), then fill L2, then L1."
        self.c["walks"] += 1
        before = self.c["guest_pte_loads"] + self.c["host_pte_loads"]
        self.walk(v, gs, gpa)
        loads = self.c["guest_pte_loads"] + self.c["host_pte_loads"] - before
        self.walk_hist[loads] = self.walk_hist.get(loads, 0) + 1
        if l2 is not None:
            l2.fill(vpn, tag)
        if l1 is not None:
            l1.fill(vpn, tag)

    # ---- section 4: the 2D walk ----------------------------------------------------------------------
    def walk(self, v: int, gs: int, gpa: int) -> None:
        L = self.cfg.guest.levels
        G = leaf(L, gs)
        # "1. ... Look up levels j = G-1 down to 1; the first hit (deepest) sets k = j"
        k = 0
        for j in range(G - 1, 0, -1):
            psc = self.gpsc.get(j)
            if psc is not None:
                key = v >> (12 + 9 * (L - j))
                if psc.lookup(key, key):
                    k = j
                    break
        if k > 0:
            self.c["psc_guest_hits"] += 1
        # "2. For each level j = k+1 .. G: unless (j = k+1 and k >= 1), host-translate the
        # guest-physical address of the level-j guest table (for j = 1 the root); then load the
        # guest entry"
        for j in range(k + 1, G + 1):
            if self.virt and not (j == k + 1 and k >= 1):
                table = self.guest.root if j == 1 else self.guest.tables[(j, self.guest.table_id(v, j))]
                self.host_translate(table << 12)
            self.c["guest_pte_loads"] += 1
        # "3. Host-translate gpa (the data page)."
        if self.virt:
            self.host_translate(gpa)
        # "4. Fill the guest PSCs of levels k+1 .. G-1 (those that exist)."
        for j in range(k + 1, G):
            psc = self.gpsc.get(j)
            if psc is not None:
                key = v >> (12 + 9 * (L - j))
                psc.fill(key, key)

    def host_translate(self, p: int) -> None:
        host = self.host
        assert host is not None
        found = host.lookup(p)
        assert found is not None, "host-translate of an unbacked guest-physical address"
        hs = found[0]
        Lh = host.cfg.levels
        H = leaf(Lh, hs)
        # "1. Nested TLB, tag (hs, p >> hs), set index (p >> hs) mod sets. Hit: ntlb_hits += 1, done."
        if self.ntlb is not None and self.ntlb.lookup(p >> hs, (hs, p >> hs)):
            self.c["ntlb_hits"] += 1
            return
        # "2. ntlb_misses += 1 ... Host PSCs ... giving kh. host_pte_loads += H - kh."
        self.c["ntlb_misses"] += 1
        kh = 0
        for j in range(H - 1, 0, -1):
            psc = self.hpsc.get(j)
            if psc is not None:
                key = p >> (12 + 9 * (Lh - j))
                if psc.lookup(key, key):
                    kh = j
                    break
        self.c["host_pte_loads"] += H - kh
        # "3. Fill the host PSCs of levels kh+1 .. H-1, then the nested TLB."
        for j in range(kh + 1, H):
            psc = self.hpsc.get(j)
            if psc is not None:
                key = p >> (12 + 9 * (Lh - j))
                psc.fill(key, key)
        if self.ntlb is not None:
            self.ntlb.fill(p >> hs, (hs, p >> hs))

    # ---- section 7: release, unmap records, host discard -----------------------------------------------
    def split(self, side: Side, start: int, s: int) -> None:
        """'a page of shift s becomes 512 pages of shift s - 9 that map the same frames in order; if
        the table at level leaf(s - 9) that covers it does not exist, allocate it (alloc(0))'."""
        frame = side.remove_page(start, s)
        self._ensure_table(side, leaf(side.cfg.levels, s - 9), start)
        t = s - 9
        for i in range(512):
            side.add_page(start + (i << t), t, frame + (i << (t - 12)))
        side.splits += 1

    def release(self, side: Side, p: int, q: int) -> bool:
        """Release the 4 KiB-aligned range [p, q) on ``side``; True if anything was split or freed."""
        assert p % 4096 == 0 and q % 4096 == 0 and p < q
        changed = False
        # "1. Split. While a page of the side crosses p or q (it starts below the boundary and ends
        # above it), split it, the page that crosses p first, in ascending order"
        while True:
            crossing = side.page_crossing(p) or side.page_crossing(q)
            if crossing is None:
                break
            self.split(side, crossing[0], crossing[1])
            changed = True
        # "2. Free. Every page of the side lying entirely inside [p, q), in ascending order, is
        # unmapped and its frames are freed to the side's allocator"
        for start, s, frame in side.pages_inside(p, q):
            if start >= p and start + (1 << s) <= q:
                side.remove_page(start, s)
                side.alloc.free_block(frame, s - 12)
                side.freed_bytes += 1 << s
                side.resident_bytes -= 1 << s
                changed = True
        return changed

    def host_discard(self, p: int, q: int) -> bool:
        """'Host discard of a guest-physical range: release it on the host side.'"""
        assert self.host is not None
        return self.release(self.host, p, q)

    def unmap(self, a: int, n: int) -> None:
        """A U(a, n) record (section 7)."""
        # "r = [a rounded up to 4 KiB, a + n rounded up to 4 KiB), both ends capped at 2^64"
        r_start = min((a + 4095) >> 12 << 12, ADDR_END)
        r_end = min((a + n + 4095) >> 12 << 12, ADDR_END)
        size = max(0, r_end - r_start)
        # "unmaps += 1, unmapped_bytes += |r|"
        self.c["unmaps"] += 1
        self.c["unmapped_bytes"] += size
        # "A record with n = 0 or an empty r counts in unmaps and changes nothing else."
        if n == 0 or size == 0:
            return
        if self.unmap_mode == "free":
            # "release r on the guest side. The freed guest frames stay host-backed. If anything was
            # split or freed, the guest invalidates r (section 9)."
            if self.release(self.guest, r_start, r_end):
                self.guest_invalidate(r_start, r_end)
            return
        # "passthrough": "For each guest page [b, e) that intersects r, in ascending address, the
        # host discards the guest-physical image of [max(b, r.start), min(e, r.end)) ... neighbouring
        # images are discarded one by one, not merged). Parts of r with no guest mapping do nothing."
        changed = False
        for b, s, frame in self.guest.mapped_pages():
            e = b + (1 << s)
            if b >= r_end or e <= r_start:
                continue
            lo, hi = max(b, r_start), min(e, r_end)
            image = (frame << 12) + (lo - b)
            if self.host_discard(image, image + (hi - lo)):
                changed = True
        # "If these discards freed or split at least one host page, host_discards += 1 and the host
        # flushes (section 9), once for the record."
        if changed:
            self.c["host_discards"] += 1
            self.host_flush()

    # ---- section 8: free page reporting ------------------------------------------------------------------
    def report_pass(self) -> None:
        """'report_ticks += 1; then for each free block of the guest allocator of order >=
        balloon.order, in ascending address order, the host discards that block's guest-physical
        range; each block whose discard freed or split at least one host page counts
        host_discards += 1 and makes the host flush'."""
        self.c["report_ticks"] += 1
        for frame, order in self.guest.alloc.blocks():
            if order < self.report_order:
                continue
            if self.host_discard(frame << 12, (frame + (1 << order)) << 12):
                self.c["host_discards"] += 1
                self.host_flush()

    # ---- section 9: TLB invalidation ------------------------------------------------------------------------
    def guest_invalidate(self, r_start: int, r_end: int) -> None:
        pages = (r_end - r_start) // 4096
        # "if pages <= 33 (Linux's tlb_single_page_flush_ceiling), for each 4 KiB page x of r in
        # ascending order, every TLB entry (L1 and L2 arrays) that covers x is invalidated (for each
        # array and each page size s it lists, the tag (s, x >> s) in set (x >> s) mod sets) and
        # tlb_page_invalidations += pages; otherwise every TLB array is emptied and tlb_flushes += 1."
        if pages <= 33:
            for x in range(r_start, r_end, 4096):
                for lru, shifts in self.l1_arrays + self.l2_arrays:
                    for s in shifts:
                        lru.invalidate(x >> s, (s, x >> s))
            self.c["tlb_page_invalidations"] += pages
        else:
            for lru, _ in self.l1_arrays + self.l2_arrays:
                lru.empty()
            self.c["tlb_flushes"] += 1
        # "In both cases every guest PSC is emptied ... The nested TLB and the host PSCs are kept."
        for psc in self.gpsc.values():
            psc.empty()

    def host_flush(self) -> None:
        """'every TLB array, every guest PSC, the nested TLB and every host PSC is emptied'."""
        for lru, _ in self.l1_arrays + self.l2_arrays:
            lru.empty()
        for psc in list(self.gpsc.values()) + list(self.hpsc.values()):
            psc.empty()
        if self.ntlb is not None:
            self.ntlb.empty()

    # ---- section 1: records ---------------------------------------------------------------------------------
    def record(self, kind: str, a: int, n: int) -> None:
        if kind == "U":
            # "A U record does not advance the clock (section 8) and is not a translation."
            self.unmap(a, n)
            return
        if kind == "I":
            # "I records are counted in instructions and are not translated"
            self.c["instructions"] += 1
        elif kind in ("L", "S", "M"):
            # "L, S, M each make one translation of a ... If the access straddles a 4 KiB boundary
            # ((a mod 4096) + n > 4096), a second translation of a + n - 1 follows immediately"
            self.translate(a)
            if (a % 4096) + n > 4096:
                # the definition is silent past the top of the 64-bit address space: addresses wrap
                # modulo 2^64 (a decision documented in docs/model.md, "Decisions", item 1)
                self.translate((a + n - 1) & MASK64)
        else:
            raise ValueError(f"unknown record kind {kind!r} (expected one of I, L, S, M, U)")
        # "after every record that brings the clock to a multiple of balloon.interval (after both
        # translations of a straddling access), a reporting pass runs"
        self.clock += 1
        if self.reporting and self.clock % self.interval == 0:
            self.report_pass()

    # ---- section 6: counters -------------------------------------------------------------------------------
    def counters(self) -> dict[str, float]:
        c: dict[str, float] = dict(self.c)
        c["walk_loads"] = self.c["guest_pte_loads"] + self.c["host_pte_loads"]
        c["touched_bytes"] = 4096 * len(self.touched)
        g = self.guest
        c.update(
            guest_faults=g.faults,
            guest_fallbacks=g.fallbacks,
            guest_pages_4k=g.pages[12],
            guest_pages_2m=g.pages[21],
            guest_pages_1g=g.pages[30],
            guest_pt_pages=g.pt_pages,
            guest_freed_bytes=g.freed_bytes,
            guest_splits=g.splits,
            guest_resident_bytes=g.resident_bytes,
        )
        h = self.host
        if h is None:
            # "Native runs report every host counter and ntlb_hits/ntlb_misses as 0, keep
            # psc_guest_hits, and omit the four host indices."
            for name in HOST_COUNTERS:
                c[name] = 0
            return c
        c.update(
            host_faults=h.faults,
            host_fallbacks=h.fallbacks,
            host_pages_4k=h.pages[12],
            host_pages_2m=h.pages[21],
            host_pages_1g=h.pages[30],
            host_pt_pages=h.pt_pages,
            host_splits=h.splits,
            host_freed_bytes=h.freed_bytes,
            host_resident_bytes=h.resident_bytes,
        )
        nr = h.alloc.nr_free()
        for name, order in (("2m", 9), ("1g", 18)):
            c[f"host_unusable_index_{name}"] = unusable_index(nr, order)
            c[f"host_extfrag_index_{name}"] = extfrag_index(nr, order)
        return c


def unusable_index(nr_free: list[int], order: int) -> float:
    """'(free_pages - suitable * 2^order) / free_pages (0 when nothing is free)', rounded to 6 decimals."""
    free_pages = sum(n << o for o, n in enumerate(nr_free))
    if free_pages == 0:
        return 0.0
    suitable = sum(n << (o - order) for o, n in enumerate(nr_free) if o >= order)
    return round((free_pages - suitable * (1 << order)) / free_pages, 6)


def extfrag_index(nr_free: list[int], order: int) -> float:
    """'-1 if suitable > 0; 0 if no free block; else 1 - (1 + free_pages / 2^order) / free_blocks'."""
    free_pages = sum(n << o for o, n in enumerate(nr_free))
    suitable = sum(n << (o - order) for o, n in enumerate(nr_free) if o >= order)
    blocks = sum(nr_free)
    if suitable > 0:
        return -1.0
    if blocks == 0:
        return 0.0
    return round(1 - (1 + free_pages / (1 << order)) / blocks, 6)


@overload
def run_reference(
    records: Iterable[tuple[str, int, int]], cfg: ModelConfig, extras: Literal[False] = ...
) -> dict[str, float]: ...


@overload
def run_reference(
    records: Iterable[tuple[str, int, int]], cfg: ModelConfig, extras: Literal[True]
) -> tuple[dict[str, float], dict[str, int]]: ...


def run_reference(
    records: Iterable[tuple[str, int, int]], cfg: ModelConfig, extras: bool = False
) -> dict[str, float] | tuple[dict[str, float], dict[str, int]]:
    """Counters of MODEL.md section 6 for ``records`` = (kind letter, address, size) under ``cfg``.

    With ``extras=True`` return ``(counters, extras)``, extras being the non-canonical
    ``guest_zeroed_refault_bytes`` (guest-zeroed bytes of guest faults whose faulting 4 KiB virtual
    page had been translated before) and ``host_zeroed_refault_bytes`` (host-zeroed bytes of host
    faults at a guest-physical 4 KiB frame that had been host-backed before).
    """
    model = Reference(cfg)
    for kind, a, n in records:
        model.record(kind, a, n)
    if extras:
        return model.counters(), dict(model.extras)
    return model.counters()


# ==== Section 1: an independent lackey reader ===================================================
_PID_LINE = re.compile(r"^(==\d+==|--\d+--)")
_SYSCALL = re.compile(r"^SYSCALL\[(\d+),(\d+)\]\((\d+)\) ?(.*)$")
# "SYSCALL[pid,tid](nr) sys_NAME ( ARG, ARG, ... )": the name, the argument text, and what follows.
_CALL = re.compile(r"^(\S+) \((.*?) \)(.*)$")
_SUCCESS = re.compile(r"Success\((0x[0-9a-fA-F]+|\d+)\)")
_ADV_UNMAP = (4, 8, 9)  # MADV_DONTNEED, MADV_FREE, MADV_REMOVE


def _num(text: str, lineno: int) -> int:
    """'Arguments and results are decimal or 0x hex.'"""
    t = text.strip()
    try:
        return int(t[2:], 16) if t.lower().startswith("0x") else int(t, 10)
    except ValueError:
        raise ValueError(f"line {lineno}: expected a decimal or 0x hex number, got {t!r}") from None


@dataclass
class _Call:
    """A syscall that has begun and not completed."""

    pid: int
    tid: int
    nr: int
    name: str
    args: str
    line: int
    pending_async: bool = False


def parse_lackey_simple(text: str) -> list[tuple[str, int, int]]:
    """Records of a lackey trace (MODEL.md section 1), ``U`` records from syscall lines included.

    Raises ValueError naming the line for an unparsable record line (a ``U`` line included: lackey
    has no ``U`` line of its own).
    """
    out: list[tuple[str, int, int]] = []
    begun: list[_Call] = []  # every begun, not completed call, in the order they began
    brk: dict[int, int] = {}  # pid -> current break

    def complete(call: _Call, outcome: str, lineno: int) -> None:
        """The call completes with the text after its '-->'; Success(R) of four calls makes a U."""
        begun.remove(call)
        m = _SUCCESS.search(outcome)
        if m is None:
            return  # "failures" are known non-record lines
        r = _num(m.group(1), lineno)
        args = [x for x in call.args.split(",")]
        if call.name == "sys_munmap":
            # "sys_munmap ( A, N ) gives U(A, N)"
            out.append(("U", _num(args[0], call.line), _num(args[1], call.line)))
        elif call.name == "sys_madvise":
            # "with ADV 4 (MADV_DONTNEED), 8 (MADV_FREE) or 9 (MADV_REMOVE) gives U(A, N)"
            if _num(args[2], call.line) in _ADV_UNMAP:
                out.append(("U", _num(args[0], call.line), _num(args[1], call.line)))
        elif call.name == "sys_brk":
            # "the first successful brk of a pid sets it to R and gives nothing; later, if R < the
            # current break B, it gives U(R, B - R); then the break is R"
            if call.pid in brk and r < brk[call.pid]:
                out.append(("U", r, brk[call.pid] - r))
            brk[call.pid] = r
        elif call.name == "sys_mremap":
            # "if R != OLD it gives U(OLD, OLDSIZE); else if NEWSIZE < OLDSIZE it gives
            # U(OLD + NEWSIZE, OLDSIZE - NEWSIZE); else nothing"
            old, oldsize, newsize = (_num(x, call.line) for x in args[:3])
            if r != old:
                out.append(("U", old, oldsize))
            elif newsize < oldsize:
                out.append(("U", old + newsize, oldsize - newsize))

    def after_arrow(call: _Call, tail: str, lineno: int) -> None:
        """Text from '-->' on: '[async] ...' makes the call a pending blocking call, else it completes."""
        outcome = tail.split("-->", 1)[1].strip()
        if outcome.startswith("[async]"):
            call.pending_async = True
        else:
            complete(call, outcome, lineno)

    for lineno, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if not s:
            continue
        # "on a later line whose first non-space text is --> or [sync] -->, which completes the most
        # recently begun call (of any pid) that has not completed"
        if s.startswith("-->") or s.startswith("[sync] -->"):
            if begun:
                after_arrow(begun[-1], s, lineno)
            continue
        if _PID_LINE.match(s) or s.startswith("SB"):
            continue
        m = _SYSCALL.match(s)
        if m is not None:
            pid, tid, nr, body = int(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4)
            if body.startswith("..."):
                # "SYSCALL[pid,tid](nr) ... [async] --> Success(R) of the same pid, tid and nr (the
                # most recently begun such call that is still pending)"
                if "-->" in body:
                    for call in reversed(begun):
                        if call.pending_async and (call.pid, call.tid, call.nr) == (pid, tid, nr):
                            complete(call, body.split("-->", 1)[1], lineno)
                            break
                continue
            cm = _CALL.match(body)
            name, args, tail = (cm.group(1), cm.group(2), cm.group(3)) if cm else ("", "", body)
            call = _Call(pid, tid, nr, name, args, lineno)
            begun.append(call)
            # A glued '==pid==' message: the call completes on a later continuation line.
            if "-->" in tail and not tail.lstrip().startswith("=="):
                after_arrow(call, tail, lineno)
            continue
        parts = s.split(None, 1)
        if parts[0] not in ("I", "L", "S", "M") or len(parts) != 2 or "," not in parts[1]:
            raise ValueError(f"line {lineno}: expected a lackey record 'K ADDR,SIZE' with K in I L S M, got {s!r}")
        addr, size = parts[1].split(",", 1)
        try:
            out.append((parts[0], int(addr, 16), int(size.split()[0], 10)))
        except (ValueError, IndexError):
            raise ValueError(f"line {lineno}: expected hex address and decimal size, got {s!r}") from None
    return out
