/* The guest of a native 4 KiB replay as bitmaps (Params.flat): faults, the TLB-miss check, releases.
 * Part of the engine core: included once, in order, by memmodel/engine/_core.c (not standalone). */
#ifndef MEMMODEL_CORE_FLAT_H
#define MEMMODEL_CORE_FLAT_H

/* ---------------------------------------------------------------------------------------------
 * Flat store (docs/model.md Part 3 item 9)
 * -------------------------------------------------------------------------------------------*/
/* Why: a native replay that maps only 4 KiB pages reads nothing from its guest tables but whether a page
 * is mapped, and, to free it, its frame; whether a table exists only decides a fault's page-table count.
 * The radix tree and the slot cache made a first touch cost ~470 instructions and three random lines of
 * multi-megabyte arrays (callgrind and perf, sparse TLB-only: resolve, guest_find, buddy_alloc and the
 * kernel's zeroing of the 6.4 MB table arena were ~27 % of the replay), and every TLB miss read its page's
 * 16-byte slot from a table of megabytes. Here a miss reads the region's index entry and, beside it, its
 * 128-byte page bits (one prefetch address for both); a fault sets two bits and logs its frame.
 * Measured on sparse TLB-only without its U records (callgrind; pairs of runs): 115.0 -> 89.9 M
 * instructions, 9.9 -> 7.8 ms best of 21 (1.27x) with frames stored at each fault; then 1.38x more with
 * the fault log (flat_apply_log).
 *
 * Exactness: the counters and the allocator see the same events in the same order as the tables' path
 * (guest_fault, guest_visit): a fault checks that an order-0 block is free, allocates the missing tables
 * top-down, then the page's frame; a release frees the mapped pages of its range in ascending address
 * order. Tables are never freed in the model, so a region, once made, stands for its leaf table for good.
 * There are no huge pages, so no splits, and no slot to keep current: the bitmaps are the mappings.
 * tests/engine/test_flat_store.py replays native 4 KiB configs with this store and with the tables. */

/* An empty index of cap positions (a power of two). */
static int findex_init(FlatIndex *x, int64_t cap) {
    x->e = (FlatEntry *)state_alloc((size_t)cap * sizeof(FlatEntry));
    x->bits = (PageBits *)state_alloc((size_t)cap * sizeof(PageBits));
    x->cap = cap;
    x->shift = 64 - __builtin_ctzll((uint64_t)cap);
    x->used = 0;
    return (x->e && x->bits) ? ST_OK : ST_NOMEM;
}

static void findex_free(FlatIndex *x) {
    state_free(x->e, (size_t)x->cap * sizeof(FlatEntry));
    state_free(x->bits, (size_t)x->cap * sizeof(PageBits));
}

/* Home position of region number id. */
static inline __attribute__((always_inline)) uint64_t findex_home(const FlatIndex *x, uint64_t id) {
    return fib_index(id + 1, x->shift);
}

/* The position of region number id, or -1. */
static inline __attribute__((always_inline)) int64_t findex_find(const FlatIndex *x, uint64_t id) {
    uint64_t k = id + 1;
    for (uint64_t i = findex_home(x, id);; i = (i + 1) & (uint64_t)(x->cap - 1)) {
        if (x->e[i].key == k) return (int64_t)i;
        if (x->e[i].key == 0) return -1;
    }
}

/* Insert region number id (absent) with index r and no mapped page; *pos = its position. Grows the table
 * at half load (entries and bitmaps move together). */
static int findex_put(FlatIndex *x, uint64_t id, int64_t r, int64_t *pos) {
    if (2 * (x->used + 1) > x->cap) {
        FlatIndex bigger;
        if (findex_init(&bigger, x->cap * 2) != ST_OK) {
            findex_free(&bigger);
            return ST_NOMEM;
        }
        for (int64_t j = 0; j < x->cap; j++) {
            if (!x->e[j].key) continue;
            uint64_t i = findex_home(&bigger, x->e[j].key - 1);
            while (bigger.e[i].key) i = (i + 1) & (uint64_t)(bigger.cap - 1);
            bigger.e[i] = x->e[j];
            bigger.bits[i] = x->bits[j];
        }
        bigger.used = x->used;
        findex_free(x);
        *x = bigger;
    }
    uint64_t i = findex_home(x, id);
    while (x->e[i].key) i = (i + 1) & (uint64_t)(x->cap - 1);
    x->e[i] = (FlatEntry){id + 1, r};
    x->used++;
    *pos = (int64_t)i;
    return ST_OK;
}

static int flat_init(Flat *f) {
    memset(f, 0, sizeof *f);
    f->frames.raw = 1;  /* read only where mapped, after the fault that wrote it */
    if (findex_init(&f->index, 64) != ST_OK || hash_init(&f->upper, 16) != ST_OK) return ST_NOMEM;
    return ST_OK;
}

static void flat_free(Flat *f) {
    findex_free(&f->index);
    free(f->upper.keys);
    free(f->upper.vals);
    region_free(&f->frames);
    free(f->log);
}

static inline __attribute__((always_inline)) uint32_t *flat_frames(const Flat *f, int64_t r) {
    return (uint32_t *)f->frames.p + r * 512;
}

/* Whether page p4 is mapped; *pos = its region's position in the index, or -1 when its leaf table does
 * not exist. */
static inline __attribute__((always_inline)) int flat_mapped(const Flat *f, uint64_t p4, int64_t *pos) {
    int64_t x = findex_find(&f->index, p4 >> 9);
    *pos = x;
    return x >= 0 && ((f->index.bits[x].g[(p4 >> 6) & 7].mapped >> (p4 & 63)) & 1);
}

/* Prefetch for record i + FLAT_PREFETCH (of n, virtual addresses gva), after a record that missed the
 * L1: its region's home position in the index, entry and bitmap word (a region sits at its home
 * position but for collisions). Measured on sparse TLB-only, pairs of runs: the entry 1.05x over no
 * prefetch; the bitmap word as well, no further change (kept: one address for both); the entry two
 * stages ahead and the word one stage ahead after a lookup, no change for more instructions. */
#define FLAT_PREFETCH 8
static inline __attribute__((always_inline)) void flat_prefetch(const Flat *f, const uint64_t *gva, Py_ssize_t i,
                                                                Py_ssize_t n) {
    if (i + FLAT_PREFETCH < n) {
        uint64_t p4 = gva[i + FLAT_PREFETCH] >> 12;
        uint64_t h = findex_home(&f->index, p4 >> 9);
        __builtin_prefetch(&f->index.e[h]);
        __builtin_prefetch(&f->index.bits[h].g[(p4 >> 6) & 7]);
    }
}

/* Guest fault at page p4, which is unmapped (docs/model.md section 2 with 4 KiB pages only: the steps
 * of guest_fault); pos: its region's position in the index, or -1. */
static __attribute__((noinline)) int flat_fault(Engine *e, uint64_t p4, int64_t pos) {
    Guest *g = &e->g;
    Flat *f = &e->flat;
    int L = g->levels;
    uint64_t v = p4 << 12;
    if (!buddy_can_alloc(&g->buddy, 0)) return ST_OOM_GUEST;
    if (pos < 0) {
        /* the leaf table is missing, and maybe tables above it: allocated top-down */
        for (int k = 2; k < L; k++) {
            uint64_t key = ((v >> entry_shift(L, k - 1)) << 3) | (uint64_t)k;
            if (hash_get(&f->upper, key) >= 0) continue;
            if (buddy_alloc(&g->buddy, 0) < 0) return ST_OOM_GUEST;
            e->C[C_GUEST_PT_PAGES]++;
            if (hash_put(&f->upper, key, 0) != ST_OK) return ST_NOMEM;
        }
        if (buddy_alloc(&g->buddy, 0) < 0) return ST_OOM_GUEST;
        e->C[C_GUEST_PT_PAGES]++;
        /* the new region (leaf table): its index r is the number of regions before it */
        if (findex_put(&f->index, p4 >> 9, f->index.used, &pos) != ST_OK) return ST_NOMEM;
    }
    int64_t data = buddy_alloc(&g->buddy, 0);
    if (data < 0) return ST_OOM_GUEST;
    int64_t r = f->index.e[pos].r;
    int w = (int)((p4 >> 6) & 7);
    uint64_t bit = 1ULL << (p4 & 63);
    if (f->log_n == f->log_cap) {
        int64_t cap = f->log_cap ? 2 * f->log_cap : 1024;
        uint64_t *grown = (uint64_t *)realloc(f->log, (size_t)cap * 2 * sizeof(uint64_t));
        if (!grown) return ST_NOMEM;
        f->log = grown;
        f->log_cap = cap;
    }
    f->log[2 * f->log_n] = ((uint64_t)r << 9) | (p4 & 511);
    f->log[2 * f->log_n + 1] = (uint64_t)data;
    f->log_n++;
    f->index.bits[pos].g[w].mapped |= bit;
    uint64_t *ever = &f->index.bits[pos].g[w].ever;
    e->C[C_GUEST_FAULTS]++;
    e->C[C_GUEST_PAGES_4K]++;
    e->C[C_GUEST_RESIDENT_BYTES] += 4096;
    int refault = (*ever & bit) != 0;  /* translated before: a fault now is a re-fault after a release */
    if (g->zeroing) {
        e->C[C_GUEST_ZEROED_BYTES] += 4096;
        if (refault) e->C[C_GUEST_ZEROED_REFAULT_BYTES] += 4096;
    }
    if (!refault) {
        *ever |= bit;
        e->C[C_TOUCHED_PAGES]++;
    }
    return ST_OK;
}

/* Page p4 mapped (faulting it in when it is not), before its walk. */
static inline __attribute__((always_inline)) int flat_ready(Engine *e, uint64_t p4) {
    int64_t pos;
    if (flat_mapped(&e->flat, p4, &pos)) return ST_OK;
    return flat_fault(e, p4, pos);
}

/* Free the mapped pages of region number id (at index position pos) that lie in pages [pa, pb), ascending;
 * *changed = 1 when one was. */
static void flat_release_region(Engine *e, int64_t pos, uint64_t id, uint64_t pa, uint64_t pb, int *changed) {
    uint64_t first = id << 9;
    int a = pa > first ? (int)(pa - first) : 0;      /* pages [a, b) of the region, 0 <= a < b <= 512 */
    int b = pb < first + 512 ? (int)(pb - first) : 512;
    Flat *f = &e->flat;
    PageBits *x = &f->index.bits[pos];
    const uint32_t *frames = flat_frames(f, f->index.e[pos].r);
    for (int w = a >> 6; w <= (b - 1) >> 6; w++) {
        int lo = w * 64 > a ? 0 : a - w * 64;
        int hi = (w + 1) * 64 < b ? 64 : b - w * 64;
        uint64_t mask = (hi == 64 ? ~0ULL : (1ULL << hi) - 1) & ~((1ULL << lo) - 1);
        uint64_t m = x->g[w].mapped & mask;
        if (!m) continue;
        x->g[w].mapped &= ~m;
        while (m) {
            int i = w * 64 + __builtin_ctzll(m);
            m &= m - 1;
            buddy_free(&e->g.buddy, frames[i], 0);
            report_mark(e, frames[i], frames[i] + 1);
            e->C[C_GUEST_FREED_BYTES] += 4096;
            e->C[C_GUEST_RESIDENT_BYTES] -= 4096;
        }
        *changed = 1;
    }
}

/* The frames of the faults since the last release, written where a release reads them. A fault only
 * appends to the log (16 bytes, in order), so a trace without releases never stores a frame at random
 * and never makes the per-region frame array (on sparse, 6.3 MB of fresh pages the kernel zeroed; each
 * fault's store missed the cache): TLB-only without its U records 1.38x faster, with them 1.16x (median
 * of 21 pairs; the stores of a whole log in one loop overlap their misses). Within one log a page
 * appears at most once: it faults again only after a release unmapped it, and that release applied the
 * log first. */
static int flat_apply_log(Engine *e) {
    Flat *f = &e->flat;
    if (f->log_n == 0) return ST_OK;
    size_t need = (size_t)f->index.used * 512 * sizeof(uint32_t);
    /* each region holds a guest frame (its leaf table), so guest frames bound them */
    size_t limit = (size_t)(e->g.frames + 1) * 512 * sizeof(uint32_t);
    if (need > f->frames.cap && region_grow(&f->frames, need, limit) != 0) return ST_NOMEM;
    uint32_t *frames = (uint32_t *)f->frames.p;
    for (int64_t i = 0; i < f->log_n; i++) frames[f->log[2 * i]] = (uint32_t)f->log[2 * i + 1];
    f->log_n = 0;
    return ST_OK;
}

/* Release, guest side, of virtual [p, q) (page-aligned bytes, q <= 2^64; docs/model.md section 7, 4 KiB
 * pages only): every mapped page inside is unmapped and its frame freed, in ascending address order (as
 * guest_visit does: the allocator then sees the same frees in the same order); *changed = 1 when one
 * was. */
static int flat_release(Engine *e, u128 p, u128 q, int *changed) {
    Flat *f = &e->flat;
    uint64_t pa = (uint64_t)(p >> 12), pb = (uint64_t)(q >> 12);  /* pages [pa, pb), pb <= 2^52 */
    int64_t regions = f->index.used;
    if (pb <= pa || regions == 0) return ST_OK;
    int st = flat_apply_log(e);
    if (st) return st;
    uint64_t ra = pa >> 9, rb = (pb + 511) >> 9;  /* region numbers [ra, rb) */
    if (rb - ra <= (uint64_t)regions) {
        /* no more numbers than regions: each probed, in ascending order */
        for (uint64_t id = ra; id < rb; id++) {
            int64_t pos = findex_find(&f->index, id);
            if (pos >= 0) flat_release_region(e, pos, id, pa, pb, changed);
        }
        return ST_OK;
    }
    /* else the regions in range found by a scan of the index and sorted (a munmap of a whole address
     * space must not probe 2^43 numbers) */
    uint64_t *ids = (uint64_t *)malloc((size_t)regions * sizeof(uint64_t));
    if (!ids) return ST_NOMEM;
    int64_t n_ids = 0;
    for (int64_t i = 0; i < f->index.cap; i++) {
        uint64_t k = f->index.e[i].key;
        if (k && k - 1 >= ra && k - 1 < rb) ids[n_ids++] = k - 1;
    }
    qsort(ids, (size_t)n_ids, sizeof(uint64_t), cmp_u64);
    for (int64_t j = 0; j < n_ids; j++) flat_release_region(e, findex_find(&f->index, ids[j]), ids[j], pa, pb, changed);
    free(ids);
    return ST_OK;
}

#endif /* MEMMODEL_CORE_FLAT_H */
