"""A slow, literal pure-Python reading of MODEL.md (the canonical model, v1), for differential tests.

Written straight from the text, section by section, with no optimisation (no run collapsing, no
caches of derived state), so that it can be read side by side with MODEL.md. The fast engine
(:mod:`memmodel.engine`) must give exactly the same counters for every trace and config.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Iterable

from memmodel.config.model import ModelConfig, SideConfig, TlbArray

MASK64 = (1 << 64) - 1
MAX_ORDER = 18


class OutOfMemory(Exception):
    """The run stopped: a side ran out of memory."""


def splitmix64(x: int) -> int:
    """The standard splitmix64 output function of state ``x`` (MODEL.md section 2)."""
    z = (x + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


class Buddy:
    """Buddy allocator over 4 KiB frames, orders 0..18, never freeing (MODEL.md section 2)."""

    def __init__(self, frames: int, fragmentation: float, seed: int) -> None:
        removed: list[int] = []
        for b in range(frames // 512):
            h = splitmix64(((seed << 32) ^ b) & MASK64)
            if (h >> 11) * 2.0**-53 < fragmentation:
                removed.append(b * 512 + splitmix64(h) % 512)
        self.free: list[set[int]] = [set() for _ in range(MAX_ORDER + 1)]
        # Canonical decomposition: maximal aligned power-of-two blocks of free frames.
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
        return any(self.free[o] for o in range(order, MAX_ORDER + 1))

    def alloc(self, order: int, side: str) -> int:
        for o in range(order, MAX_ORDER + 1):
            if self.free[o]:
                block = min(self.free[o])
                self.free[o].remove(block)
                for k in range(order, o):
                    self.free[k].add(block + (1 << k))
                return block
        raise OutOfMemory(side)

    def nr_free(self) -> list[int]:
        return [len(s) for s in self.free]


class Lru:
    """A set-associative true-LRU array; ``sets = entries / ways``, set index = key mod sets."""

    def __init__(self, entries: int, ways: int) -> None:
        self.ways = ways
        self.nsets = entries // ways
        self.sets: list[OrderedDict[object, None]] = [OrderedDict() for _ in range(self.nsets)]

    def lookup(self, index: int, tag: object) -> bool:
        s = self.sets[index % self.nsets]
        if tag in s:
            s.move_to_end(tag)
            return True
        return False

    def fill(self, index: int, tag: object) -> None:
        s = self.sets[index % self.nsets]
        if tag in s:
            s.move_to_end(tag)
            return
        if len(s) >= self.ways:
            s.popitem(last=False)
        s[tag] = None


def leaf(levels: int, shift: int) -> int:
    return levels - (shift - 12) // 9


class Side:
    """Page tables and mappings of one translation side (guest: gva -> gpa; host: gpa -> hpa)."""

    def __init__(self, cfg: SideConfig, name: str) -> None:
        self.cfg = cfg
        self.name = name
        self.alloc = Buddy(cfg.memory >> 12, cfg.fragmentation, cfg.seed)
        self.mappings: dict[tuple[int, int], int] = {}  # (shift, addr >> shift) -> frame of the page
        self.occupied: set[tuple[int, int]] = set()  # (shift, addr >> shift): region holds a mapping
        self.tables: dict[tuple[int, int], int] = {}  # (level, table id) -> frame
        self.root = -1
        self.pages = {12: 0, 21: 0, 30: 0}
        self.faults = 0
        self.fallbacks = 0
        self.pt_pages = 0

    def lookup(self, a: int) -> tuple[int, int] | None:
        """(shift, physical address of a) if a is mapped on this side."""
        for s in (30, 21, 12):
            frame = self.mappings.get((s, a >> s))
            if frame is not None:
                return s, (frame << 12) + (a & ((1 << s) - 1))
        return None

    def table_id(self, a: int, level: int) -> int:
        return a >> (12 + 9 * (self.cfg.levels - level + 1))

    def choose_shift(self, a: int) -> int:
        for s in (30, 21, 12):
            if s > self.cfg.page_shift:
                continue
            if (s, a >> s) in self.occupied:
                continue
            if self.alloc.can_alloc(s - 12):
                return s
        raise OutOfMemory(self.name)

    def map(self, a: int, s: int, frame: int) -> None:
        self.mappings[(s, a >> s)] = frame
        for t in (21, 30, 39, 48, 57):
            if t > s:
                self.occupied.add((t, a >> t))
        self.occupied.add((s, a >> s))
        self.pages[s] += 1
        self.faults += 1
        if s < self.cfg.page_shift:
            self.fallbacks += 1


class Reference:
    """The canonical model, literally."""

    def __init__(self, cfg: ModelConfig) -> None:
        self.cfg = cfg
        self.virt = cfg.virtualized
        self.c: dict[str, int] = {
            k: 0
            for k in (
                "instructions",
                "accesses",
                "l1_hits",
                "l2_hits",
                "walks",
                "guest_pte_loads",
                "host_pte_loads",
                "psc_guest_hits",
                "ntlb_hits",
                "ntlb_misses",
                "host_backed_bytes",
                "host_zeroed_bytes",
                "guest_zeroed_bytes",
            )
        }
        self.touched: set[int] = set()
        self.l1 = self._tlb_level(cfg.tlb_l1)
        self.l2 = self._tlb_level(cfg.tlb_l2)
        self.gpsc = {p.level: Lru(p.entries, p.ways) for p in cfg.psc_guest}
        self.hpsc = {p.level: Lru(p.entries, p.ways) for p in cfg.psc_host}
        self.ntlb = Lru(cfg.ntlb.entries, cfg.ntlb.ways) if cfg.ntlb else None
        self.walk_hist: dict[int, int] = {}
        # Start-up (MODEL.md section 2), in order.
        self.guest = Side(cfg.guest, "guest")
        self.host = Side(cfg.host, "host") if self.virt else None
        if self.host is not None:
            self.host.root = self.host.alloc.alloc(0, "host")
            self.host.pt_pages += 1
            if cfg.host.prealloc:
                self.host_touch(0, cfg.guest.memory)
        self.guest.root = self.guest.alloc.alloc(0, "guest")
        self.guest.pt_pages += 1
        if self.virt:
            self.host_touch(self.guest.root << 12, 4096)

    @staticmethod
    def _tlb_level(arrays: Iterable[TlbArray]) -> dict[int, Lru]:
        out: dict[int, Lru] = {}
        for arr in arrays:
            lru = Lru(arr.entries, arr.ways)
            for s in arr.page_shifts:
                out[s] = lru
        return out

    # ---- host side -------------------------------------------------------------------------
    def host_touch(self, start: int, length: int) -> None:
        assert self.host is not None
        for p in range(start >> 12 << 12, start + length, 4096):
            if self.host.lookup(p) is None:
                self.host_fault(p)

    def host_fault(self, p: int) -> None:
        host = self.host
        assert host is not None
        if p >= self.cfg.guest.memory:
            raise ValueError("host touch beyond guest memory")
        s = host.choose_shift(p)
        for level in range(2, leaf(host.cfg.levels, s) + 1):
            key = (level, host.table_id(p, level))
            if key not in host.tables:
                host.tables[key] = host.alloc.alloc(0, "host")
                host.pt_pages += 1
        frame = host.alloc.alloc(s - 12, "host")
        host.map(p, s, frame)
        self.c["host_backed_bytes"] += 1 << s
        if host.cfg.zeroing:
            self.c["host_zeroed_bytes"] += 1 << s

    # ---- guest side --------------------------------------------------------------------------
    def guest_fault(self, v: int) -> None:
        g = self.guest
        s = g.choose_shift(v)
        for level in range(2, leaf(g.cfg.levels, s) + 1):
            key = (level, g.table_id(v, level))
            if key not in g.tables:
                frame = g.alloc.alloc(0, "guest")
                g.tables[key] = frame
                g.pt_pages += 1
                if self.virt:
                    self.host_touch(frame << 12, 4096)
        frame = g.alloc.alloc(s - 12, "guest")
        g.map(v, s, frame)
        if g.cfg.zeroing:
            self.c["guest_zeroed_bytes"] += 1 << s
            if self.virt:
                self.host_touch(frame << 12, 1 << s)

    # ---- translation (section 3) ---------------------------------------------------------------
    def translate(self, v: int) -> None:
        self.c["accesses"] += 1
        self.touched.add(v >> 12)
        if self.guest.lookup(v) is None:
            self.guest_fault(v)
        found = self.guest.lookup(v)
        assert found is not None
        gs, gpa = found
        if self.virt:
            assert self.host is not None
            if self.host.lookup(gpa) is None:
                self.host_fault(gpa)
            hfound = self.host.lookup(gpa)
            assert hfound is not None
            hs = hfound[0]
            es = min(gs, hs)
        else:
            es = gs
        vpn = v >> es
        tag = (es, vpn)
        l1 = self.l1.get(es)
        if l1 is not None and l1.lookup(vpn, tag):
            self.c["l1_hits"] += 1
            return
        l2 = self.l2.get(es)
        if l2 is not None and l2.lookup(vpn, tag):
            self.c["l2_hits"] += 1
            if l1 is not None:
                l1.fill(vpn, tag)
            return
        self.c["walks"] += 1
        before = self.c["guest_pte_loads"] + self.c["host_pte_loads"]
        self.walk(v, gs, gpa)
        loads = self.c["guest_pte_loads"] + self.c["host_pte_loads"] - before
        self.walk_hist[loads] = self.walk_hist.get(loads, 0) + 1
        if l2 is not None:
            l2.fill(vpn, tag)
        if l1 is not None:
            l1.fill(vpn, tag)

    # ---- the 2D walk (section 4) ---------------------------------------------------------------
    def walk(self, v: int, gs: int, gpa: int) -> None:
        L = self.cfg.guest.levels
        G = leaf(L, gs)
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
        for j in range(k + 1, G + 1):
            if self.virt and not (j == k + 1 and k >= 1):
                table = self.guest.root if j == 1 else self.guest.tables[(j, self.guest.table_id(v, j))]
                self.host_translate(table << 12)
            self.c["guest_pte_loads"] += 1
        if self.virt:
            self.host_translate(gpa)
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
        if self.ntlb is not None and self.ntlb.lookup(p >> hs, (hs, p >> hs)):
            self.c["ntlb_hits"] += 1
            return
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
        for j in range(kh + 1, H):
            psc = self.hpsc.get(j)
            if psc is not None:
                key = p >> (12 + 9 * (Lh - j))
                psc.fill(key, key)
        if self.ntlb is not None:
            self.ntlb.fill(p >> hs, (hs, p >> hs))

    # ---- records (section 1) and counters (section 6) ----------------------------------------------
    def record(self, kind: str, a: int, n: int) -> None:
        if kind == "I":
            self.c["instructions"] += 1
            return
        self.translate(a)
        if (a % 4096) + n > 4096:
            self.translate(a + n - 1)

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
        )
        h = self.host
        c.update(
            host_faults=h.faults if h else 0,
            host_fallbacks=h.fallbacks if h else 0,
            host_pages_4k=h.pages[12] if h else 0,
            host_pages_2m=h.pages[21] if h else 0,
            host_pages_1g=h.pages[30] if h else 0,
            host_pt_pages=h.pt_pages if h else 0,
        )
        if h is not None:
            nr = h.alloc.nr_free()
            for name, order in (("2m", 9), ("1g", 18)):
                c[f"host_unusable_index_{name}"] = unusable_index(nr, order)
                c[f"host_extfrag_index_{name}"] = extfrag_index(nr, order)
        return c


def unusable_index(nr_free: list[int], order: int) -> float:
    free_pages = sum(n << o for o, n in enumerate(nr_free))
    if free_pages == 0:
        return 0.0
    suitable = sum(n << (o - order) for o, n in enumerate(nr_free) if o >= order)
    return round((free_pages - suitable * (1 << order)) / free_pages, 6)


def extfrag_index(nr_free: list[int], order: int) -> float:
    free_pages = sum(n << o for o, n in enumerate(nr_free))
    suitable = sum(n << (o - order) for o, n in enumerate(nr_free) if o >= order)
    blocks = sum(nr_free)
    if suitable > 0:
        return -1.0
    if blocks == 0:
        return 0.0
    return round(1 - (1 + free_pages / (1 << order)) / blocks, 6)


def run_reference(records: Iterable[tuple[str, int, int]], cfg: ModelConfig) -> dict[str, float]:
    """Counters of MODEL.md section 6 for ``records`` = (kind letter, address, size) under ``cfg``."""
    model = Reference(cfg)
    for kind, a, n in records:
        model.record(kind, a, n)
    return model.counters()


def parse_lackey_simple(text: str) -> list[tuple[str, int, int]]:
    """Minimal lackey reader for tests: records only, other lines skipped."""
    out = []
    for line in text.splitlines():
        s = line.strip()
        if not s or s.startswith(("==", "--", "SB")):
            continue
        kind, rest = s.split(None, 1)
        a, n = rest.split(",")
        out.append((kind, int(a, 16), int(n.split()[0])))
    return out
