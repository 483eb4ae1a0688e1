/* The buddy allocator: canonical decomposition, lowest/random placement, free with merging (section 2).
 * Part of the engine core: included once, in order, by memmodel/engine/_core.c (not standalone). */
#ifndef MEMMODEL_CORE_BUDDY_H
#define MEMMODEL_CORE_BUDDY_H

/* ---------------------------------------------------------------------------------------------
 * Buddy allocator
 * -------------------------------------------------------------------------------------------*/
typedef struct {
    int64_t frames;
    uint64_t *bits[MAX_ORDER + 1];
    int64_t nwords[MAX_ORDER + 1];
    int64_t nr_free[MAX_ORDER + 1];
    int64_t hint[MAX_ORDER + 1];  /* no free block of that order in words below hint */
    int random;
    uint64_t seed_mix;            /* splitmix64(seed XOR 0xA5A5A5A5) */
    uint64_t allocs;              /* successful allocations so far (i of docs/model.md section 2) */
    int32_t *fen[MAX_ORDER + 1];  /* random placement: Fenwick tree over per-word popcounts (1-based) */
} Buddy;

static void fen_add(Buddy *b, int o, int64_t word, int32_t delta) {
    int32_t *f = b->fen[o];
    for (int64_t i = word + 1; i <= b->nwords[o]; i += i & -i) f[i] += delta;
}

static inline void bit_set(Buddy *b, int o, int64_t block) {
    int64_t w = block >> 6;
    b->bits[o][w] |= 1ULL << (block & 63);
    b->nr_free[o]++;
    if (w < b->hint[o]) b->hint[o] = w;
    if (b->random) fen_add(b, o, w, 1);
}

static inline void bit_clear(Buddy *b, int o, int64_t block) {
    int64_t w = block >> 6;
    b->bits[o][w] &= ~(1ULL << (block & 63));
    b->nr_free[o]--;
    if (b->random) fen_add(b, o, w, -1);
}

static inline int bit_test(const Buddy *b, int o, int64_t block) {
    int64_t w = block >> 6;
    if (w >= b->nwords[o]) return 0;
    return (int)((b->bits[o][w] >> (block & 63)) & 1);
}

/* Bytes of order o's free bitmap and of its Fenwick tree. */
static size_t bits_bytes(const Buddy *b, int o) { return (size_t)b->nwords[o] * sizeof(uint64_t); }
static size_t fen_bytes(const Buddy *b, int o) { return ((size_t)b->nwords[o] + 1) * sizeof(int32_t); }

static int buddy_build(Buddy *b, int64_t frames, const int64_t *removed, int64_t n_removed, int random,
                       uint64_t seed) {
    memset(b, 0, sizeof(*b));
    b->frames = frames;
    b->random = random;
    b->seed_mix = splitmix64(seed ^ 0xA5A5A5A5ULL);
    for (int o = 0; o <= MAX_ORDER; o++) {
        b->nwords[o] = ((frames >> o) + 63) / 64 + 1;
        b->bits[o] = (uint64_t *)sparse_alloc(bits_bytes(b, o));
        if (!b->bits[o]) return ST_NOMEM;
        if (random) {
            b->fen[o] = (int32_t *)sparse_alloc(fen_bytes(b, o));
            if (!b->fen[o]) return ST_NOMEM;
        }
        b->hint[o] = INT64_MAX;
    }
    /* canonical decomposition of [0, frames) minus the sorted removed frames */
    int64_t st_start[64], st_order[64];
    for (int64_t top = 0; top < frames; top += (int64_t)1 << MAX_ORDER) {
        int sp = 0;
        st_start[sp] = top;
        st_order[sp] = MAX_ORDER;
        sp++;
        while (sp > 0) {
            sp--;
            int64_t s = st_start[sp];
            int o = (int)st_order[sp];
            int64_t e = s + ((int64_t)1 << o);
            /* any removed frame in [s, e)? binary search for the first >= s */
            int64_t lo = 0, hi = n_removed;
            while (lo < hi) {
                int64_t mid = (lo + hi) / 2;
                if (removed[mid] < s) lo = mid + 1; else hi = mid;
            }
            if (lo == n_removed || removed[lo] >= e) {
                bit_set(b, o, s >> o);
            } else if (o > 0) {
                int64_t half = (int64_t)1 << (o - 1);
                st_start[sp] = s + half; st_order[sp] = o - 1; sp++;
                st_start[sp] = s; st_order[sp] = o - 1; sp++;
            }
        }
    }
    for (int o = 0; o <= MAX_ORDER; o++)
        if (b->hint[o] == INT64_MAX) b->hint[o] = 0;
    return ST_OK;
}

static void buddy_release_mem(Buddy *b) {
    for (int o = 0; o <= MAX_ORDER; o++) {
        sparse_free(b->bits[o], bits_bytes(b, o));
        sparse_free(b->fen[o], fen_bytes(b, o));
        b->bits[o] = NULL;
        b->fen[o] = NULL;
    }
}

static inline int buddy_can_alloc(const Buddy *b, int order) {
    for (int o = order; o <= MAX_ORDER; o++)
        if (b->nr_free[o] > 0) return 1;
    return 0;
}

/* The k-th (0-based) free block of order o, in address order. */
static int64_t buddy_kth(const Buddy *b, int o, uint64_t k) {
    const int32_t *f = b->fen[o];
    int64_t n = b->nwords[o];
    int64_t pos = 0;
    int64_t step = 1;
    while (step * 2 <= n) step *= 2;
    uint64_t rem = k;
    for (; step > 0; step >>= 1) {
        if (pos + step <= n && (uint64_t)f[pos + step] <= rem) {
            pos += step;
            rem -= (uint64_t)f[pos];
        }
    }
    /* word `pos` (0-based) holds the block: its rem-th set bit */
    uint64_t word = b->bits[o][pos];
    for (uint64_t i = 0; i < rem; i++) word &= word - 1;
    return (pos << 6) + __builtin_ctzll(word);
}

/* alloc(order) of docs/model.md section 2: the first frame, or -1 when no block of order >= `order` is free. */
static int64_t buddy_alloc(Buddy *b, int order) {
    for (int o = order; o <= MAX_ORDER; o++) {
        if (b->nr_free[o] == 0) continue;
        int64_t block;
        if (b->random) {
            uint64_t k = splitmix64(b->seed_mix + b->allocs) % (uint64_t)b->nr_free[o];
            block = buddy_kth(b, o, k);
        } else {
            int64_t w = b->hint[o];
            while (b->bits[o][w] == 0) w++;
            b->hint[o] = w;
            block = (w << 6) + __builtin_ctzll(b->bits[o][w]);
        }
        bit_clear(b, o, block);
        int64_t frame = block << o;
        for (int k = order; k < o; k++) bit_set(b, k, (frame + ((int64_t)1 << k)) >> k);
        b->allocs++;
        return frame;
    }
    return -1;
}

/* free(frame, order): the block merges with free buddies into the canonical decomposition. */
static void buddy_free(Buddy *b, int64_t frame, int order) {
    int64_t block = frame >> order;
    int o = order;
    while (o < MAX_ORDER) {
        int64_t buddy = block ^ 1;
        if (!bit_test(b, o, buddy)) break;
        bit_clear(b, o, buddy);
        block >>= 1;
        o++;
    }
    bit_set(b, o, block);
}

#endif /* MEMMODEL_CORE_BUDDY_H */
