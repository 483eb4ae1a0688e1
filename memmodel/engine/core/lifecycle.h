/* The memory lifecycle as events: invalidation (9), release, U records (7), reporting passes (8).
 * Part of the engine core: included once, in order, by memmodel/engine/_core.c (not standalone). */
#ifndef MEMMODEL_CORE_LIFECYCLE_H
#define MEMMODEL_CORE_LIFECYCLE_H

/* ---------------------------------------------------------------------------------------------
 * Invalidation (docs/model.md section 9)
 * -------------------------------------------------------------------------------------------*/
static void empty_tlbs(Engine *e) {
    int done[64] = {0};
    for (int c = 0; c < 3; c++) {
        int ids[2] = {e->l1_of[c], e->l2_of[c]};
        for (int i = 0; i < 2; i++)
            if (ids[i] >= 0 && !done[ids[i]]) { lru_empty(e->tags, &e->arrays[ids[i]]); done[ids[i]] = 1; }
    }
}

static void empty_list(Engine *e, const int *ids, int n) {
    for (int i = 0; i < n; i++)
        if (ids[i] >= 0) lru_empty(e->tags, &e->arrays[ids[i]]);
}

static void event_boundary(Engine *e) { e->last_counter = -1; }

/* A release changed mappings or backings of pages in [lo, hi) (4 KiB page numbers) and of no page outside
 * it, more pages than slots_forget probes; [0, UINT64_MAX) when it cannot name them by virtual page (a
 * pass-through discard whose host pages reach past the guest mapping). Every slot
 * becomes stale, and its next use revalidates it by the range (slot_revalidate) or resolves it again.
 * The generation is 32-bit; at its wrap every slot is marked stale by hand (gen 0, never revalidated) so
 * that an old generation can never pass as current. */
static void bump_gen(Engine *e, uint64_t lo, uint64_t hi) {
    if (++e->gen == 0) {
        for (int64_t i = 0; i < e->slots.cap; i++) e->slots.e[i].gen = 0;
        e->gen = 1;
    }
    e->gen_range[e->gen & (GEN_HISTORY - 1)] = (PageRange){lo, hi};
}

/* Guest-initiated invalidation of [p, q) after a release that split or freed something. */
static void guest_invalidate(Engine *e, u128 p, u128 q) {
    u128 pages = (q - p) >> 12;
    if (pages <= 33) {
        for (u128 x = p; x < q; x += 4096) {
            for (int c = 0; c < 3; c++) {
                int s = 12 + 9 * c;
                uint64_t vpn = (uint64_t)(x >> s);
                int64_t tag = (int64_t)((vpn << 2) | (uint64_t)c);
                if (e->l1_of[c] >= 0) lru_invalidate(e->tags, &e->arrays[e->l1_of[c]], vpn, tag);
                if (e->l2_of[c] >= 0) lru_invalidate(e->tags, &e->arrays[e->l2_of[c]], vpn, tag);
            }
        }
        e->C[C_TLB_PAGE_INVALIDATIONS] += (uint64_t)pages;
    } else {
        empty_tlbs(e);
        e->C[C_TLB_FLUSHES]++;
    }
    empty_list(e, e->gpsc, 6);
}

/* Host-initiated flush: KVM flushes the whole guest TLB after changing its EPT/NPT mappings. */
static void host_flush(Engine *e) {
    empty_tlbs(e);
    empty_list(e, e->gpsc, 6);
    empty_list(e, e->hpsc, 6);
    if (e->ntlb >= 0) lru_empty(e->tags, &e->arrays[e->ntlb]);
}

/* ---------------------------------------------------------------------------------------------
 * Release (docs/model.md section 7), host side: guest frames [fp, fq)
 * -------------------------------------------------------------------------------------------*/
/* Split the host page backing frame f into 512 pages of the next smaller size. */
static int host_split(Engine *e, int64_t f) {
    Host *h = &e->h;
    int s = h->shift[f];
    int64_t first = (f >> (s - 12)) << (s - 12);
    int ns = s - 9;
    int k = leaf_level(h->levels, ns);
    int64_t t = host_tbl_index(h, first, k);
    if (!h->tbl[k][t]) {
        if (buddy_alloc(&h->buddy, 0) < 0) return ST_OOM_HOST;
        h->tbl[k][t] = 1;
        e->C[C_HOST_PT_PAGES]++;
    }
    int64_t span = (int64_t)1 << (s - 12), nspan = span >> 9;
    for (int64_t i = 0; i < span; i++) h->shift[first + i] = (uint8_t)ns;
    /* the 512 new pages map the old page's host frames in order: each first frame gets its host frame
     * (host_fault stores a page's host frame at its first frame only) */
    uint32_t hf = h->hframe[first];
    for (int64_t i = 0; i < 512; i++) h->hframe[first + i * nspan] = hf + (uint32_t)(i * nspan);
    host_region_shift(h, first, span, ns);
    e->C[C_HOST_SPLITS]++;
    return ST_OK;
}

/* Release guest-physical frames [fp, fq) on the host side; *changed = 1 if a host page was freed or split. */
static int host_release(Engine *e, int64_t fp, int64_t fq, int *changed) {
    Host *h = &e->h;
    int64_t gframes = e->g.frames;
    if (fq > gframes) fq = gframes;
    if (fp >= fq) return ST_OK;
    /* 1. split: pages crossing fp first, then those crossing fq */
    int64_t bounds[2] = {fp, fq};
    for (int b = 0; b < 2; b++) {
        int64_t x = bounds[b];
        if (x >= gframes) continue;
        while (h->shift[x] > 12) {
            int sub = h->shift[x] - 12;
            if (((x >> sub) << sub) == x) break;  /* the page starts at x: does not cross it */
            int st = host_split(e, x);
            if (st) return st;
            *changed = 1;
        }
    }
    /* 2. free every host page inside [fp, fq), ascending; skip unbacked regions quickly */
    int64_t f = fp;
    while (f < fq) {
        if (h->occ1g[f >> 18] == 0) { f = ((f >> 18) + 1) << 18; continue; }
        if (h->occ2m[f >> 9] == 0) { f = ((f >> 9) + 1) << 9; continue; }
        int s = h->shift[f];
        if (s == 0) {
            /* unbacked frames of a region that holds some backed ones: skip them 8 at a time (callgrind,
             * sparse with memctl-4k, five munmaps of 64 MiB-6 GiB over pages spread a few per 2 MiB
             * region: 273 -> 239 M instructions per replay; wall time unchanged in pairs, the scan
             * reads sequentially and the replay waits on random reads elsewhere) */
            int64_t end = ((f >> 9) + 1) << 9;
            f = first_nonzero_u8(h->shift, f + 1, end < fq ? end : fq);
            continue;
        }
        int64_t span = (int64_t)1 << (s - 12);
        /* f is the first frame of its page (no page crosses fp, and pages are visited in order) */
        buddy_free(&h->buddy, h->hframe[f], s - 12);
        for (int64_t i = 0; i < span; i++) h->shift[f + i] = 0;
        if (s >= 21) host_region_shift(h, f, span, 0);
        if (s == 30) {
            for (int64_t r = f >> 9; r < (f >> 9) + 512; r++) h->occ2m[r] = 0;
        } else {
            h->occ2m[f >> 9] -= (int32_t)span;
        }
        h->occ1g[f >> 18] -= (int32_t)span;
        e->C[C_HOST_FREED_BYTES] += 1ULL << s;
        *changed = 1;
        f += span;
    }
    resident_changed(e);
    return ST_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Release, guest side: virtual [p, q) (q may be 2^64)
 * -------------------------------------------------------------------------------------------*/
/* Split the guest page crossing x (the caller found one: a page of shift > 12 starting below x). */
static int guest_split(Engine *e, uint64_t x) {
    Guest *g = &e->g;
    int64_t n = -1;
    int idx = 0;
    int s = guest_find(g, x, NULL, &n, &idx);
    int L = g->levels;
    int ns = s - 9;
    int k = leaf_level(L, ns);       /* the table that will hold the smaller pages */
    int64_t data = node_at(g, n)->map[idx] - 1;
    uint64_t base = (x >> s) << s;
    int64_t t;
    int st = guest_table(e, base, k, &t);
    if (st) return st;
    node_set_map(node_at(g, n), idx, 0);  /* n is still valid: guest_table may have realloc'ed, re-index below */
    Node *child = node_at(&e->g, t);
    int64_t step = (int64_t)1 << (ns - 12);
    for (int i = 0; i < 512; i++) child->map[i] = (uint32_t)(data + i * step + 1);
    child->occ = ~0ULL;
    /* nmap: the path to the old entry loses one mapping, the child table gains 512 */
    child->nmap += 512;
    guest_count_path(g, base, k - 1, 511);
    e->C[C_GUEST_SPLITS]++;
    return ST_OK;
}

typedef struct {
    u128 p, q;
    int changed;
    int passthrough;
    int host_changed;
    int wide;           /* a discard may have changed pages outside the guest mappings it visited */
    uint64_t lo, hi;    /* 4 KiB virtual pages [lo, hi) hold every page whose mapping or backing changed */
} ReleaseCtx;

/* Widen the changed pages of cx to include virtual [a, b) (bytes; b <= 2^64). */
static inline void changed_pages(ReleaseCtx *cx, u128 a, u128 b) {
    uint64_t pa = (uint64_t)(a >> 12), pb = (uint64_t)(b >> 12);
    if (pa < cx->lo) cx->lo = pa;
    if (pb > cx->hi) cx->hi = pb;
}

/* The mapping at entry i of node (entry shift es) covering virtual [b, b + 2^es), inside [p, q) after the
 * splits (docs/model.md section 7): under pass-through its guest-physical image of the intersection is
 * discarded, else it is unmapped and its frames freed (*freed + 1). */
static inline __attribute__((always_inline)) int visit_mapping(Engine *e, Node *node, int i, int es, u128 b,
                                                              ReleaseCtx *cx, int64_t *freed) {
    u128 end = b + ((u128)1 << es);
    int64_t data = node->map[i] - 1;
    if (cx->passthrough) {
        /* discard the guest-physical image of the intersection */
        u128 a0 = b > cx->p ? b : cx->p;
        u128 a1 = end < cx->q ? end : cx->q;
        int64_t f0 = data + (int64_t)((a0 - b) >> 12);
        int64_t f1 = data + (int64_t)((a1 - b) >> 12);
        int changed = 0;
        int st = host_release(e, f0, f1, &changed);
        if (st) return st;
        if (changed) {
            cx->host_changed = 1;
            /* the host pages freed or split lie within [a0, a1) widened to the host's largest page;
             * when that page is no larger than this mapping (aligned in both spaces alike), they
             * back pages of this mapping only, at the same offsets */
            int hs = e->h.pshift;
            if (hs > es) {
                cx->wide = 1;
            } else {
                changed_pages(cx, (a0 >> hs) << hs, ((a1 + ((u128)1 << hs) - 1) >> hs) << hs);
            }
        }
        return ST_OK;
    }
    /* entirely inside [p, q) after the splits: unmap and free its frames */
    node_set_map(node, i, 0);
    changed_pages(cx, b, end);
    (*freed)++;
    buddy_free(&e->g.buddy, data, es - 12);
    report_mark(e, data, data + ((int64_t)1 << (es - 12)));
    e->C[C_GUEST_FREED_BYTES] += 1ULL << es;
    e->C[C_GUEST_RESIDENT_BYTES] -= 1ULL << es;
    cx->changed = 1;
    return ST_OK;
}

/* Visit the mappings of node n (a level-k table) intersecting [p, q), ascending. *freed_out = the
 * mappings freed in n and below: each table's nmap drops once by its total when its visit ends (the same
 * as a descent from the root per freed page, which a 1 GiB munmap of a sparse region did 20,000 times;
 * only children's nmap is read while a visit runs, and a child's visit ends before its parent reads on).
 * A table left without mappings ends its visit early (under pass-through nothing is freed and a visited
 * table holds a mapping, so never). */
static int guest_visit(Engine *e, int64_t n, int k, uint64_t node_base, ReleaseCtx *cx, int64_t *freed_out) {
    Guest *g = &e->g;
    int L = g->levels;
    int es = entry_shift(L, k);
    u128 span = (u128)1 << es;
    /* the entries intersecting [p, q): lo holds p (or is the first), hi - 1 the last starting below q */
    u128 lo = cx->p > node_base ? (cx->p - node_base) >> es : 0;
    u128 hi = cx->q > node_base ? (cx->q - node_base + span - 1) >> es : 0;
    if (hi > 512) hi = 512;
    int64_t freed = 0;
    int st = ST_OK;
    Node *node = node_at(g, n);  /* a release allocates no guest table: the arena does not move */
    if (lo >= hi) goto done;
    const int first = (int)lo, top = (int)hi;
    if (k == L) {
        /* a leaf table is mostly empty on a sparse trace: only the groups of 8 entries that occ marks are
         * read, and in each only its mapped entries (callgrind sparse baseline-4k, 5 munmaps over 8.6 GB:
         * guest_visit 12.9 -> 8.1 M instructions, 319.1 -> 316.6 M in all; alone 1.00-1.01 in pairs: the
         * mappings' own lines are most of the lines a scan of every entry read) */
        int first_freed = 0, last_freed = 0;
        uint64_t groups = node->occ & (~0ULL << (first >> 3));
        if (top <= 504) groups &= (1ULL << ((top + 7) >> 3)) - 1;  /* groups 0 .. (top - 1) / 8 */
        while (groups) {
            int j = __builtin_ctzll(groups);
            groups &= groups - 1;
            /* the group's mapped entries in [first, top) */
            unsigned m = group_mask(&node->map[j << 3]);
            if (j << 3 < first) m &= ~0u << (first - (j << 3));
            if ((j << 3) + 8 > top) m &= (1u << (top - (j << 3))) - 1;
            if (cx->passthrough) {
                while (m) {
                    int i = (j << 3) + __builtin_ctz(m);
                    m &= m - 1;
                    st = visit_mapping(e, node, i, es, (u128)node_base + (u128)i * span, cx, &freed);
                    if (st) goto done;
                }
                continue;
            }
            /* freed: the frames in ascending order as visit_mapping frees them; the changed pages, the
             * counters and flags once for the table below (the same sums and bounds: nothing reads them
             * while the table is visited; callgrind sparse baseline-4k: guest_visit with buddy_free 15.2 ->
             * 13.4 M instructions; with occ and host_fault's table test, 319.1 -> 312.4 M in all and
             * 1.02-1.04x in pairs) */
            while (m) {
                int i = (j << 3) + __builtin_ctz(m);
                m &= m - 1;
                int64_t data = node->map[i] - 1;
                node->map[i] = 0;
                buddy_free(&g->buddy, data, es - 12);
                report_mark(e, data, data + ((int64_t)1 << (es - 12)));
                if (freed++ == 0) first_freed = i;
                last_freed = i;
                if (node->nmap == freed) { node->occ = 0; goto leaf_freed; }  /* nothing left in this table */
            }
            if (!group_mask(&node->map[j << 3])) node->occ &= ~(1ULL << j);
        }
    leaf_freed:
        if (freed) {
            changed_pages(cx, (u128)node_base + (u128)first_freed * span, (u128)node_base + (u128)(last_freed + 1) * span);
            e->C[C_GUEST_FREED_BYTES] += (uint64_t)freed << es;
            e->C[C_GUEST_RESIDENT_BYTES] -= (uint64_t)freed << es;
            cx->changed = 1;
        }
        goto done;
    }
    for (int i = first; i < top; i++) {
        if (node->map[i]) {
            st = visit_mapping(e, node, i, es, (u128)node_base + (u128)i * span, cx, &freed);
            if (st || node->nmap == freed) break;  /* nothing left in this table */
        } else if (node->child[i] >= 0 && node_at(g, node->child[i])->nmap > 0) {
            int64_t below = 0;
            st = guest_visit(e, node->child[i], k + 1, (uint64_t)((u128)node_base + (u128)i * span), cx, &below);
            freed += below;
            if (st || node->nmap == freed) break;
        }
    }
done:
    node->nmap -= (uint32_t)freed;
    *freed_out = freed;
    return st;
}

static int guest_range(Engine *e, ReleaseCtx *cx) {
    Guest *g = &e->g;
    int L = g->levels;
    int top = entry_shift(L, 1);  /* a level-2 table covers 2^top bytes */
    /* the level-2 tables intersecting [p, q), in ascending order */
    int64_t n_ids = 0;
    uint64_t *ids = (uint64_t *)malloc((size_t)(g->root.used + 1) * sizeof(uint64_t));
    if (!ids) return ST_NOMEM;
    for (int64_t i = 0; i < g->root.cap; i++) {
        if (!g->root.keys[i]) continue;
        uint64_t id = g->root.keys[i] - 1;
        u128 b = (u128)id << top, end = b + ((u128)1 << top);
        if (b < cx->q && end > cx->p) ids[n_ids++] = id;
    }
    qsort(ids, (size_t)n_ids, sizeof(uint64_t), cmp_u64);
    int st = ST_OK;
    for (int64_t i = 0; i < n_ids && st == ST_OK; i++) {
        int64_t n = hash_get(&g->root, ids[i]);
        int64_t freed = 0;
        if (node_at(g, n)->nmap > 0) st = guest_visit(e, n, 2, (uint64_t)((u128)ids[i] << top), cx, &freed);
    }
    free(ids);
    return st;
}

/* A U(a, n) record (docs/model.md section 7). */
static int unmap_record(Engine *e, uint64_t a, uint64_t n) {
    const u128 TOP = (u128)1 << 64;
    u128 p = (((u128)a + 4095) >> 12) << 12;
    u128 q = ((((u128)a + n) + 4095) >> 12) << 12;
    if (p > TOP) p = TOP;
    if (q > TOP) q = TOP;
    e->C[C_UNMAPS]++;
    event_boundary(e);
    if (q <= p) return ST_OK;
    e->unmapped_bytes += q - p;
    ReleaseCtx cx = {p, q, 0, e->g.unmap_passthrough, 0, 0, UINT64_MAX, 0};
    int st;
    if (e->p.flat) {
        /* 4 KiB pages only: nothing to split, and no slot to make stale (core/flat.h) */
        if ((st = flat_release(e, p, q, &cx.changed))) return st;
        if (cx.changed) guest_invalidate(e, p, q);
        return ST_OK;
    }
    if (!cx.passthrough) {
        /* 1. split the pages crossing p, then those crossing q */
        u128 bounds[2] = {p, q};
        for (int b = 0; b < 2; b++) {
            if (bounds[b] >= TOP) continue;
            uint64_t x = (uint64_t)bounds[b];
            for (;;) {
                int64_t nd;
                int idx;
                int s = guest_find(&e->g, x, NULL, &nd, &idx);
                if (s <= 12 || ((x >> s) << s) == x) break;
                st = guest_split(e, x);
                if (st) return st;
                cx.changed = 1;
                /* every page of the split page has a new gs and a new leaf table */
                changed_pages(&cx, (x >> s) << s, (u128)((x >> s) << s) + ((u128)1 << s));
            }
        }
        /* 2. free the pages inside (the splits and the frees widen cx's changed pages) */
        st = guest_range(e, &cx);
        if (st) return st;
        if (cx.changed) {
            if (!slots_forget(&e->slots, cx.lo, cx.hi)) bump_gen(e, cx.lo, cx.hi);
            guest_invalidate(e, p, q);
        }
    } else {
        st = guest_range(e, &cx);
        if (st) return st;
        if (cx.host_changed) {
            if (cx.wide) bump_gen(e, 0, UINT64_MAX);
            else if (!slots_forget(&e->slots, cx.lo, cx.hi)) bump_gen(e, cx.lo, cx.hi);
            e->C[C_HOST_DISCARDS]++;
            host_flush(e);
        }
    }
    return ST_OK;
}

/* A free page reporting pass (docs/model.md section 8). */
static int report_pass(Engine *e) {
    e->C[C_REPORT_TICKS]++;
    /* A pass leaves every free block of order >= min unbacked and uncrossed by a host page. Until the
     * guest frees a frame or the host backs one (a host fault may back free neighbours of the faulting
     * frame), allocations only take or split such blocks, so the next pass would find nothing to discard:
     * it only counts. (Keeps small intervals cheap on fragmented guests; the differential tests cover it.) */
    if (!e->report_dirty) return ST_OK;
    e->report_dirty = 0;
    event_boundary(e);
    Buddy *b = &e->g.buddy;
    int min_order = e->p.report_order;
    int full = e->rlog_full;
    int64_t nlog = e->rlog_n;
    e->rlog_n = 0;
    e->rlog_full = 0;
    /* the free blocks of order >= min_order, ascending by address: merge the per-order bitmaps. With a
     * complete log, only the blocks that meet a logged range: the others were left unbacked and uncrossed
     * by the last pass and nothing has backed them since, so discarding them would free and split nothing
     * (docs/model.md Part 3 item 7 gives the argument; measured: reporting every 19 records at order 0 on a
     * 99 %-fragmented guest visited millions of free blocks per pass) */
    int64_t total = 0;
    for (int o = min_order; o <= MAX_ORDER; o++) total += b->nr_free[o];
    if (total == 0) return ST_OK;
    if (!full) {
        /* at most the blocks meeting each range: one per order plus the range's length at that order */
        int64_t bound = 0;
        for (int64_t j = 0; j < nlog; j++) {
            uint64_t lo = e->rlog[2 * j], hi = e->rlog[2 * j + 1];
            for (int o = min_order; o <= MAX_ORDER; o++) bound += (int64_t)(((hi - 1) >> o) - (lo >> o)) + 1;
        }
        if (bound < total) total = bound;
        else full = 1;  /* the ranges cover more than the free blocks: the plain scan is no slower */
    }
    uint64_t *blocks = (uint64_t *)malloc((size_t)total * sizeof(uint64_t));
    if (!blocks) return ST_NOMEM;
    int64_t nb = 0;
    for (int o = min_order; o <= MAX_ORDER; o++) {
        if (full) {
            for (int64_t w = 0; w < b->nwords[o]; w++) {
                uint64_t word = b->bits[o][w];
                while (word) {
                    int bit = __builtin_ctzll(word);
                    word &= word - 1;
                    uint64_t start = (uint64_t)(((w << 6) + bit) << o);
                    blocks[nb++] = (start << 5) | (uint64_t)o;  /* frames < 2^58: room for the order */
                }
            }
            continue;
        }
        for (int64_t j = 0; j < nlog; j++) {
            uint64_t lo = e->rlog[2 * j] >> o, hi = (e->rlog[2 * j + 1] - 1) >> o;
            for (uint64_t x = lo; x <= hi; x++)
                if (bit_test(b, o, (int64_t)x)) blocks[nb++] = ((x << o) << 5) | (uint64_t)o;
        }
    }
    qsort(blocks, (size_t)nb, sizeof(uint64_t), cmp_u64);
    if (!full && nb > 1) {
        /* logged ranges may overlap: each block once */
        int64_t u = 1;
        for (int64_t i = 1; i < nb; i++)
            if (blocks[i] != blocks[u - 1]) blocks[u++] = blocks[i];
        nb = u;
    }
    int any = 0;
    for (int64_t i = 0; i < nb; i++) {
        int o = (int)(blocks[i] & 31);
        int64_t start = (int64_t)(blocks[i] >> 5);
        int changed = 0;
        int st = host_release(e, start, start + ((int64_t)1 << o), &changed);
        if (st) { free(blocks); return st; }
        if (changed) {
            e->C[C_HOST_DISCARDS]++;
            any = 1;
        }
    }
    free(blocks);
    if (any) {
        /* No slot changes (docs/model.md Part 3 item 3): a pass frees only host pages that back free guest
         * frames, and a host page it splits holds a free frame, so a mapped guest page with frames in it
         * is smaller than it (aligned blocks nest) and stays no larger than its pieces: es = min(gs, hs)
         * keeps its value. (It bumped the generation before: sparse, baseline-thp-fpr, 6 % more
         * instructions.) */
        host_flush(e);  /* one flush per counted discard; flushing twice leaves the same state */
    }
    return ST_OK;
}

/* One tick of the clock (an I, L, S or M record). The clock itself is not kept: all it decides is when
 * a reporting pass runs (clock % interval == 0), which a countdown tells without a 64-bit division per
 * record (that division showed in profiles of reporting configs), and without any work when reporting
 * is off. */
static inline __attribute__((always_inline)) int tick(Engine *e) {
    if (e->p.report && --e->to_report == 0) {
        e->to_report = (uint64_t)e->p.report_interval;
        return report_pass(e);
    }
    return ST_OK;
}

/* n >= to_report ticks with reporting on: the passes among them (out of line, rare). */
static __attribute__((noinline)) int ticks_passing(Engine *e, uint64_t n) {
    uint64_t iv = (uint64_t)e->p.report_interval;
    uint64_t after = n - e->to_report;  /* ticks after the first pass */
    uint64_t passes = 1 + after / iv;
    e->to_report = iv - after % iv;
    int st = report_pass(e);
    e->C[C_REPORT_TICKS] += passes - 1;
    return st;
}

/* The clock ticks of n instruction fetches in a row (the compact form of a trace: a count of I records
 * before a record; the caller counts them as instructions). Exactly n ticks: when several reporting
 * passes fall among them, the first one does the work and the others find nothing to do (no record runs
 * between them; a discarded block is unbacked and split at its edges, so discarding it again frees and
 * splits nothing), so they only count in report_ticks. */
static inline __attribute__((always_inline)) int ticks(Engine *e, uint64_t n) {
    if (!e->p.report) return ST_OK;
    if (n < e->to_report) {
        e->to_report -= n;
        return ST_OK;
    }
    return ticks_passing(e, n);
}

#endif /* MEMMODEL_CORE_LIFECYCLE_H */
