/* One translation and the 2D walk (sections 3 and 4), with repeat collapsing and the 4 KiB fast paths.
 * Part of the engine core: included once, in order, by memmodel/engine/_core.c (not standalone). */
#ifndef MEMMODEL_CORE_TRANSLATE_H
#define MEMMODEL_CORE_TRANSLATE_H

/* ---------------------------------------------------------------------------------------------
 * One translation (docs/model.md sections 3 and 4)
 * -------------------------------------------------------------------------------------------*/
/* The 2D walk of page p4 (section 4) after every TLB lookup missed: guest levels from the deepest guest
 * PSC hit down to the leaf, each guest table and the data page host-translated when virtualized; fills
 * the PSCs (the guest's as its lookups miss, before the host translations: psc_walk says why that is
 * section 4's state) and counts the walk. Returns nothing: the caller fills the TLB arrays. */
/* G: the guest leaf level of p4's mapping (what the walk loads); cold: p4's cold slot entry when
 * virtualized (the frames the host translations read), else unused. */
/* NATIVE: 1 when the caller knows the replay is native (the flat store's loops): the host code then folds
 * away (stream TLB-only ran 0.81-0.86x as fast, pairs of runs, when a change to the nested walk's code
 * moved the register allocation of the flat loop, which never runs it) */
static inline __attribute__((always_inline)) void walk_with(Engine *e, int G, const SlotCold *cold, uint64_t p4,
                                                             const int PRESET, const int NATIVE) {
    e->C[C_WALKS]++;
    Guest *g = &e->g;
    int L = g->levels;
    int k = PRESET ? psc_walk_preset(e, 0, G, p4) : e->has_gpsc ? psc_walk(e, e->gpsc, G, L, p4) : 0;
    if (k > 0) e->C[C_PSC_GUEST_HITS]++;
    e->C[C_GUEST_PTE_LOADS] += (uint64_t)(G - k);
    int loads = G - k;
    if (!NATIVE && e->p.virt) {
        for (int j = k + 1; j <= G; j++) {
            /* a PSC hit at level k holds the host-physical address of table k+1 */
            if (j == k + 1 && k >= 1) continue;
            loads += host_translate(e, j == 1 ? g->root_frame : cold->tbl[j - 2], PRESET);
        }
        loads += host_translate(e, cold->gframe, PRESET);
    }
    e->hist[loads < HIST_SIZE ? loads : HIST_SIZE - 1]++;
}

/* walk_with, the PSCs and nested TLB specialised for the presets' shapes when they have them (a branch
 * that every walk of a replay takes the same way). */
static inline __attribute__((always_inline)) void walk(Engine *e, int G, const SlotCold *cold, uint64_t p4,
                                                        const int NATIVE) {
    if (e->psc_preset) walk_with(e, G, cold, p4, 1, NATIVE);
    else walk_with(e, G, cold, p4, 0, NATIVE);
}

/* *out = page p4's current slot: found, or resolved first (steps 1-2) when missing or stale. */
static inline __attribute__((always_inline)) int slot_ready(Engine *e, uint64_t p4, Slot **out) {
    Slot *slot = slot_find(&e->slots, p4);
    if (slot == NULL || slot->gen != e->gen) {
        int st = resolve(e, p4, &slot);
        if (st) return st;
    } else {
        e->resolving = 0;
    }
    *out = slot;
    return ST_OK;
}

/* The full path of one translation of page p4 (faults, TLB lookups by entry size, the 2D walk), for a
 * translation of a run with entries of several sizes that the repeat path did not settle (a 4 KiB-only
 * run settles every translation in translate()). Out of line: it is the long path. */
static __attribute__((noinline)) int translate_full(Engine *e, uint64_t p4) {
    int st;
    Slot *slot;
    if ((st = slot_ready(e, p4, &slot))) return st;
    int es = slot->es;
    int code = (es - 12) / 9;
    uint64_t vpn = p4 >> (es - 12);
    int64_t tag = (int64_t)((vpn << 2) | (uint64_t)code);
    int l1 = e->l1_of[code], l2 = e->l2_of[code];
    int outcome;
    if (l1 >= 0 && lru_lookup(e->tags, &e->arrays[l1], vpn, tag)) {
        e->C[C_L1_HITS]++;
        outcome = OUT_L1;
    } else if (l2 >= 0 && lru_lookup(e->tags, &e->arrays[l2], vpn, tag)) {
        e->C[C_L2_HITS]++;
        if (l1 >= 0) lru_fill(e->tags, &e->arrays[l1], vpn, tag);
        outcome = OUT_L2;
    } else {
        outcome = OUT_WALK;
        walk(e, slot->gleaf, e->p.virt ? cold_of(&e->slots, slot) : NULL, p4, 0);
        if (l2 >= 0) lru_fill(e->tags, &e->arrays[l2], vpn, tag);
        if (l1 >= 0) lru_fill(e->tags, &e->arrays[l1], vpn, tag);
    }
    e->last_p4 = p4;
    e->last_counter = l1 >= 0 ? C_L1_HITS : (l2 >= 0 ? C_L2_HITS : -1);
    e->last_es = es;
    if (e->record_outcomes && (st = record_outcome(e, outcome, es))) return st;
    return ST_OK;
}

/* The set of page p4 in a 4 KiB array of the record loop (W, S: its ways and sets when compile-time,
 * else 0). */
static inline __attribute__((always_inline)) int64_t *fast_row(const FastArray *f, uint64_t p4, const int W,
                                                                const int S) {
    uint64_t s = S ? p4 % (uint64_t)S : f->mask >= 0 ? (p4 & (uint64_t)f->mask) : (p4 % (uint64_t)f->sets);
    return f->base + (int64_t)s * (W ? lru_row_words(W) : f->stride);
}

/* The fast-path view of 4 KiB array `which` (-1: none) of e. */
static inline FastArray fast_array(Engine *e, int which) {
    if (which < 0) return (FastArray){NULL, NULL, -1, 1, 1};
    const Lru *a = &e->arrays[which];
    return (FastArray){a, e->tags + a->off, a->mask, a->sets, a->stride};
}

/* The large-entry hit path of translate() for replays with entries of several sizes: a hit on (s, p4's
 * s-region) in the L1 array f of size s (code C: 1 = 2M, 2 = 1G) proves p4 is mapped and backed with es = s,
 * as a 4 KiB hit does for 4 KiB (docs/model.md Part 3, item 2): es = min(gs, hs) = s puts the whole region
 * in one guest page and one host page, and every change to either removed the entry. So the model's step 4
 * is this lookup. Only "touched" is not proven (another page of the region may have filled the entry):
 * p4's slot exists exactly when p4 was translated before. Without one the full path resolves p4 (no fault:
 * it is mapped and backed) and finds the entry most recent already: the LRU state of one hit, counted
 * once. Returns 1 when the translation is settled (*st: its status), else 0; a lookup miss turns the path
 * off (hot->large = 0) until the full path sees an L1 hit of a large entry again: on a random trace most
 * lookups here miss (sparse, baseline-thp: 0.97x in pairs of runs when every translation tried one). */
static inline __attribute__((always_inline)) int large_hit(Engine *e, uint64_t p4, const FastArray *f, const int C,
                                                           const int OUT, Hot *hot, int *st) {
    uint64_t vpn = p4 >> (9 * C);
    int64_t *row = fast_row(f, vpn, 0, 0);
    if (!lru_lookup_any(row, f->a, (int64_t)((vpn << 2) | (uint64_t)C))) {
        hot->large = 0;
        return 0;
    }
    if (!slot_find(&e->slots, p4)) return 0;
    hot->l1_hits++;
    e->last_p4 = p4;
    e->last_counter = C_L1_HITS;
    e->last_es = 12 + 9 * C;
    *st = OUT && e->record_outcomes ? record_outcome(e, OUT_L1, 12 + 9 * C) : ST_OK;
    return 1;
}

/* One translation of virtual address v (docs/model.md sections 3 and 4). Inlined into the record loop: the
 * repeat and 4 KiB fast paths settle most translations without a call (measured on the TLB-only
 * benchmark: the call and its spills were a visible share of a translation). W1/S1, W2/S2: the ways and
 * sets of the 4 KiB L1/L2 arrays when the record loop is specialised for them (compile-time constants;
 * then both arrays exist), else 0; OUT:
 * 0 when the loop is compiled for a replay that records no outcomes (the checks fold away), else 1;
 * FLAT: 1 when the replay keeps its guest in the flat store (flat.h), else 0 (a compile-time constant:
 * read from the Engine, the test cost 2 instructions per missed record of every replay).
 * hot: the record loop's locals (state.h): the L1 hits of the fast paths, added to the counter before a
 * time-series row and when the loop ends, and the countdown to the next row. */
static inline __attribute__((always_inline)) int translate(Engine *e, uint64_t v, const int W1, const int S1,
                                                           const int W2, const int S2, const int OUT,
                                                           const int FLAT, Hot *hot) {
    uint64_t p4 = v >> 12;
    int st;
    if (p4 == e->last_p4 && e->last_counter >= 0) {
        /* a repeat of the page just translated, no event since: a hit on the most recent entry */
        if (e->last_counter == C_L1_HITS) hot->l1_hits++;
        else e->C[e->last_counter]++;
        if (OUT && e->record_outcomes &&
            (st = record_outcome(e, e->last_counter == C_L1_HITS ? OUT_L1 : OUT_L2, e->last_es)))
            return st;
        goto counted;
    }
    if (!S1 && !FLAT && hot->large) {
        /* the large-entry hit path (large_hit), its size code a constant in each copy */
        int done = hot->large == 1 ? large_hit(e, p4, &hot->f2m, 1, OUT, hot, &st)
                                   : large_hit(e, p4, &hot->f1g, 2, OUT, hot, &st);
        if (done) {
            if (st) return st;
            goto counted;
        }
    }
    int64_t tag4 = (int64_t)(p4 << 2);
    /* each 4 KiB array's set is found once, for its lookup and its fill */
    const Lru *a1 = hot->f1.a, *a2 = hot->f2.a;
    const int has1 = S1 || a1, has2 = S2 || a2;  /* folds to 1 in the specialised loops */
    int64_t *row1 = NULL, *row2 = NULL;
    if (has1) {
        row1 = fast_row(&hot->f1, p4, W1, S1);
        if (lru_lookup_row(row1, a1, tag4, W1)) {
            /* 4 KiB fast path: the hit proves p4 is mapped, backed and touched (file comment) */
            hot->l1_hits++;
            e->last_p4 = p4;
            e->last_counter = C_L1_HITS;
            if (OUT && e->record_outcomes && (st = record_outcome(e, OUT_L1, 12))) return st;
            goto counted;
        }
    }
    hot->missed = 1;
    if (has2) {
        row2 = fast_row(&hot->f2, p4, W2, S2);
        if (lru_lookup_row(row2, a2, tag4, W2)) {
            /* the same proof for an L2 hit; the entry then fills the L1 (if an L1 array holds 4K) */
            e->C[C_L2_HITS]++;
            if (has1) lru_fill_row(row1, a1, tag4, W1);
            e->last_p4 = p4;
            e->last_counter = has1 ? C_L1_HITS : C_L2_HITS;
            if (OUT && e->record_outcomes && (st = record_outcome(e, OUT_L2, 12))) return st;
            goto counted;
        }
    }
    if (e->p.only_4k) {
        /* 4 KiB walk fast path: every entry is 4 KiB, so a resolved slot is all a TLB miss needs (the
         * same steps as translate_full's walk branch, without its call, its second slot search and its
         * lookups by size; callgrind, TLB-only sparse: a first touch took ~190 instructions there
         * besides resolving the page) */
        if (FLAT) {
            /* a native 4 KiB replay: whether p4 is mapped is one bit (core/flat.h) */
            if ((st = flat_ready(e, p4))) return st;
            walk(e, e->g.levels, NULL, p4, 1);
        } else {
            Slot *slot;
            if ((st = slot_ready(e, p4, &slot))) return st;
            walk(e, slot->gleaf, e->p.virt ? cold_of(&e->slots, slot) : NULL, p4, 0);
        }
        /* the walk touches no TLB array (PSCs and the nested TLB are arrays of their own), so the
         * rows found above are still the sets to fill */
        if (has2) lru_fill_row(row2, a2, tag4, W2);
        if (has1) lru_fill_row(row1, a1, tag4, W1);
        e->last_p4 = p4;
        e->last_counter = has1 ? C_L1_HITS : (has2 ? C_L2_HITS : -1);
        if (OUT && e->record_outcomes && (st = record_outcome(e, OUT_WALK, 12))) return st;
        goto counted;
    }
    {
        /* an L1 hit of a large entry on the full path (re)starts the large-entry hit path, for its size */
        uint64_t l1_before = e->C[C_L1_HITS];
        if ((st = translate_full(e, p4))) return st;
        if (!S1 && !FLAT && e->C[C_L1_HITS] != l1_before && e->last_es > 12)
            hot->large = (e->last_es - 12) / 9;
    }
counted:
    /* a countdown, not C_ACCESSES % window: a 64-bit division per translation cost ~10% (perf) */
    if (--hot->to_snapshot == 0) {
        hot->to_snapshot = e->p.window;
        e->C[C_L1_HITS] += hot->l1_hits;  /* the row reads the counter: bring it up to date */
        hot->l1_hits = 0;
        if ((st = snapshot(e))) return st;
    }
    return ST_OK;
}

#endif /* MEMMODEL_CORE_TRANSLATE_H */
