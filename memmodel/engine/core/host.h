/* The host side: host faults, host touch, host translate with the nested TLB and host PSCs (sections 2, 4).
 * Part of the engine core: included once, in order, by memmodel/engine/_core.c (not standalone). */
#ifndef MEMMODEL_CORE_HOST_H
#define MEMMODEL_CORE_HOST_H

/* ---------------------------------------------------------------------------------------------
 * Host side (docs/model.md section 2: host faults, host touch; section 4: host translate)
 * -------------------------------------------------------------------------------------------*/
static inline int64_t host_tbl_index(const Host *h, int64_t frame, int k) {
    return frame >> (9 * (h->levels - k + 1));
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
    for (int k = 2; k <= leaf; k++) {
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
    int refault = h->ever[frame];
    for (int64_t i = 0; i < span; i++) {
        h->shift[first + i] = (uint8_t)s;
        h->hframe[first + i] = (uint32_t)(hf + i);
        h->ever[first + i] = 1;
    }
    if (s == 30) {
        for (int64_t r = first >> 9; r < (first >> 9) + 512; r++) h->occ2m[r] = 512;
    } else {
        h->occ2m[frame >> 9] += (int32_t)span;
    }
    h->occ1g[frame >> 18] += (int32_t)span;
    e->C[C_HOST_FAULTS]++;
    e->report_dirty = 1;  /* may back free guest frames: the next reporting pass has work */
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

/* The deepest PSC level j < leaf whose array holds the prefix of `page` (then most recent), or 0; every
 * level looked up and missed (those below the hit) is filled with its prefix on the way. Filling at once
 * is filling after the walk: the PSC arrays are distinct per level and from the nested TLB, so nothing
 * the walk does in between reads them. */
static inline __attribute__((always_inline)) int psc_walk(Engine *e, const int *psc, int leaf, int levels,
                                                         uint64_t page) {
    for (int j = leaf - 1; j >= 1; j--) {
        int a = psc[j];
        if (a >= 0) {
            uint64_t key = page >> (9 * (levels - j));
            const Lru *arr = &e->arrays[a];
            if (lru_access_any(lru_set_w(e->tags, arr, key, 0), arr, (int64_t)key)) return j;
        }
    }
    return 0;
}

/* Host-translate guest frame `frame` (backed); returns the host PTE loads. */
static inline __attribute__((always_inline)) int host_translate(Engine *e, int64_t frame) {
    Host *h = &e->h;
    int hs = h->shift[frame];
    int code = (hs - 12) / 9;
    uint64_t pfn = (uint64_t)frame >> (hs - 12);
    int H = h->levels - code;
    int64_t tag = (int64_t)((pfn << 2) | (uint64_t)code);
    /* a miss fills the nested TLB at once (the host PSCs are other arrays: see psc_walk) */
    if (e->ntlb >= 0) {
        const Lru *n = &e->arrays[e->ntlb];
        if (lru_access_any(lru_set_w(e->tags, n, pfn, 0), n, tag)) {
            e->C[C_NTLB_HITS]++;
            return 0;
        }
    }
    e->C[C_NTLB_MISSES]++;
    int kh = e->has_hpsc ? psc_walk(e, e->hpsc, H, h->levels, (uint64_t)frame) : 0;
    int loads = H - kh;
    e->C[C_HOST_PTE_LOADS] += (uint64_t)loads;
    return loads;
}

#endif /* MEMMODEL_CORE_HOST_H */
