/* The host side: host faults, host touch, host translate with the nested TLB and host PSCs (sections 2, 4).
 * Part of the engine core: included once, in order, by memmodel/engine/_core.c (not standalone). */
#ifndef MEMMODEL_CORE_HOST_H
#define MEMMODEL_CORE_HOST_H

/* ---------------------------------------------------------------------------------------------
 * Host side (docs/model.md section 2: host faults, host touch; section 4: host translate)
 * -------------------------------------------------------------------------------------------*/
/* The shift of the host page backing guest frame f, 0 when unbacked: shift[f], read from the region's
 * rshift when a huge host page holds the whole region. With guest pages of 1 GiB (memctl) the guest frames
 * of a trace are spread over the guest's memory, and shift[] (a byte per guest frame: 4 MiB for 16 GiB)
 * was read at random on every host translation and resolve: with host pages of 2 MiB or more, rshift
 * (a byte per 2 MiB: 8 KiB) serves them from the cache (pairs of runs on sparse: memctl-2m 1.37x,
 * baseline-thp 1.31x faster). A host that maps only 4 KiB pages never sets it nor reads it. */
static inline __attribute__((always_inline)) int host_shift(const Host *h, int64_t f) {
    if (h->pshift > 12) {
        int r = h->rshift[f >> 9];
        if (r) return r;
    }
    return h->shift[f];
}

/* Set rshift for the regions of frames [first, first + span) (whole regions: a huge host page just
 * faulted, freed or split) to s when the pages now backing them hold whole regions (s >= 21), else 0
 * (4 KiB pages after a split, s = 0 after a release). */
static inline void host_region_shift(Host *h, int64_t first, int64_t span, int s) {
    for (int64_t r = first >> 9; r < (first + span) >> 9; r++) h->rshift[r] = (uint8_t)(s >= 21 ? s : 0);
}

static inline int64_t host_tbl_index(const Host *h, int64_t frame, int k) {
    return frame >> (9 * (h->levels - k + 1));
}

/* Ranges the next reporting pass must visit: the guest frames [lo, hi) were freed by the guest or newly
 * backed by the host (report_pass says why only these; defined here, before lifecycle.h, for host_fault).
 * Keeps at most RLOG_MAX ranges; past that, or when memory for the log is refused, the next pass visits
 * every free block. */
#define RLOG_MAX ((int64_t)1 << 16)
static void report_mark(Engine *e, int64_t lo, int64_t hi) {
    e->report_dirty = 1;
    if (!e->p.report || e->rlog_full) return;
    if (e->rlog_n == e->rlog_cap) {
        int64_t cap = e->rlog_cap ? 2 * e->rlog_cap : 256;
        uint64_t *grown = cap <= RLOG_MAX ? (uint64_t *)realloc(e->rlog, (size_t)cap * 2 * sizeof(uint64_t)) : NULL;
        if (!grown) { e->rlog_full = 1; return; }
        e->rlog = grown;
        e->rlog_cap = cap;
    }
    e->rlog[2 * e->rlog_n] = (uint64_t)lo;
    e->rlog[2 * e->rlog_n + 1] = (uint64_t)hi;
    e->rlog_n++;
}

static void resident_changed(Engine *e) {
    uint64_t res = e->C[C_HOST_BACKED_BYTES] - e->C[C_HOST_FREED_BYTES];
    e->C[C_HOST_RESIDENT_BYTES] = res;
    if (res > e->C[C_HOST_RESIDENT_PEAK_BYTES]) e->C[C_HOST_RESIDENT_PEAK_BYTES] = res;
}

/* Host fault at guest frame `frame` (unbacked). */
static int host_fault(Engine *e, int64_t frame) {
    Host *h = &e->h;
    int s = 0;
    for (int cand = 30; cand >= 12; cand -= 9) {
        if (cand > h->pshift) continue;
        if (cand == 30 && h->occ1g[frame >> 18] != 0) continue;
        if (cand == 21 && h->occ2m[frame >> 9] != 0) continue;
        if (buddy_can_alloc(&h->buddy, cand - 12)) { s = cand; break; }
    }
    if (s == 0) return ST_OOM_HOST;
    int leaf = leaf_level(h->levels, s);
    /* the tables above a present one are present (allocated top-down here and in host_split, never freed):
     * when the leaf-level table exists, nothing to allocate (callgrind sparse baseline-4k: host_fault 11.0
     * -> 8.6 M instructions; pairs 1.00, time unchanged) */
    for (int k = h->tbl[leaf][host_tbl_index(h, frame, leaf)] ? leaf + 1 : 2; k <= leaf; k++) {
        int64_t t = host_tbl_index(h, frame, k);
        if (!h->tbl[k][t]) {
            if (buddy_alloc(&h->buddy, 0) < 0) return ST_OOM_HOST;
            h->tbl[k][t] = 1;
            e->C[C_HOST_PT_PAGES]++;
        }
    }
    int64_t hf = buddy_alloc(&h->buddy, s - 12);
    if (hf < 0) return ST_OOM_HOST;
    int64_t span = (int64_t)1 << (s - 12);
    int64_t first = (frame >> (s - 12)) << (s - 12);
    int refault = h->ever[frame] | h->ever2m[frame >> 9];
    /* a huge page writes its shift per frame (every release reads shift[]) but its host frame only at its
     * first frame (only a release of the whole page reads it; a split writes the new pages' first
     * frames) and "ever backed" once per 2 MiB region: per-frame host frames and flags wrote 5 of the 6
     * bytes per frame, on fresh memory over the guest's frames (perf, sparse memctl-2m: the kernel's
     * first-touch faults and page clearing were ~12 % of a replay) */
    h->hframe[first] = (uint32_t)hf;
    if (span == 1) {
        h->shift[first] = (uint8_t)s;
        h->ever[first] = 1;
    } else {
        memset(h->shift + first, s, (size_t)span);
        for (int64_t r = first >> 9; r < (first + span) >> 9; r++) h->ever2m[r] = 1;
    }
    if (s >= 21) host_region_shift(h, first, span, s);
    if (s == 30) {
        for (int64_t r = first >> 9; r < (first >> 9) + 512; r++) h->occ2m[r] = 512;
    } else {
        h->occ2m[frame >> 9] += (int32_t)span;
    }
    h->occ1g[frame >> 18] += (int32_t)span;
    e->C[C_HOST_FAULTS]++;
    report_mark(e, first, first + span);  /* may back free guest frames: the next reporting pass has work */
    e->C[C_HOST_PAGES_4K + (s - 12) / 9]++;
    if (s < h->pshift) e->C[C_HOST_FALLBACKS]++;
    e->C[C_HOST_BACKED_BYTES] += 1ULL << s;
    if (h->zeroing) {
        e->C[C_HOST_ZEROED_BYTES] += 1ULL << s;
        if (refault) e->C[C_HOST_ZEROED_REFAULT_BYTES] += 1ULL << s;
    }
    resident_changed(e);
    return ST_OK;
}

/* Host-touch guest frames [first, first + n) in ascending order. */
static int host_touch(Engine *e, int64_t first, int64_t n) {
    Host *h = &e->h;
    int64_t f = first, end = first + n;
    while (f < end) {
        if (h->shift[f] == 0) {
            int st = host_fault(e, f);
            if (st) return st;
        }
        int sub = h->shift[f] - 12;
        f = ((f >> sub) + 1) << sub;
    }
    return ST_OK;
}

/* PSC level j of array psc[j] (present) for `page` with `levels`-level tables: lookup, and fill on a
 * miss (lru_access_row); 1 on a hit. */
static inline __attribute__((always_inline)) int psc_level(Engine *e, const int *psc, int j, int levels,
                                                          uint64_t page) {
    const Lru *arr = &e->arrays[psc[j]];
    uint64_t key = page >> (9 * (levels - j));
    return lru_access_any(lru_set_w(e->tags, arr, key, 0), arr, (int64_t)key);
}

/* The deepest PSC level j < leaf whose array holds the prefix of `page` (then most recent), or 0; every
 * level looked up and missed (those below the hit) is filled with its prefix on the way. Filling at once
 * is filling after the walk: the PSC arrays are distinct per level and from the nested TLB, so nothing
 * the walk does in between reads them. */
static inline __attribute__((always_inline)) int psc_walk(Engine *e, const int *psc, int leaf, int levels,
                                                         uint64_t page) {
    for (int j = leaf - 1; j >= 1; j--)
        if (psc[j] >= 0 && psc_level(e, psc, j, levels, page)) return j;
    return 0;
}

/* The shapes of the walk's caches in every CPU preset (the assumed ChampSim defaults, docs/model.md §5):
 * with 4-level tables, PSC level 3 = 32 entries x 8 ways, level 2 = 8 x 4, level 1 = 4 x 4 (no level 4),
 * the nested TLB 32 x 8. */
#define PRESET_PSC_WAYS(j) ((j) == 3 ? 8 : 4)
#define PRESET_PSC_SETS(j) ((j) == 3 ? 4 : (j) == 2 ? 2 : 1)
#define PRESET_NTLB_WAYS 8
#define PRESET_NTLB_SETS 4

/* Whether the walk's caches of e have the presets' shapes on every side it walks: then psc_walk_preset
 * and host_translate's preset branch replace the generic code (the same arrays and operations, with
 * ways and sets as constants: no dispatch on the ways, no loads of the array's shape; measured at
 * psc_walk_preset). */
static int psc_preset_of(const Engine *e) {
    const int *sides[2] = {e->gpsc, e->hpsc};
    int levels[2] = {e->g.levels, e->h.levels};
    for (int s = 0; s < (e->p.virt ? 2 : 1); s++) {
        if (levels[s] != 4) return 0;
        for (int j = 0; j < 6; j++) {
            int a = sides[s][j];
            if (j >= 1 && j <= 3) {
                if (a < 0 || e->arrays[a].ways != PRESET_PSC_WAYS(j) || e->arrays[a].sets != PRESET_PSC_SETS(j))
                    return 0;
            } else if (a >= 0) {
                return 0;
            }
        }
    }
    if (e->p.virt && (e->ntlb < 0 || e->arrays[e->ntlb].ways != PRESET_NTLB_WAYS ||
                      e->arrays[e->ntlb].sets != PRESET_NTLB_SETS))
        return 0;
    return 1;
}

/* psc_level for level j of side `side` (0 guest, 1 host) in the presets' shape: the row found from
 * preset_rows with constant ways and sets (the array's shape is not read). */
static inline __attribute__((always_inline)) int psc_level_preset(Engine *e, int side, int j, uint64_t page) {
    const int W = PRESET_PSC_WAYS(j), S = PRESET_PSC_SETS(j);
    uint64_t key = page >> (9 * (4 - j));
    int64_t *row = e->preset_rows[side][j] + (int64_t)(key & (uint64_t)(S - 1)) * lru_row_words(W);
    return lru_access_row(row, NULL, (int64_t)key, W);
}

/* psc_walk for 4-level tables and the presets' PSC shapes (psc_preset_of), the levels unrolled (with
 * the nested TLB's branch in host_translate, pairs of runs, nested baseline-4k: sparse 1.10x, pchase
 * 1.13x faster; callgrind sparse 352 -> 305 M instructions). */
static inline __attribute__((always_inline)) int psc_walk_preset(Engine *e, int side, int leaf, uint64_t page) {
    if (leaf > 3 && psc_level_preset(e, side, 3, page)) return 3;
    if (leaf > 2 && psc_level_preset(e, side, 2, page)) return 2;
    if (leaf > 1 && psc_level_preset(e, side, 1, page)) return 1;
    return 0;
}

/* Host-translate guest frame `frame` (backed); returns the host PTE loads. PRESET: e->psc_preset (a
 * compile-time constant at each call). */
static inline __attribute__((always_inline)) int host_translate(Engine *e, int64_t frame, const int PRESET) {
    Host *h = &e->h;
    /* a host of 4 KiB pages backs every backed frame with 4 KiB (host_fault maps at most pshift, a split
     * only makes pages smaller), and every frame a walk host-translates is backed: no read of shift[],
     * a byte per guest frame read at random (perf, sparse baseline-4k: 7 % of the record loop waited on
     * it; callgrind 319.1 -> 304.2 M; pairs 1.10x) */
    int hs = h->pshift == 12 ? 12 : host_shift(h, frame);
    int code = (hs - 12) / 9;
    uint64_t pfn = (uint64_t)frame >> (hs - 12);
    int H = h->levels - code;
    int64_t tag = (int64_t)((pfn << 2) | (uint64_t)code);
    /* a miss fills the nested TLB at once (the host PSCs are other arrays: see psc_walk) */
    if (PRESET) {
        int64_t *row = e->preset_rows[1][0] + (int64_t)(pfn & (PRESET_NTLB_SETS - 1)) * lru_row_words(PRESET_NTLB_WAYS);
        if (lru_access_row(row, NULL, tag, PRESET_NTLB_WAYS)) {
            e->C[C_NTLB_HITS]++;
            return 0;
        }
    } else if (e->ntlb >= 0) {
        const Lru *n = &e->arrays[e->ntlb];
        if (lru_access_any(lru_set_w(e->tags, n, pfn, 0), n, tag)) {
            e->C[C_NTLB_HITS]++;
            return 0;
        }
    }
    e->C[C_NTLB_MISSES]++;
    int kh = PRESET ? psc_walk_preset(e, 1, H, (uint64_t)frame)
                    : e->has_hpsc ? psc_walk(e, e->hpsc, H, h->levels, (uint64_t)frame) : 0;
    int loads = H - kh;
    e->C[C_HOST_PTE_LOADS] += (uint64_t)loads;
    return loads;
}

#endif /* MEMMODEL_CORE_HOST_H */
