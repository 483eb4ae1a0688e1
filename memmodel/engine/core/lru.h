/* Set-associative true-LRU arrays: lookup, fill, invalidate, empty (MODEL.md sections 3 and 9).
 * Part of the engine core: included once, in order, by memmodel/engine/_core.c (not standalone). */
#ifndef MEMMODEL_CORE_LRU_H
#define MEMMODEL_CORE_LRU_H

/* ---------------------------------------------------------------------------------------------
 * LRU arrays
 * -------------------------------------------------------------------------------------------*/
typedef struct {
    int64_t off;   /* first tag in the shared buffer */
    int64_t sets;
    int64_t ways;
    int64_t mask;  /* sets - 1 when sets is a power of two, else -1 (avoids a division per lookup) */
} Lru;

static inline int64_t *lru_set(int64_t *tags, const Lru *a, uint64_t index) {
    uint64_t s = a->mask >= 0 ? (index & (uint64_t)a->mask) : (index % (uint64_t)a->sets);
    return tags + a->off + (int64_t)s * a->ways;
}

/* Position of `tag` in a row of W ways, or -1. Every way is compared, without an early exit: with a
 * constant W the loop unrolls into branch-free compares (tags are unique in a set), which measured
 * faster than stopping at the match on random traces, where the match position is unpredictable. */
#define FIND_IN_ROW(W)                                                                               \
    static inline int64_t find_##W(const int64_t *row, int64_t tag) {                                \
        int64_t hit = -1;                                                                            \
        for (int64_t w = W - 1; w >= 0; w--) hit = row[w] == tag ? w : hit;                          \
        return hit;                                                                                  \
    }
FIND_IN_ROW(1)
FIND_IN_ROW(2)
FIND_IN_ROW(4)
FIND_IN_ROW(8)
FIND_IN_ROW(12)
FIND_IN_ROW(16)

static inline __attribute__((always_inline)) int64_t find_any(const int64_t *row, int64_t ways, int64_t tag) {
    switch (ways) {
    case 1: return find_1(row, tag);
    case 2: return find_2(row, tag);
    case 4: return find_4(row, tag);
    case 8: return find_8(row, tag);
    case 12: return find_12(row, tag);
    case 16: return find_16(row, tag);
    default:
        for (int64_t w = 0; w < ways; w++)
            if (row[w] == tag) return w;
        return -1;
    }
}

/* Look `tag` up in set `index mod sets`; a hit becomes most recent. */
static inline __attribute__((always_inline)) int lru_lookup(int64_t *tags, const Lru *a, uint64_t index, int64_t tag) {
    int64_t *row = lru_set(tags, a, index);
    int64_t hit = find_any(row, a->ways, tag);
    if (hit < 0) return 0;
    for (int64_t x = hit; x > 0; x--) row[x] = row[x - 1];
    row[0] = tag;
    return 1;
}

/* Insert `tag` (known absent) as most recent, evicting the least recent of a full set. */
static inline __attribute__((always_inline)) void lru_fill(int64_t *tags, const Lru *a, uint64_t index, int64_t tag) {
    int64_t *row = lru_set(tags, a, index);
    for (int64_t x = a->ways - 1; x > 0; x--) row[x] = row[x - 1];
    row[0] = tag;
}

/* Invalidate: remove `tag` from its set; the other entries keep their order (MODEL.md section 9). */
static void lru_invalidate(int64_t *tags, const Lru *a, uint64_t index, int64_t tag) {
    int64_t *row = lru_set(tags, a, index);
    int64_t ways = a->ways;
    for (int64_t w = 0; w < ways; w++) {
        if (row[w] == tag) {
            for (int64_t x = w; x < ways - 1; x++) row[x] = row[x + 1];
            row[ways - 1] = -1;
            return;
        }
    }
}

static void lru_empty(int64_t *tags, const Lru *a) {
    int64_t n = a->sets * a->ways;
    for (int64_t i = 0; i < n; i++) tags[a->off + i] = -1;
}

#endif /* MEMMODEL_CORE_LRU_H */
