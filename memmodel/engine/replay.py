"""Replaying a stream of trace batches through one config: state set-up, vectorised pre-processing,
the numba kernel loop, and the final counters.

Memory is bounded by the model state (pages touched, guest memory size), never by trace length: the
trace arrives in batches, each turned into runs of translations of one 4 KiB page with numpy
(filter ``I`` records, split straddling accesses, collapse consecutive repeats) and handed to
:func:`memmodel.engine.kernel.run_chunk`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from memmodel.config.model import ModelConfig
from memmodel.engine import kernel as K
from memmodel.engine.result import COUNTER_NAMES, SERIES_NAMES, SimResult
from memmodel.errors import OutOfMemoryError

MASK64 = (1 << 64) - 1
DEFAULT_WINDOW = 10_000


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The standard splitmix64 output function, vectorised over uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def removed_frames(frames: int, fragmentation: float, seed: int) -> np.ndarray:
    """Frames made unmovable by pre-existing fragmentation (MODEL.md section 2), sorted, int64."""
    if fragmentation <= 0.0:
        return np.zeros(0, dtype=np.int64)
    b = np.arange(frames // 512, dtype=np.uint64)
    h = splitmix64((np.uint64(seed) << np.uint64(32)) ^ b)
    broken = (h >> np.uint64(11)).astype(np.float64) * 2.0**-53 < fragmentation
    offset = splitmix64(h[broken]) % np.uint64(512)
    return (b[broken] * np.uint64(512) + offset).astype(np.int64)


@dataclass
class Buddy:
    """Arrays of one side's buddy allocator (see :mod:`memmodel.engine.kernel`)."""

    bits: np.ndarray
    boff: np.ndarray
    nr_free: np.ndarray
    hint: np.ndarray

    @classmethod
    def build(cls, frames: int, fragmentation: float, seed: int) -> Buddy:
        words = [((frames >> o) + 63) // 64 + 1 for o in range(K.MAX_ORDER + 1)]
        boff = np.zeros(K.MAX_ORDER + 1, dtype=np.int64)
        boff[1:] = np.cumsum(words)[:-1]
        buddy = cls(
            bits=np.zeros(int(sum(words)), dtype=np.uint64),
            boff=boff,
            nr_free=np.zeros(K.MAX_ORDER + 1, dtype=np.int64),
            hint=np.zeros(K.MAX_ORDER + 1, dtype=np.int64),
        )
        K.buddy_init(np.int64(frames), removed_frames(frames, fragmentation, seed), buddy.bits, buddy.boff,
                     buddy.nr_free, buddy.hint)
        return buddy

    def alloc(self, order: int) -> int:
        return int(K.buddy_alloc(self.bits, self.boff, self.nr_free, self.hint, order))


class Replay:
    """The state of one replay of one config; feed it batches, then read :meth:`result`.

    Args:
        cfg: the resolved config.
        window: translations per time-series window (>= 1).
    """

    def __init__(self, cfg: ModelConfig, window: int = DEFAULT_WINDOW) -> None:
        if window < 1:
            raise ValueError("window must be >= 1 translation")
        self.cfg = cfg
        self.window = window
        virt = cfg.virtualized
        P = np.full(K.P_DESC, -1, dtype=np.int64)
        P[K.P_VIRT] = int(virt)
        P[K.P_G_LEVELS] = cfg.guest.levels
        P[K.P_G_PSHIFT] = cfg.guest.page_shift
        P[K.P_G_ZERO] = int(cfg.guest.zeroing)
        P[K.P_H_LEVELS] = cfg.host.levels
        P[K.P_H_PSHIFT] = cfg.host.page_shift
        P[K.P_H_ZERO] = int(cfg.host.zeroing)
        g_frames = cfg.guest.memory >> 12
        P[K.P_G_FRAMES] = g_frames
        P[K.P_WINDOW] = window
        # es = min(guest shift, host shift): always 4K when either side maps only 4 KiB pages
        P[K.P_ONLY_4K] = int(cfg.guest.page_shift == 12 or (virt and cfg.host.page_shift == 12))

        # ---- LRU arrays: TLB levels, PSCs, nested TLB -------------------------------------------
        desc: list[int] = []
        offset = 0

        def add(entries: int, ways: int) -> int:
            nonlocal offset
            sets = entries // ways
            desc.extend((offset, sets, ways, sets - 1 if sets & (sets - 1) == 0 else -1))
            offset += entries
            return len(desc) // 4 - 1

        for base, arrays in ((K.P_L1_IDX, cfg.tlb_l1), (K.P_L2_IDX, cfg.tlb_l2)):
            for arr in arrays:
                idx = add(arr.entries, arr.ways)
                for s in arr.page_shifts:
                    P[base + (s - 12) // 9] = idx
        for psc in cfg.psc_guest:
            P[K.P_GPSC_IDX + psc.level] = add(psc.entries, psc.ways)
        if virt:
            for psc in cfg.psc_host:
                P[K.P_HPSC_IDX + psc.level] = add(psc.entries, psc.ways)
            if cfg.ntlb is not None:
                P[K.P_NTLB_IDX] = add(cfg.ntlb.entries, cfg.ntlb.ways)
        self.tags = np.full(max(offset, 1), -1, dtype=np.int64)
        P = np.concatenate([P, np.array(desc, dtype=np.int64)])

        # ---- host side (arrays per guest-physical 4 KiB frame) --------------------------------------
        self.C = np.zeros(K.C_SIZE, dtype=np.int64)
        if virt:
            self.hbuddy = Buddy.build(cfg.host.memory >> 12, cfg.host.fragmentation, cfg.host.seed)
            self.h_shift = np.zeros(g_frames, dtype=np.uint8)
            self.h_occ2m = np.zeros((g_frames >> 9) + 1, dtype=np.uint8)
            self.h_occ1g = np.zeros((g_frames >> 18) + 1, dtype=np.uint8)
            lh = cfg.host.levels
            sizes = [0] * 6
            for level in range(2, lh + 1):
                sizes[level] = (g_frames >> (9 * (lh - level + 1))) + 1
            offs = np.concatenate([[0], np.cumsum(sizes)])[:6]
            P[K.P_HTBL_OFF : K.P_HTBL_OFF + 6] = offs
            self.htbl = np.zeros(int(sum(sizes)), dtype=np.uint8)
        else:
            self.hbuddy = Buddy(np.zeros(1, np.uint64), np.zeros(19, np.int64), np.zeros(19, np.int64),
                                np.zeros(19, np.int64))
            self.h_shift = np.zeros(1, dtype=np.uint8)
            self.h_occ2m = np.zeros(1, dtype=np.uint8)
            self.h_occ1g = np.zeros(1, dtype=np.uint8)
            self.htbl = np.zeros(1, dtype=np.uint8)
        self.P = P

        # ---- guest side -------------------------------------------------------------------------
        self.gbuddy = Buddy.build(g_frames, cfg.guest.fragmentation, cfg.guest.seed)
        self.slots = np.full((1 << 14, 2), -1, dtype=np.int64)
        self.aux = np.full((1 << 12, 2), -1, dtype=np.int64)
        self.fill = np.zeros(3, dtype=np.int64)
        self._alloc_slots(1 << 13)
        self.series = np.zeros((1024, K.N_SERIES), dtype=np.int64)

        # ---- start-up (MODEL.md section 2), in order ---------------------------------------------
        if virt:
            self._host_alloc_or_fail(0)  # host root table
            self.C[K.C_HOST_PT_PAGES] += 1
            if cfg.host.prealloc:
                self._check(K.host_touch(np.int64(0), np.int64(g_frames), *self._host_args()), "host")
        root = self.gbuddy.alloc(0)
        if root < 0:
            raise OutOfMemoryError(f"{cfg.name}: guest out of memory at start-up (guest root table)")
        self.g_root = root
        self.C[K.C_GUEST_PT_PAGES] += 1
        if virt:
            self._check(K.host_touch(np.int64(root), np.int64(1), *self._host_args()), "host")

    # ---- helpers --------------------------------------------------------------------------------
    def _host_args(self) -> tuple[np.ndarray, ...]:
        hb = self.hbuddy
        return (self.P, self.C, self.h_shift, self.h_occ2m, self.h_occ1g, self.htbl, hb.bits, hb.boff,
                hb.nr_free, hb.hint)

    def _host_alloc_or_fail(self, order: int) -> None:
        if self.hbuddy.alloc(order) < 0:
            raise OutOfMemoryError(f"{self.cfg.name}: host out of memory at start-up")

    def _check(self, ok: bool, side: str) -> None:
        if not ok:
            mem = self.cfg.host.memory if side == "host" else self.cfg.guest.memory
            raise OutOfMemoryError(
                f"config {self.cfg.name!r}: {side} out of memory ({side}.memory = {mem >> 30} GiB, "
                f"fragmentation {getattr(self.cfg, side).fragmentation}); the run stops (MODEL.md section 2)"
            )

    def _alloc_slots(self, n: int) -> None:
        used = int(self.fill[0])
        shifts = np.zeros(n, dtype=np.uint16)
        info = np.zeros(n * K.SLOT_STRIDE, dtype=np.int64)
        if used:
            shifts[:used] = self.slot_shifts[:used]
            info[: used * K.SLOT_STRIDE] = self.slot_info[: used * K.SLOT_STRIDE]
        self.slot_shifts: np.ndarray = shifts
        self.slot_info: np.ndarray = info

    def _grow(self) -> None:
        """Make room for at least one more page and one more batch of snapshots."""
        used_slots, used_aux, used_rows = (int(x) for x in self.fill)
        if 2 * (used_slots + 2) >= self.slots.shape[0]:
            bigger = np.full((self.slots.shape[0] * 2, 2), -1, dtype=np.int64)
            K.ht_rehash(self.slots, bigger)
            self.slots = bigger
        if used_slots + 2 >= self.slot_shifts.shape[0]:
            self._alloc_slots(self.slot_shifts.shape[0] * 2)
        if 2 * (used_aux + 32) >= self.aux.shape[0]:
            bigger = np.full((self.aux.shape[0] * 4, 2), -1, dtype=np.int64)
            K.ht_rehash(self.aux, bigger)
            self.aux = bigger
        rows_needed = used_rows + self._max_run // self.window + 4
        if rows_needed >= self.series.shape[0]:
            bigger = np.zeros((max(2 * self.series.shape[0], 2 * rows_needed), K.N_SERIES), dtype=np.int64)
            bigger[:used_rows] = self.series[:used_rows]
            self.series = bigger

    # ---- feeding ------------------------------------------------------------------------------------
    def feed_runs(self, runs_p4: np.ndarray, runs_n: np.ndarray) -> None:
        """Replay runs of translations (4 KiB virtual page numbers and repeat counts, in trace order)."""
        self._max_run = int(runs_n.max()) if runs_n.size else 0
        pos: int = 0
        n = runs_p4.shape[0]
        hb, gb = self.hbuddy, self.gbuddy
        while pos < n:
            status, pos = K.run_chunk(
                runs_p4, runs_n, np.int64(pos), self.P, self.C, self.tags, self.slots,
                self.aux, self.fill, self.slot_shifts, self.slot_info, np.int64(self.g_root),
                gb.bits, gb.boff, gb.nr_free, gb.hint, self.h_shift, self.h_occ2m, self.h_occ1g, self.htbl,
                hb.bits, hb.boff, hb.nr_free, hb.hint, self.series,
            )
            if status == K.STATUS_GROW:
                self._grow()
            elif status == K.STATUS_OOM_GUEST:
                self._check(False, "guest")
            elif status == K.STATUS_OOM_HOST:
                self._check(False, "host")

    def feed(self, kind: np.ndarray, gva: np.ndarray, size: np.ndarray) -> None:
        """Replay a batch of trace records (MODEL.md section 1).

        Args:
            kind: uint8 record kinds (0 = I, 1 = L, 2 = S, 3 = M).
            gva: uint64 virtual addresses (bytes).
            size: access sizes in bytes.
        """
        p4, counts, instructions = translations_to_runs(kind, gva, size)
        self.feed_translations(p4, counts, instructions)

    def feed_translations(self, runs_p4: np.ndarray, runs_n: np.ndarray, instructions: int) -> None:
        """Replay the output of :func:`translations_to_runs` (shared by several replays of one batch)."""
        self.C[K.C_INSTRUCTIONS] += instructions
        self.feed_runs(runs_p4, runs_n)

    def effective_shifts(self, runs_p4: np.ndarray) -> np.ndarray:
        """The TLB entry shift ``es = min(guest shift, host shift)`` of each given 4 KiB virtual page.

        A page's mapping never changes once made (v1 never frees), so after a replay this is the page
        size every translation of that page used; 0 for pages this replay never translated.
        """
        return K.lookup_shifts(np.asarray(runs_p4, dtype=np.int64), self.slots, self.slot_shifts)

    # ---- results ------------------------------------------------------------------------------------
    def result(self) -> SimResult:
        """The counters of MODEL.md section 6 (exact), the walk histogram and the time series."""
        C = self.C
        c: dict[str, Any] = {
            "instructions": int(C[K.C_INSTRUCTIONS]),
            "accesses": int(C[K.C_ACCESSES]),
            "l1_hits": int(C[K.C_L1_HITS]),
            "l2_hits": int(C[K.C_L2_HITS]),
            "walks": int(C[K.C_WALKS]),
            "guest_pte_loads": int(C[K.C_GUEST_PTE_LOADS]),
            "host_pte_loads": int(C[K.C_HOST_PTE_LOADS]),
            "walk_loads": int(C[K.C_GUEST_PTE_LOADS] + C[K.C_HOST_PTE_LOADS]),
            "psc_guest_hits": int(C[K.C_PSC_GUEST_HITS]),
            "ntlb_hits": int(C[K.C_NTLB_HITS]),
            "ntlb_misses": int(C[K.C_NTLB_MISSES]),
            "guest_faults": int(C[K.C_GUEST_FAULTS]),
            "guest_fallbacks": int(C[K.C_GUEST_FALLBACKS]),
            "guest_pages_4k": int(C[K.C_GUEST_PAGES_4K]),
            "guest_pages_2m": int(C[K.C_GUEST_PAGES_4K + 1]),
            "guest_pages_1g": int(C[K.C_GUEST_PAGES_4K + 2]),
            "guest_pt_pages": int(C[K.C_GUEST_PT_PAGES]),
            "guest_zeroed_bytes": int(C[K.C_GUEST_ZEROED_BYTES]),
            "host_faults": int(C[K.C_HOST_FAULTS]),
            "host_fallbacks": int(C[K.C_HOST_FALLBACKS]),
            "host_pages_4k": int(C[K.C_HOST_PAGES_4K]),
            "host_pages_2m": int(C[K.C_HOST_PAGES_4K + 1]),
            "host_pages_1g": int(C[K.C_HOST_PAGES_4K + 2]),
            "host_pt_pages": int(C[K.C_HOST_PT_PAGES]),
            "host_backed_bytes": int(C[K.C_HOST_BACKED_BYTES]),
            "host_zeroed_bytes": int(C[K.C_HOST_ZEROED_BYTES]),
            "touched_bytes": int(C[K.C_TOUCHED_PAGES]) * 4096,
        }
        if self.cfg.virtualized:
            nr = self.hbuddy.nr_free
            c["host_unusable_index_2m"] = unusable_index(nr, 9)
            c["host_unusable_index_1g"] = unusable_index(nr, 18)
            c["host_extfrag_index_2m"] = extfrag_index(nr, 9)
            c["host_extfrag_index_1g"] = extfrag_index(nr, 18)
        ordered: dict[str, Any] = {k: c[k] for k in COUNTER_NAMES if k in c}
        rows = int(self.fill[2])
        series = {name: self.series[:rows, i].copy() for i, name in enumerate(SERIES_NAMES)}
        return SimResult(
            config_name=self.cfg.name,
            counters=ordered,
            walk_hist=self.C[K.C_HIST :].copy(),
            series=series,
            window=self.window,
            host_nr_free=(self.hbuddy.nr_free if self.cfg.virtualized else self.gbuddy.nr_free).copy(),
            guest_nr_free=self.gbuddy.nr_free.copy(),
        )


def translations_to_runs(kind: np.ndarray, gva: np.ndarray, size: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Records -> runs of translations of one 4 KiB page (MODEL.md section 1).

    ``I`` records only count; ``L``/``S``/``M`` each translate ``gva``; an access straddling a 4 KiB
    boundary translates ``gva + size - 1`` right after. Consecutive translations of the same 4 KiB
    page are collapsed into one run with a count. One sequential numba pass
    (:func:`memmodel.engine.kernel.records_to_runs`): run-length encoding interleaved with straddle
    splitting is a scan, and the fused pass is several times faster than the eight numpy passes it
    replaces.

    Returns:
        (4 KiB page numbers as int64, repeat counts as int64, number of ``I`` records).
    """
    kind = np.ascontiguousarray(kind, dtype=np.uint8)
    gva = np.ascontiguousarray(gva, dtype=np.uint64)
    size = np.ascontiguousarray(size, dtype=np.uint16)
    n = kind.shape[0]
    pages = np.empty(2 * n, dtype=np.int64)  # a straddle adds at most one translation per record
    counts = np.empty(2 * n, dtype=np.int64)
    n_runs, instructions = K.records_to_runs(kind, gva, size, pages, counts)
    return pages[:n_runs], counts[:n_runs], int(instructions)


def _suitable(nr: np.ndarray, order: int) -> int:
    return sum(int(nr[o]) << (o - order) for o in range(order, len(nr)))


def unusable_index(nr_free: np.ndarray, order: int) -> float:
    """Linux's unusable free space index at ``order`` (MODEL.md section 6), double precision, 6 decimals."""
    free_pages = sum(int(n) << o for o, n in enumerate(nr_free))
    if free_pages == 0:
        return 0.0
    return round((free_pages - _suitable(nr_free, order) * (1 << order)) / free_pages, 6)


def extfrag_index(nr_free: np.ndarray, order: int) -> float:
    """Linux's fragmentation index at ``order`` (MODEL.md section 6): -1 if a block is suitable."""
    if _suitable(nr_free, order) > 0:
        return -1.0
    blocks = int(sum(int(n) for n in nr_free))
    if blocks == 0:
        return 0.0
    free_pages = sum(int(n) << o for o, n in enumerate(nr_free))
    return round(1 - (1 + free_pages / (1 << order)) / blocks, 6)


def replay(batches: Iterable[Mapping[str, np.ndarray]], cfg: ModelConfig, window: int = DEFAULT_WINDOW) -> SimResult:
    """Replay trace batches (dicts with ``kind``, ``gva``, ``size`` arrays) through ``cfg``."""
    r = Replay(cfg, window)
    for batch in batches:
        r.feed(batch["kind"], batch["gva"], batch["size"])
    return r.result()
