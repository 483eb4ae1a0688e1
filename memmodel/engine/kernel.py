"""numba kernels of the canonical model (MODEL.md sections 2-4). No I/O, no Python objects.

The state of a run lives in flat numpy arrays (built by :mod:`memmodel.engine.state`) so that the
kernels can be compiled once and cached (``cache=True``):

* **Parameters** ``P`` (int64): the config as numbers, then one descriptor per LRU array.
* **Counters** ``C`` (int64): MODEL.md section 6 integers, then the walk-length histogram.
* **LRU arrays** (every TLB array, PSC and the nested TLB) share one ``tags`` int64 array. Array ``i``
  occupies ``tags[off : off + sets * ways]`` with ``off, sets, ways, mask = P[P_DESC + 4i : P_DESC + 4i + 4]``
  (mask = ``sets - 1`` when ``sets`` is a power of two, else -1); each set
  is a row of ``ways`` tags ordered most-recent first, ``-1`` marking an empty way. A hit moves the
  tag to the front; a fill shifts the row right (dropping the least recent) and writes the front.
* **Buddy allocators**: one bitmap per order (bit ``i`` of order ``o`` = the block of frames
  ``[i << o, (i+1) << o)`` is free), with ``nr_free[o]`` and ``hint[o]``, a word index below which
  order ``o`` has no free block (so the lowest free block is found by scanning forward from it).
* **Guest mappings** (virtual side, unbounded address space) in open-addressing hash tables with
  int64 keys (``-1`` = empty, linear probing): ``slots`` maps a 4 KiB virtual page number to a slot
  holding everything that page's translations need: ``slot_shifts`` (uint16, read on every translation:
  effective TLB shift ``es`` in the low byte, guest page shift in the high byte) and, in ``slot_info``
  (read by nested walks only), its guest-physical frame and the guest-physical frames of its guest
  page tables; ``aux`` holds the
  guest's 1G/2M mappings, region occupancy and table frames under tagged keys.
* **Host backing** (bounded by guest memory) in per-4-KiB-guest-frame arrays.

Every kernel uses numpy's error model (no ZeroDivisionError checks: every divisor, a set count or
the window, is >= 1 by construction), which keeps exception paths out of the inlined hot loops.
Hot paths pass few arrays: a call that LLVM does not inline costs a few nanoseconds per array
argument, which is why parameters, descriptors, counters and histogram share arrays.

A kernel call processes runs of translations of one 4 KiB page (``runs_p4``, ``runs_n``) from
``start`` and returns ``(status, position)``: ``STATUS_DONE``, or a request to grow a table or an
out-of-memory stop at ``position``. State is never left half-updated by a grow request, so the
driver grows the arrays and calls again from ``position``.

Exactness of run collapsing: after the first translation of a 4 KiB page, its TLB entry is the most
recent in the L1 array that holds its size (or in the L2 array when no L1 array holds it), so each
repeat is a hit that changes no LRU order; only when no array holds the size does every repeat walk,
and then repeats are simulated one by one.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# ---- counter indices (the order of memmodel.engine.result.COUNTER_NAMES' integer part) ------------
C_INSTRUCTIONS = 0
C_ACCESSES = 1
C_L1_HITS = 2
C_L2_HITS = 3
C_WALKS = 4
C_GUEST_PTE_LOADS = 5
C_HOST_PTE_LOADS = 6
C_PSC_GUEST_HITS = 7
C_NTLB_HITS = 8
C_NTLB_MISSES = 9
C_GUEST_FAULTS = 10
C_GUEST_FALLBACKS = 11
C_GUEST_PAGES_4K = 12  # +1 for 2M, +2 for 1G
C_GUEST_PT_PAGES = 15
C_GUEST_ZEROED_BYTES = 16
C_HOST_FAULTS = 17
C_HOST_FALLBACKS = 18
C_HOST_PAGES_4K = 19  # +1 for 2M, +2 for 1G
C_HOST_PT_PAGES = 22
C_HOST_BACKED_BYTES = 23
C_HOST_ZEROED_BYTES = 24
C_TOUCHED_PAGES = 25  # distinct 4 KiB virtual pages translated
N_COUNTERS = 26
C_HIST = 32  # C[C_HIST + n] = walks that cost exactly n page-table loads (n < 64)
C_SIZE = C_HIST + 64

# ---- parameter indices ----------------------------------------------------------------------
P_VIRT = 0
P_G_LEVELS = 1
P_G_PSHIFT = 2
P_G_ZERO = 3
P_H_LEVELS = 4
P_H_PSHIFT = 5
P_H_ZERO = 6
P_G_FRAMES = 7  # guest memory in 4 KiB frames
P_L1_IDX = 8  # +code (0: 4K, 1: 2M, 2: 1G) -> LRU array index or -1
P_L2_IDX = 11
P_GPSC_IDX = 14  # +level (1..5) -> LRU array index or -1
P_HPSC_IDX = 20
P_NTLB_IDX = 26
P_WINDOW = 27  # translations per time-series window
P_HTBL_OFF = 28  # +level (0..5) -> offset of the host table-presence array of that level
P_ONLY_4K = 34  # 1 when every TLB entry is 4 KiB (guest or host page size 4K): enables the fast path
P_DESC = 35  # LRU array i is described by P[P_DESC + 4i : P_DESC + 4i + 4] = offset, sets, ways, mask

# ---- time-series columns ----------------------------------------------------------------------
S_TRANSLATIONS = 0
S_L1_HITS = 1
S_L2_HITS = 2
S_WALKS = 3
S_WALK_LOADS = 4
S_GUEST_FAULTS = 5
S_HOST_FAULTS = 6
S_HOST_BACKED = 7
S_GUEST_ZEROED = 8
S_HOST_ZEROED = 9
N_SERIES = 10

# ---- aux hash-table key tags --------------------------------------------------------------------
TAG_MAP1G = 1  # key: gva >> 30 -> guest frame of the 1G page
TAG_MAP2M = 2  # key: gva >> 21 -> guest frame of the 2M page
TAG_OCC1G = 3  # key: gva >> 30 -> 1 when the 1 GiB region holds a smaller mapping
TAG_OCC2M = 4  # key: gva >> 21 -> 1 when the 2 MiB region holds a 4K mapping
TAG_TABLE = 8  # +level: key: table id -> guest frame of that guest page table

# ---- kernel status --------------------------------------------------------------------------
STATUS_DONE = 0
STATUS_GROW = 1  # a hash table, the slot arrays or the series buffer needs more room
STATUS_OOM_GUEST = 2
STATUS_OOM_HOST = 3

SLOT_STRIDE = 8  # per slot in slot_info: [0] guest frame, [level] guest table frame (levels 2..5)
SI_GFRAME = 0
MAX_ORDER = 18
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_DEBRUIJN = np.uint64(0x03F79D71B4CB0A89)


# ================================ records -> page runs ==============================================
@njit(cache=True, error_model="numpy")
def records_to_runs(kind: np.ndarray, gva: np.ndarray, size: np.ndarray, pages: np.ndarray,
                    counts: np.ndarray) -> tuple[int, int]:
    """MODEL.md section 1 in one pass: translations of data records, as runs of one 4 KiB page.

    Writes run ``r`` as (``pages[r]``, ``counts[r]``); both arrays hold ``2 * len(kind)`` entries.
    Addresses wrap modulo 2^64 (docs/model.md). Returns (runs written, ``I`` records).
    """
    n_runs = 0
    instructions = 0
    prev = np.int64(-1)
    for i in range(kind.shape[0]):
        if kind[i] == 0:
            instructions += 1
            continue
        a = gva[i]
        n = np.uint64(size[i])
        # a straddling access translates its last byte right after its first
        straddles = (a & np.uint64(4095)) + n > np.uint64(4096)
        for t in range(2 if straddles else 1):
            page = np.int64((a if t == 0 else a + n - np.uint64(1)) >> np.uint64(12))
            if page == prev:
                counts[n_runs - 1] += 1
            else:
                pages[n_runs] = page
                counts[n_runs] = 1
                n_runs += 1
                prev = page
    return n_runs, instructions


# ================================ hashing ==========================================================
@njit(cache=True, error_model="numpy", inline="always")
def _slot_of(key: int, mask: int) -> int:
    h = np.uint64(key) * _GOLDEN
    return np.int64(h >> np.uint64(32)) & mask  # type: ignore[return-value]


@njit(cache=True, error_model="numpy", inline="always")
def ht_get(kv: np.ndarray, key: int) -> int:
    """Value of ``key`` in an open-addressing table ``kv`` (rows of [key, value]; key -1 = empty), or -1.

    Key and value share a 16-byte row, so a lookup touches one cache line.
    """
    mask = kv.shape[0] - 1
    i = _slot_of(key, mask)
    while True:
        k = kv[i, 0]
        if k == key:
            return kv[i, 1]
        if k == -1:
            return -1
        i = (i + 1) & mask


@njit(cache=True, error_model="numpy")
def ht_put(kv: np.ndarray, key: int, val: int) -> bool:
    """Insert or overwrite; returns True when the key is new."""
    mask = kv.shape[0] - 1
    i = _slot_of(key, mask)
    while True:
        k = kv[i, 0]
        if k == key:
            kv[i, 1] = val
            return False
        if k == -1:
            kv[i, 0] = key
            kv[i, 1] = val
            return True
        i = (i + 1) & mask


@njit(cache=True, error_model="numpy")
def ht_rehash(kv: np.ndarray, new_kv: np.ndarray) -> None:
    """Copy every entry of one table into a larger (empty) one."""
    for i in range(kv.shape[0]):
        if kv[i, 0] != -1:
            ht_put(new_kv, kv[i, 0], kv[i, 1])


# ================================ LRU arrays =======================================================
@njit(cache=True, error_model="numpy", inline="always")
def _find_and_promote(tags: np.ndarray, base: int, ways: int, tag: int) -> bool:
    # Compare every way without an early exit: the loop vectorizes and has no data-dependent
    # branch (2.5x faster than stopping at the match on random traces). Tags are unique in a set.
    hit = -1
    for w in range(ways):
        if tags[base + w] == tag:
            hit = w
    if hit < 0:
        return False
    for x in range(hit, 0, -1):
        tags[base + x] = tags[base + x - 1]
    tags[base] = tag
    return True


@njit(cache=True, error_model="numpy", inline="always")
def _push_front(tags: np.ndarray, base: int, ways: int, tag: int) -> None:
    for x in range(ways - 1, 0, -1):
        tags[base + x] = tags[base + x - 1]
    tags[base] = tag


@njit(cache=True, error_model="numpy", inline="always")
def _set_base(P: np.ndarray, arr: int, index: int) -> tuple[int, int]:
    d = P_DESC + 4 * arr
    ways = P[d + 2]
    mask = P[d + 3]
    # a power-of-two set count avoids a 64-bit division on every lookup
    return P[d] + ((index & mask) if mask >= 0 else (index % P[d + 1])) * ways, ways


@njit(cache=True, error_model="numpy", inline="always")
def lru_lookup(tags: np.ndarray, P: np.ndarray, arr: int, index: int, tag: int) -> bool:
    """Look ``tag`` up in its set (``index mod sets``); a hit becomes most recent.

    Common associativities get a loop with a constant trip count, which LLVM unrolls (about 2x
    faster than a loop bounded by a runtime value); empty ways hold -1, which never matches a tag.
    """
    base, ways = _set_base(P, arr, index)
    if ways == 4:
        return _find_and_promote(tags, base, 4, tag)
    if ways == 8:
        return _find_and_promote(tags, base, 8, tag)
    if ways == 12:
        return _find_and_promote(tags, base, 12, tag)
    if ways == 16:
        return _find_and_promote(tags, base, 16, tag)
    return _find_and_promote(tags, base, ways, tag)


@njit(cache=True, error_model="numpy", inline="always")
def lru_fill(tags: np.ndarray, P: np.ndarray, arr: int, index: int, tag: int) -> None:
    """Insert ``tag`` (known absent) as most recent, evicting the least recent of a full set."""
    base, ways = _set_base(P, arr, index)
    if ways == 4:
        _push_front(tags, base, 4, tag)
    elif ways == 8:
        _push_front(tags, base, 8, tag)
    elif ways == 12:
        _push_front(tags, base, 12, tag)
    elif ways == 16:
        _push_front(tags, base, 16, tag)
    else:
        _push_front(tags, base, ways, tag)


# ================================ buddy allocator ==================================================
@njit(cache=True, error_model="numpy")
def _ctz(x: int) -> int:
    """Index of the lowest set bit of a non-zero word (de Bruijn multiplication)."""
    low = x & (~x + np.uint64(1))
    return _DEBRUIJN_TABLE[np.int64((low * _DEBRUIJN) >> np.uint64(58))]


_DEBRUIJN_TABLE = np.zeros(64, dtype=np.int64)
for _i in range(64):
    _DEBRUIJN_TABLE[int(((1 << _i) * 0x03F79D71B4CB0A89 % (1 << 64)) >> 58)] = _i


@njit(cache=True, error_model="numpy")
def buddy_insert(bits: np.ndarray, boff: np.ndarray, nr_free: np.ndarray, hint: np.ndarray, order: int,
                 block: int) -> None:
    """Mark block number ``block`` (frames ``block << order``...) of ``order`` free."""
    w = block >> 6
    bits[boff[order] + w] |= np.uint64(1) << np.uint64(block & 63)
    nr_free[order] += 1
    if w < hint[order]:
        hint[order] = w


@njit(cache=True, error_model="numpy")
def buddy_can_alloc(nr_free: np.ndarray, order: int) -> bool:
    """Whether a free block of ``order`` or larger exists."""
    for o in range(order, MAX_ORDER + 1):
        if nr_free[o] > 0:
            return True
    return False


@njit(cache=True, error_model="numpy")
def buddy_alloc(bits: np.ndarray, boff: np.ndarray, nr_free: np.ndarray, hint: np.ndarray,
                order: int) -> int:
    """Allocate ``2**order`` frames: the lowest block of the smallest sufficient order, split.

    Returns the first frame, or -1 when no block of ``order`` or larger is free.
    """
    for o in range(order, MAX_ORDER + 1):
        if nr_free[o] == 0:
            continue
        w = hint[o]
        base = boff[o]
        while bits[base + w] == 0:
            w += 1
        hint[o] = w
        word = bits[base + w]
        b = _ctz(word)
        bits[base + w] = word & ~(np.uint64(1) << np.uint64(b))
        nr_free[o] -= 1
        frame = ((w << 6) + b) << o
        for k in range(order, o):
            buddy_insert(bits, boff, nr_free, hint, k, (frame + (np.int64(1) << k)) >> k)
        return frame
    return -1


@njit(cache=True, error_model="numpy")
def buddy_init(frames: int, removed: np.ndarray, bits: np.ndarray, boff: np.ndarray,
               nr_free: np.ndarray, hint: np.ndarray) -> None:
    """Free space = the canonical decomposition of ``[0, frames)`` minus the sorted ``removed`` frames."""
    stack_start = np.empty(64, dtype=np.int64)
    stack_order = np.empty(64, dtype=np.int64)
    for o in range(MAX_ORDER + 1):
        hint[o] = 1 << 62
    for top in range(0, frames, 1 << MAX_ORDER):
        sp = 0
        stack_start[0] = top
        stack_order[0] = MAX_ORDER
        sp = 1
        while sp > 0:
            sp -= 1
            s = stack_start[sp]
            o = stack_order[sp]
            lo = np.searchsorted(removed, s)
            hi = np.searchsorted(removed, s + (np.int64(1) << o))
            if lo == hi:
                buddy_insert(bits, boff, nr_free, hint, o, s >> o)
            elif o > 0:
                half = np.int64(1) << (o - 1)
                stack_start[sp] = s + half
                stack_order[sp] = o - 1
                stack_start[sp + 1] = s
                stack_order[sp + 1] = o - 1
                sp += 2
    for o in range(MAX_ORDER + 1):
        if hint[o] == 1 << 62:
            hint[o] = 0


# ================================ paging-structure caches ==========================================
@njit(cache=True, error_model="numpy", inline="always")
def psc_deepest_hit(tags: np.ndarray, P: np.ndarray, idx_base: int, leaf: int, levels: int, page: int) -> int:
    """Deepest PSC level ``k`` in ``leaf-1 .. 1`` that hits for 4 KiB page number ``page`` (0 = none).

    The level-``j`` PSC of a side is ``P[idx_base + j]`` (-1 = absent), keyed by
    ``address >> (12 + 9 (levels - j))``; the hit is made most recent and shallower levels are not
    looked up (MODEL.md section 4).
    """
    for j in range(leaf - 1, 0, -1):
        arr = P[idx_base + j]
        if arr >= 0:
            key = page >> (9 * (levels - j))
            if lru_lookup(tags, P, arr, key, key):
                return j
    return 0


@njit(cache=True, error_model="numpy", inline="always")
def psc_fill(tags: np.ndarray, P: np.ndarray, idx_base: int, k: int, leaf: int, levels: int, page: int) -> None:
    """Fill the PSCs of levels ``k+1 .. leaf-1`` (those that exist) for 4 KiB page number ``page``."""
    for j in range(k + 1, leaf):
        arr = P[idx_base + j]
        if arr >= 0:
            key = page >> (9 * (levels - j))
            lru_fill(tags, P, arr, key, key)


# ================================ host side ========================================================
@njit(cache=True, error_model="numpy")
def choose_shift(pshift: int, free_1g: bool, free_2m: bool, nr_free: np.ndarray) -> int:
    """The page shift of a fault (MODEL.md section 2, the same rule for guest and host faults).

    The largest of 30, 21, 12 that is not above the side's ``pshift``, whose aligned region around
    the faulting address holds no mapping (``free_1g``/``free_2m``; a 4 KiB region is free since the
    address faults), and for which the allocator has a block of order ``s - 12`` or larger.
    Returns 0 when none fits (out of memory).
    """
    for cand in (30, 21, 12):
        if cand > pshift or (cand == 30 and not free_1g) or (cand == 21 and not free_2m):
            continue
        if buddy_can_alloc(nr_free, cand - 12):
            return cand
    return 0


@njit(cache=True, error_model="numpy")
def host_fault(frame: int, P: np.ndarray, C: np.ndarray, h_shift: np.ndarray, h_occ2m: np.ndarray,
               h_occ1g: np.ndarray, htbl: np.ndarray, hbits: np.ndarray, hboff: np.ndarray,
               hnr: np.ndarray, hhint: np.ndarray) -> bool:
    """Back guest-physical frame ``frame`` (MODEL.md section 2, host fault). False = host out of memory."""
    levels = P[P_H_LEVELS]
    pshift = P[P_H_PSHIFT]
    s = choose_shift(pshift, h_occ1g[frame >> 18] == 0, h_occ2m[frame >> 9] == 0, hnr)
    if s == 0:
        return False
    leaf = levels - (s - 12) // 9
    for level in range(2, leaf + 1):
        idx = P[P_HTBL_OFF + level] + (frame >> (9 * (levels - level + 1)))
        if htbl[idx] == 0:
            if buddy_alloc(hbits, hboff, hnr, hhint, 0) < 0:
                return False
            htbl[idx] = 1
            C[C_HOST_PT_PAGES] += 1
    if buddy_alloc(hbits, hboff, hnr, hhint, s - 12) < 0:
        return False
    span = np.int64(1) << (s - 12)
    first = (frame >> (s - 12)) << (s - 12)
    for f in range(first, first + span):
        h_shift[f] = s
    if s == 30:
        for r in range(first >> 9, (first >> 9) + 512):
            h_occ2m[r] = 1
    else:
        h_occ2m[frame >> 9] = 1
    h_occ1g[frame >> 18] = 1
    C[C_HOST_FAULTS] += 1
    C[C_HOST_PAGES_4K + (s - 12) // 9] += 1
    if s < pshift:
        C[C_HOST_FALLBACKS] += 1
    C[C_HOST_BACKED_BYTES] += np.int64(1) << s
    if P[P_H_ZERO] != 0:
        C[C_HOST_ZEROED_BYTES] += np.int64(1) << s
    return True


@njit(cache=True, error_model="numpy")
def host_touch(first: int, nframes: int, P: np.ndarray, C: np.ndarray, h_shift: np.ndarray,
               h_occ2m: np.ndarray, h_occ1g: np.ndarray, htbl: np.ndarray, hbits: np.ndarray,
               hboff: np.ndarray, hnr: np.ndarray, hhint: np.ndarray) -> bool:
    """Host-touch guest frames ``[first, first + nframes)`` in ascending order. False = out of memory."""
    f = first
    end = first + nframes
    while f < end:
        if h_shift[f] == 0:
            if not host_fault(f, P, C, h_shift, h_occ2m, h_occ1g, htbl, hbits, hboff, hnr, hhint):
                return False
        # skip to the end of the host page that backs f
        sub = h_shift[f] - 12
        f = ((f >> sub) + 1) << sub
    return True


@njit(cache=True, error_model="numpy")
def host_translate(frame: int, P: np.ndarray, C: np.ndarray, h_shift: np.ndarray, tags: np.ndarray) -> int:
    """Host-translate guest-physical frame ``frame`` (MODEL.md section 4); returns host PTE loads."""
    hs = np.int64(h_shift[frame])
    code = (hs - 12) // 9
    pfn = frame >> (hs - 12)  # = gpa >> hs
    levels = P[P_H_LEVELS]
    H = levels - code
    ntlb = P[P_NTLB_IDX]
    tag = (pfn << 2) | code
    if ntlb >= 0 and lru_lookup(tags, P, ntlb, pfn, tag):
        C[C_NTLB_HITS] += 1
        return 0
    C[C_NTLB_MISSES] += 1
    kh = psc_deepest_hit(tags, P, P_HPSC_IDX, H, levels, frame)
    loads = H - kh
    C[C_HOST_PTE_LOADS] += loads
    psc_fill(tags, P, P_HPSC_IDX, kh, H, levels, frame)
    if ntlb >= 0:
        lru_fill(tags, P, ntlb, pfn, tag)
    return loads


# ================================ one translation ==================================================
# ================================ first touch of a 4 KiB page ======================================
@njit(cache=True, error_model="numpy")
def new_page(p4: int, slot: int, P: np.ndarray, C: np.ndarray, aux: np.ndarray,
             fill: np.ndarray, slot_shifts: np.ndarray, slot_info: np.ndarray,
             gbits: np.ndarray, gboff: np.ndarray, gnr: np.ndarray, ghint: np.ndarray,
             h_shift: np.ndarray, h_occ2m: np.ndarray, h_occ1g: np.ndarray, htbl: np.ndarray,
             hbits: np.ndarray, hboff: np.ndarray, hnr: np.ndarray, hhint: np.ndarray) -> int:
    """Fill ``slot`` for virtual page ``p4``: guest fault if unmapped, host fault if unbacked.

    Every new ``aux`` entry is counted in ``fill[1]``. Returns STATUS_DONE or an out-of-memory status.
    """
    levels = P[P_G_LEVELS]
    virt = P[P_VIRT] != 0
    gs = 0
    gframe = np.int64(-1)
    m = ht_get(aux, ((p4 >> 18) << 4) | TAG_MAP1G)
    if m >= 0:
        gs = 30
        gframe = m + (p4 & ((1 << 18) - 1))
    else:
        m = ht_get(aux, ((p4 >> 9) << 4) | TAG_MAP2M)
        if m >= 0:
            gs = 21
            gframe = m + (p4 & 511)
    if gs == 0:
        # ---- guest fault (MODEL.md section 2) ----
        pshift = P[P_G_PSHIFT]
        gs = choose_shift(pshift, ht_get(aux, ((p4 >> 18) << 4) | TAG_OCC1G) < 0,
                          ht_get(aux, ((p4 >> 9) << 4) | TAG_OCC2M) < 0, gnr)
        if gs == 0:
            return STATUS_OOM_GUEST
        leaf = levels - (gs - 12) // 9
        for level in range(2, leaf + 1):
            key = ((p4 >> (9 * (levels - level + 1))) << 4) | (TAG_TABLE + level)
            if ht_get(aux, key) < 0:
                t = buddy_alloc(gbits, gboff, gnr, ghint, 0)
                if t < 0:
                    return STATUS_OOM_GUEST
                fill[1] += ht_put(aux, key, t)
                C[C_GUEST_PT_PAGES] += 1
                if virt and not host_touch(t, 1, P, C, h_shift, h_occ2m, h_occ1g, htbl, hbits, hboff, hnr,
                                           hhint):
                    return STATUS_OOM_HOST
        data = buddy_alloc(gbits, gboff, gnr, ghint, gs - 12)
        if data < 0:
            return STATUS_OOM_GUEST
        if gs == 30:
            fill[1] += ht_put(aux, ((p4 >> 18) << 4) | TAG_MAP1G, data)
        elif gs == 21:
            fill[1] += ht_put(aux, ((p4 >> 9) << 4) | TAG_MAP2M, data)
            fill[1] += ht_put(aux, ((p4 >> 18) << 4) | TAG_OCC1G, 1)
        else:
            fill[1] += ht_put(aux, ((p4 >> 9) << 4) | TAG_OCC2M, 1)
            fill[1] += ht_put(aux, ((p4 >> 18) << 4) | TAG_OCC1G, 1)
        C[C_GUEST_FAULTS] += 1
        C[C_GUEST_PAGES_4K + (gs - 12) // 9] += 1
        if gs < pshift:
            C[C_GUEST_FALLBACKS] += 1
        if P[P_G_ZERO] != 0:
            C[C_GUEST_ZEROED_BYTES] += np.int64(1) << gs
            if virt and not host_touch(data, np.int64(1) << (gs - 12), P, C, h_shift, h_occ2m, h_occ1g, htbl,
                                       hbits, hboff, hnr, hhint):
                return STATUS_OOM_HOST
        gframe = data + (p4 & ((np.int64(1) << (gs - 12)) - 1))
    # the page's guest tables (all exist once the page is mapped)
    leaf = levels - (gs - 12) // 9
    for level in range(2, leaf + 1):
        key = ((p4 >> (9 * (levels - level + 1))) << 4) | (TAG_TABLE + level)
        slot_info[slot * SLOT_STRIDE + level] = ht_get(aux, key)
    es = gs
    if virt:
        if h_shift[gframe] == 0 and not host_fault(gframe, P, C, h_shift, h_occ2m, h_occ1g, htbl, hbits,
                                                   hboff, hnr, hhint):
            return STATUS_OOM_HOST
        hs = np.int64(h_shift[gframe])
        if hs < es:
            es = hs  # type: ignore[assignment]
    slot_info[slot * SLOT_STRIDE + SI_GFRAME] = gframe
    slot_shifts[slot] = es | (gs << 8)
    C[C_TOUCHED_PAGES] += 1
    return STATUS_DONE


# ================================ the chunk loop ===================================================
@njit(cache=True, error_model="numpy")
def _snapshot(series: np.ndarray, row: int, at: int, C: np.ndarray, hit_counter: int, extra: int) -> None:
    """Row ``row``: cumulative values after ``at`` translations (``extra`` pending hits on ``hit_counter``)."""
    series[row, S_TRANSLATIONS] = at
    series[row, S_L1_HITS] = C[C_L1_HITS] + (extra if hit_counter == C_L1_HITS else 0)
    series[row, S_L2_HITS] = C[C_L2_HITS] + (extra if hit_counter == C_L2_HITS else 0)
    series[row, S_WALKS] = C[C_WALKS]
    series[row, S_WALK_LOADS] = C[C_GUEST_PTE_LOADS] + C[C_HOST_PTE_LOADS]
    series[row, S_GUEST_FAULTS] = C[C_GUEST_FAULTS]
    series[row, S_HOST_FAULTS] = C[C_HOST_FAULTS]
    series[row, S_HOST_BACKED] = C[C_HOST_BACKED_BYTES]
    series[row, S_GUEST_ZEROED] = C[C_GUEST_ZEROED_BYTES]
    series[row, S_HOST_ZEROED] = C[C_HOST_ZEROED_BYTES]


@njit(cache=True, error_model="numpy")
def run_chunk(runs_p4: np.ndarray, runs_n: np.ndarray, start: int, P: np.ndarray, C: np.ndarray,
              tags: np.ndarray, slots: np.ndarray, aux: np.ndarray,
              fill: np.ndarray, slot_shifts: np.ndarray, slot_info: np.ndarray, g_root: int,
              gbits: np.ndarray, gboff: np.ndarray, gnr: np.ndarray, ghint: np.ndarray,
              h_shift: np.ndarray, h_occ2m: np.ndarray, h_occ1g: np.ndarray, htbl: np.ndarray,
              hbits: np.ndarray, hboff: np.ndarray, hnr: np.ndarray, hhint: np.ndarray,
              series: np.ndarray) -> tuple[int, int]:
    """Replay runs ``[start, len)``: run ``i`` is ``runs_n[i]`` translations of 4 KiB page ``runs_p4[i]``.

    ``fill`` = [slots used, aux entries used, series rows used]. Returns (status, position); state is
    consistent at ``position`` (nothing of that run has been applied).
    """
    window = P[P_WINDOW]
    virt = P[P_VIRT] != 0
    g_levels = P[P_G_LEVELS]
    # Fast path when every TLB entry is 4 KiB and an L1 array holds them: an L1 hit on tag (4K, page)
    # proves the page was translated before (mapped, backed, counted as touched), so the hit needs
    # no page lookup at all; an L1 miss goes the full way, without repeating the L1 lookup.
    l1_4k = P[P_L1_IDX] if P[P_ONLY_4K] != 0 else np.int64(-1)
    slot_limit = min(slots.shape[0] >> 1, slot_shifts.shape[0])
    aux_limit = (aux.shape[0] >> 1) - 16
    acc = C[C_ACCESSES]
    next_boundary = (acc // window + 1) * window
    n_runs = runs_p4.shape[0]
    for i in range(start, n_runs):
        p4 = runs_p4[i]
        count = np.int64(runs_n[i])
        # room for every snapshot this run may emit (checked only when it crosses a window boundary)
        if next_boundary <= acc + count and fill[2] + 2 + count // window >= series.shape[0]:
            C[C_ACCESSES] = acc
            return STATUS_GROW, i
        fast_hit = False
        l1_missed = False
        if l1_4k >= 0:
            fast_hit = lru_lookup(tags, P, l1_4k, p4, p4 << 2)
            l1_missed = not fast_hit
        if fast_hit:
            # the run's first translation hit its 4K L1 entry: no page lookup needed
            C[C_L1_HITS] += 1
            acc += 1
            collapse = True
            l1 = l1_4k
        else:
            slot = ht_get(slots, p4)
            if slot < 0:
                # room for one more page in the slot table and its aux entries
                if fill[0] + 1 >= slot_limit or fill[1] >= aux_limit:
                    C[C_ACCESSES] = acc
                    return STATUS_GROW, i
                slot = fill[0]
                status = new_page(p4, slot, P, C, aux, fill, slot_shifts, slot_info, gbits, gboff, gnr, ghint,
                                  h_shift, h_occ2m, h_occ1g, htbl, hbits, hboff, hnr, hhint)
                if status != STATUS_DONE:
                    C[C_ACCESSES] = acc
                    return status, i
                fill[0] += 1
                ht_put(slots, p4, slot)
            shifts = np.int64(slot_shifts[slot])
            es = shifts & 255
            code = (es - 12) // 9
            vpn = p4 >> (es - 12)
            tag = (vpn << 2) | code
            l1 = P[P_L1_IDX + code]
            l2 = P[P_L2_IDX + code]
            # With an array for this size, only the first translation of the run is simulated in full and
            # the repeats hit the most-recent entry (exact under LRU, module docstring); without one,
            # every translation walks.
            collapse = l1 >= 0 or l2 >= 0
            full = np.int64(1) if collapse else count
            for _ in range(full):
                # ---- one translation (MODEL.md section 3) ----
                if l1 >= 0 and not l1_missed and lru_lookup(tags, P, l1, vpn, tag):
                    C[C_L1_HITS] += 1
                elif l2 >= 0 and lru_lookup(tags, P, l2, vpn, tag):
                    C[C_L2_HITS] += 1
                    if l1 >= 0:
                        lru_fill(tags, P, l1, vpn, tag)
                else:
                    # ---- the 2D walk (MODEL.md section 4) ----
                    C[C_WALKS] += 1
                    si = slot * SLOT_STRIDE
                    G = g_levels - ((shifts >> 8) - 12) // 9
                    k = psc_deepest_hit(tags, P, P_GPSC_IDX, G, g_levels, p4)
                    if k > 0:
                        C[C_PSC_GUEST_HITS] += 1
                    C[C_GUEST_PTE_LOADS] += G - k
                    loads = G - k
                    if virt:
                        for j in range(k + 1, G + 1):
                            # a PSC hit at level k holds the host-physical address of table k+1
                            if not (j == k + 1 and k >= 1):
                                table = g_root if j == 1 else slot_info[si + j]
                                loads += host_translate(table, P, C, h_shift, tags)
                        loads += host_translate(slot_info[si + SI_GFRAME], P, C, h_shift, tags)
                    psc_fill(tags, P, P_GPSC_IDX, k, G, g_levels, p4)
                    C[C_HIST + loads] += 1
                    if l2 >= 0:
                        lru_fill(tags, P, l2, vpn, tag)
                    if l1 >= 0:
                        lru_fill(tags, P, l1, vpn, tag)
                acc += 1
                if next_boundary <= acc:
                    _snapshot(series, fill[2], next_boundary, C, C_L1_HITS, 0)
                    fill[2] += 1
                    next_boundary += window
        if collapse:
            repeats = count - 1
            hit_counter = C_L1_HITS if l1 >= 0 else C_L2_HITS
            while next_boundary <= acc + repeats:
                _snapshot(series, fill[2], next_boundary, C, hit_counter, next_boundary - acc)
                fill[2] += 1
                next_boundary += window
            C[hit_counter] += repeats
            acc += repeats
    C[C_ACCESSES] = acc
    return STATUS_DONE, n_runs


@njit(cache=True, error_model="numpy")
def lookup_shifts(p4: np.ndarray, slots: np.ndarray, slot_shifts: np.ndarray) -> np.ndarray:
    """Effective TLB page shift of each 4 KiB virtual page already translated (0 if never translated)."""
    out = np.zeros(p4.shape[0], dtype=np.uint8)
    for i in range(p4.shape[0]):
        slot = ht_get(slots, p4[i])
        if slot >= 0:
            out[i] = slot_shifts[slot] & 255
    return out
