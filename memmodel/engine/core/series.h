/* Time-series rows and per-translation outcomes (outputs beyond the counters).
 * Part of the engine core: included once, in order, by memmodel/engine/_core.c (not standalone). */
#ifndef MEMMODEL_CORE_SERIES_H
#define MEMMODEL_CORE_SERIES_H

/* ---------------------------------------------------------------------------------------------
 * Time series and outcomes
 * -------------------------------------------------------------------------------------------*/
/* accesses is not counted per translation: every translation ends in exactly one of an L1 hit, an L2
 * hit or a walk (sections 3-4), so it is their sum, made current before anything reads it. */
static inline void sync_accesses(Engine *e) {
    e->C[C_ACCESSES] = e->C[C_L1_HITS] + e->C[C_L2_HITS] + e->C[C_WALKS];
}

static int snapshot(Engine *e) {
    sync_accesses(e);
    if (e->series_rows == e->series_cap) {
        int64_t cap = e->series_cap ? e->series_cap * 2 : 1024;
        int64_t *bigger = (int64_t *)realloc(e->series, (size_t)(cap * N_SERIES) * sizeof(int64_t));
        if (!bigger) return ST_NOMEM;
        e->series = bigger;
        e->series_cap = cap;
    }
    int64_t *row = e->series + e->series_rows * N_SERIES;
    const uint64_t *C = e->C;
    row[S_TRANSLATIONS] = (int64_t)C[C_ACCESSES];
    row[S_L1_HITS] = (int64_t)C[C_L1_HITS];
    row[S_L2_HITS] = (int64_t)C[C_L2_HITS];
    row[S_WALKS] = (int64_t)C[C_WALKS];
    row[S_WALK_LOADS] = (int64_t)(C[C_GUEST_PTE_LOADS] + C[C_HOST_PTE_LOADS]);
    row[S_GUEST_FAULTS] = (int64_t)C[C_GUEST_FAULTS];
    row[S_HOST_FAULTS] = (int64_t)C[C_HOST_FAULTS];
    row[S_HOST_BACKED] = (int64_t)C[C_HOST_BACKED_BYTES];
    row[S_GUEST_ZEROED] = (int64_t)C[C_GUEST_ZEROED_BYTES];
    row[S_HOST_ZEROED] = (int64_t)C[C_HOST_ZEROED_BYTES];
    row[S_HOST_RESIDENT] = (int64_t)C[C_HOST_RESIDENT_BYTES];
    row[S_GUEST_RESIDENT] = (int64_t)C[C_GUEST_RESIDENT_BYTES];
    row[S_TLB_FLUSHES] = (int64_t)C[C_TLB_FLUSHES];
    row[S_HOST_DISCARDS] = (int64_t)C[C_HOST_DISCARDS];
    row[S_UNMAPS] = (int64_t)C[C_UNMAPS];
    e->series_rows++;
    return ST_OK;
}

static int record_outcome(Engine *e, int outcome, int es) {
    if (e->n_outcomes == e->cap_outcomes) {
        int64_t cap = e->cap_outcomes ? e->cap_outcomes * 2 : 1 << 16;
        uint8_t *o = (uint8_t *)realloc(e->outcomes, (size_t)cap);
        if (!o) return ST_NOMEM;
        e->outcomes = o;
        uint8_t *s = (uint8_t *)realloc(e->outcome_shifts, (size_t)cap);
        if (!s) return ST_NOMEM;
        e->outcome_shifts = s;
        e->cap_outcomes = cap;
    }
    e->outcomes[e->n_outcomes] = (uint8_t)outcome;
    e->outcome_shifts[e->n_outcomes] = (uint8_t)es;
    e->n_outcomes++;
    return ST_OK;
}

#endif /* MEMMODEL_CORE_SERIES_H */
