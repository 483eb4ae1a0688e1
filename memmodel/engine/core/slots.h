/* Per-page slots: what a 4 KiB virtual page's translations need, with a generation (exactness: _core.c).
 * Part of the engine core: included once, in order, by memmodel/engine/_core.c (not standalone). */
#ifndef MEMMODEL_CORE_SLOTS_H
#define MEMMODEL_CORE_SLOTS_H

/* ---------------------------------------------------------------------------------------------
 * Slots: what a 4 KiB virtual page's translations need
 * -------------------------------------------------------------------------------------------*/
/* Slots of a table that has no hint of the pages to come (Engine init's "pages"), and the most a hint can
 * ask for at start-up (4 Mi slots: 64 MiB, plus 80 MiB of cold halves; a bigger trace grows from there). */
#define SLOTS_FIRST ((int64_t)1 << 12)
#define SLOTS_HINT_MAX ((int64_t)1 << 22)

/* A table of cap slots; with_cold: with the cold half (virtualized replays: only the host translations
 * of a nested walk read it, so a native replay neither allocates nor writes it). */
static int slots_init(Slots *t, int64_t cap, int with_cold) {
    t->e = (Slot *)state_alloc((size_t)cap * sizeof(Slot));
    /* zeroed although resolve() writes a cold entry before any walk reads it: left to malloc, the cold
     * halves took 2.5 M fewer memset instructions on sparse TLB-only but ran 4-5 % slower (median of 60
     * pairs of runs: the kernel's first-touch faults then fall at random through the replay) */
    t->cold = with_cold ? (SlotCold *)state_alloc((size_t)cap * sizeof(SlotCold)) : NULL;
    t->cap = cap;
    t->shift = 64 - __builtin_ctzll((uint64_t)cap);
    t->used = 0;
    return (t->e && (t->cold || !with_cold)) ? ST_OK : ST_NOMEM;
}

/* Free the table's arrays. */
static void slots_free(Slots *t) {
    state_free(t->e, (size_t)t->cap * sizeof(Slot));
    state_free(t->cold, (size_t)t->cap * sizeof(SlotCold));
}

static inline __attribute__((always_inline)) SlotCold *cold_of(const Slots *t, const Slot *x) { return &t->cold[x - t->e]; }

/* Home index of key (page + 1): hash_slot with the table's shift precomputed (no bit scan per lookup). */
static inline __attribute__((always_inline)) uint64_t slot_index(const Slots *t, uint64_t key) {
    return fib_index(key, t->shift);
}

static inline __attribute__((always_inline)) Slot *slot_find(const Slots *t, uint64_t p4) {
    uint64_t k = p4 + 1;
    uint64_t i = slot_index(t, k);
    for (;;) {
        Slot *x = &t->e[i];
        if (x->key == k) return x;
        if (x->key == 0) return NULL;
        i = (i + 1) & (uint64_t)(t->cap - 1);
    }
}

/* Mark stale the slots of pages [a, b) (4 KiB page numbers): a release changed the mappings or backings of
 * pages in this range and of no page outside it. Returns 0 when the range is too long to probe page by
 * page (more than cap/64 pages): the caller then bumps the generation with the range (bump_gen). A
 * slot marked here (gen 0: never current, never revalidated) is recomputed by resolve() on its next use.
 * Why not always: probing a page that was never touched is a random miss in the table, and scanning a
 * table in memory instead cost what it saved (sparse, nested baseline-4k, 5 munmaps of 1-6 GiB: 6 % fewer
 * instructions but 5 % slower, median of 40 pairs); a long range is recorded with its bump instead
 * (slot_revalidate). A short range is what a program that gives back small blocks often (free, madvise)
 * does. */
static int slots_forget(Slots *t, uint64_t a, uint64_t b) {
    if (b <= a) return 1;
    if (b - a > (uint64_t)t->cap / 64) return 0;
    for (uint64_t x = a; x < b; x++) {
        Slot *s = slot_find(t, x);
        if (s) s->gen = 0;
    }
    return 1;
}

/* A slot of page p4 computed before the latest generation bump: still right when none of the bumps since
 * its own could have changed p4 (each bump records the only pages it may have changed, bump_gen); then it
 * is current again and 1 is returned. 0: recompute it (resolve). A slot marked stale by hand (gen 0) or
 * older than the kept history is never revalidated. Measured on sparse (five munmaps of 64 MiB-6 GiB),
 * nested baseline-4k (callgrind): every page walked after a munmap was resolved again, 192,809 guest
 * descents for 86,491 faults; with the ranges, one per fault, and 7 % fewer instructions in all. */
static inline int slot_revalidate(Engine *e, Slot *slot, uint64_t p4) {
    uint32_t s = slot->gen;
    if (s == 0 || e->gen - s > GEN_HISTORY) return 0;
    for (uint32_t j = s + 1;; j++) {
        const PageRange *r = &e->gen_range[j & (GEN_HISTORY - 1)];
        if (p4 >= r->lo && p4 < r->hi) return 0;
        if (j == e->gen) break;
    }
    slot->gen = e->gen;
    return 1;
}

/* Records ahead whose slot the record loop prefetches: a TLB miss reads its page's slot, a random
 * line of a table of 16 bytes per touched page (measured: that load held ~30 % of translate_full's
 * samples on a random chase, waiting on the cache). */
#define SLOT_PREFETCH 8

static inline __attribute__((always_inline)) void slot_prefetch(const Slots *t, uint64_t p4, int cold) {
    uint64_t i = slot_index(t, p4 + 1);
    __builtin_prefetch(&t->e[i]);
    /* a nested walk also reads the page's cold entry (measured on sparse, baseline-4k: that load held
     * ~40 % of translate_full's samples); most slots sit at their home index */
    if (cold) __builtin_prefetch(&t->cold[i]);
}

/* A new (zeroed) slot for p4, which must be absent; grows the table at half load. */
static Slot *slot_insert(Slots *t, uint64_t p4) {
    if (2 * (t->used + 1) > t->cap) {
        Slots bigger;
        if (slots_init(&bigger, t->cap * 2, t->cold != NULL) != ST_OK) {
            slots_free(&bigger);
            return NULL;
        }
        for (int64_t j = 0; j < t->cap; j++) {
            if (!t->e[j].key) continue;
            uint64_t i = slot_index(&bigger, t->e[j].key);
            while (bigger.e[i].key) i = (i + 1) & (uint64_t)(bigger.cap - 1);
            bigger.e[i] = t->e[j];
            if (t->cold) bigger.cold[i] = t->cold[j];
        }
        bigger.used = t->used;
        slots_free(t);
        *t = bigger;
    }
    uint64_t k = p4 + 1;
    uint64_t i = slot_index(t, k);
    while (t->e[i].key) i = (i + 1) & (uint64_t)(t->cap - 1);
    t->e[i].key = k;
    t->used++;
    return &t->e[i];
}

/* Resolve page p4 (steps 1-2 of docs/model.md section 3): guest fault if unmapped, host fault if unbacked;
 * fill its slot. A stale slot that no recorded release range holds is only made current (Part 3 item 3). */
static int resolve(Engine *e, uint64_t p4, Slot **slot_io) {
    Slot *slot = *slot_io;
    /* a slot made stale by a generation bump whose ranges all miss p4: current again, nothing to redo
     * (checked here, not at the callers: a call in the record loop's 4 KiB path cost ~3 instructions per
     * record there in spills, callgrind on pchase) */
    if (slot != NULL && slot_revalidate(e, slot, p4)) {
        e->resolving = 0;
        return ST_OK;
    }
    int refault = slot != NULL;  /* translated before: a fault now is a re-fault after a release */
    uint64_t v = p4 << 12;
    Guest *g = &e->g;
    int L = g->levels;
    /* one descent: the tables on v's path (levels 2..) and its mapping, if any */
    int64_t path[6] = {-1, -1, -1, -1, -1, -1};
    int64_t gframe = 0, node = -1;
    int idx = 0;
    int gs = guest_find(g, v, path, &node, &idx);
    e->resolving = 1;
    if (gs) gframe = node_at(g, node)->map[idx] - 1 + (int64_t)((v >> 12) & ((1ULL << (gs - 12)) - 1));
    if (gs == 0) {
        int st = guest_fault(e, v, refault, path, &gs, &gframe);
        if (st) return st;
    }
    int es = gs;
    if (e->p.virt) {
        int hs = host_shift(&e->h, gframe);
        if (hs == 0) {
            int st = host_fault(e, gframe);
            if (st) return st;
            hs = e->h.shift[gframe];
        }
        if (hs < es) es = hs;
    }
    if (slot == NULL) {
        slot = slot_insert(&e->slots, p4);
        if (!slot) return ST_NOMEM;
        e->C[C_TOUCHED_PAGES]++;
        *slot_io = slot;
    }
    slot->gs = (uint8_t)gs;
    slot->gleaf = (uint8_t)leaf_level(L, gs);
    slot->es = (uint8_t)es;
    slot->gen = e->gen;
    if (e->p.virt) {
        /* what the host translations of a walk read: the page's guest frame and the guest tables on its
         * path (levels 2..leaf(gs)); tables are never freed, and a page whose size changes gets a new
         * generation, so these stay right while the slot is current. A native replay has no cold half
         * (measured on sparse TLB-only: one random line written per first touch, and 2.6 MB less state) */
        SlotCold *cold = cold_of(&e->slots, slot);
        cold->gframe = (uint32_t)gframe;
        int G = leaf_level(L, gs);
        for (int j = 2; j <= G; j++) cold->tbl[j - 2] = (uint32_t)node_at(g, path[j])->gframe;
    }
    return ST_OK;
}

#endif /* MEMMODEL_CORE_SLOTS_H */
