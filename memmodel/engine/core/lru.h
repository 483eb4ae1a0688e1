/* Set-associative true-LRU arrays: lookup, fill, invalidate, empty (docs/model.md sections 3 and 9).
 * Part of the engine core: included once, in order, by memmodel/engine/_core.c (not standalone). */
#ifndef MEMMODEL_CORE_LRU_H
#define MEMMODEL_CORE_LRU_H

/* ---------------------------------------------------------------------------------------------
 * LRU arrays
 *
 * Layout of a set ("row") in the shared int64 `tags` buffer:
 *   ways <= 16 ("packed"): row[0] = the recency order, one 4-bit way number per position, most recent
 *     in the lowest nibble (positions >= ways hold 0); then, when ways > 4 ("fingerprinted"), two words
 *     of 8-bit fingerprints (a hash of the tag, way w in byte w % 8 of word w / 8); then the tags, which
 *     stay in their way. A hit or a fill rewrites one order word instead of moving tags (the shifting
 *     version spent ~7 % of a TLB-only replay in memmove calls); a lookup compares 8 fingerprints at
 *     once (SWAR zero-byte test) and only then the tag of a candidate way, instead of every tag
 *     (callgrind, big random chase: the 12-way compare was 60 instructions per lookup, 14 % of all).
 *     A fingerprint only proposes a way: the full tag decides, so collisions cost time, never a hit.
 *     An 8-way row that only lru_access_row serves (PSCs and nested TLBs: no TLB lookup, fill or
 *     invalidation reaches them) compares its 8 tags at once (SSE2) and leaves its fingerprint words
 *     unused: nothing else reads them (lru_empty rewrites the whole row).
 *   17 <= ways <= 255 ("linked", the fully associative L1s of Zen): row[0] = the most recent way
 *     (bits 0-7) and the least recent (bits 8-15); then ceil(ways / 8) words of fingerprints; then
 *     ceil(ways / 4) words holding two byte arrays, prev[ways] and next[ways], a doubly linked recency
 *     list; then the tags. A hit relinks one way, a fill reuses the least recent: no shifting of up to
 *     96 tags per hit (measured: Zen presets replayed 1.6-2x slower than Skylake ones before).
 *   ways > 255: row[0 .. ways-1] = the tags, most recent first (entries move on a hit or a fill).
 * Empty ways hold -1 (real tags are >= 0) and sit at the least recent end of the order, so a fill
 * takes an empty way before it evicts, exactly as the shifting list drops its last element. Only the
 * ordered list of valid tags is observable (hits, evictions), and both layouts keep the same list.
 * -------------------------------------------------------------------------------------------*/
/* Which layout a set of `ways` ways has (see above). */
typedef struct {
    int64_t ways;
    int packed;     /* ways <= 16: an order word per set, tags in place */
    int fp;         /* packed and ways > 4: two fingerprint words before the tags */
    int linked;     /* 17 <= ways <= 255: a linked recency list, fingerprints, tags in place */
} LruShape;

#define LRU_LINKED_MAX 255

static inline __attribute__((always_inline)) LruShape lru_shape_of(int64_t ways) {
    return (LruShape){ways, ways <= 16, ways > 4 && ways <= 16, ways > 16 && ways <= LRU_LINKED_MAX};
}

typedef struct {
    int64_t off;    /* first word of the array in the shared buffer */
    int64_t sets;
    int64_t ways;
    int64_t mask;   /* sets - 1 when sets is a power of two, else -1 (avoids a division per lookup) */
    int64_t stride; /* words per set: see lru_row_words */
    LruShape shape; /* lru_shape_of(ways) */
} Lru;

/* The shape of array a, from its ways when they are known at compile time (W > 0, a specialised loop:
 * every layout test folds away), else as stored. */
static inline __attribute__((always_inline)) LruShape lru_shape(const Lru *a, const int W) {
    return W ? lru_shape_of(W) : a->shape;
}

#define LRU_NIBBLES 0x1111111111111111ULL
#define LRU_BYTES 0x0101010101010101ULL

/* Linked rows: words of fingerprints and of the prev/next byte arrays before the tags. */
static inline __attribute__((always_inline)) int64_t linked_fp_words(int64_t ways) { return (ways + 7) / 8; }
static inline __attribute__((always_inline)) int64_t linked_link_words(int64_t ways) { return (2 * ways + 7) / 8; }

/* Words one set of `ways` ways takes in the shared buffer. */
static inline __attribute__((always_inline)) int64_t lru_row_words(int64_t ways) {
    if (ways > LRU_LINKED_MAX) return ways;
    if (ways > 16) return 1 + linked_fp_words(ways) + linked_link_words(ways) + ways;
    return ways > 4 ? ways + 3 : ways + 1;
}

/* Words the array of `entries` / `ways` sets takes in the shared buffer. */
static inline __attribute__((always_inline)) int64_t lru_words(int64_t entries, int64_t ways) { return entries / ways * lru_row_words(ways); }

static inline void lru_geometry(Lru *a, int64_t off, int64_t entries, int64_t ways) {
    a->off = off;
    a->ways = ways;
    a->sets = entries / ways;
    a->mask = (a->sets & (a->sets - 1)) == 0 ? a->sets - 1 : -1;
    a->shape = lru_shape_of(ways);
    a->stride = lru_row_words(ways);
}

/* The 8-bit fingerprint of a tag (top byte of a multiplicative hash: independent of the set index). */
static inline __attribute__((always_inline)) uint64_t lru_fingerprint(int64_t tag) { return ((uint64_t)tag * 0x9E3779B97F4A7C15ULL) >> 56; }

/* Way of `tag` in a row of W tags (packed rows of at most 4 ways, shifted rows), or -1: a bitmask of independent compares (no serial dependency, no
 * branch on the match position, which is unpredictable on random traces; tags are unique in a set). */
#define FIND_IN_ROW(W)                                                                               \
    static inline __attribute__((always_inline)) int find_##W(const int64_t *row, int64_t tag) {     \
        uint32_t m = 0;                                                                              \
        _Pragma("GCC unroll 16") for (int w = 0; w < W; w++) m |= (uint32_t)(row[w] == tag) << w;   \
        return m ? __builtin_ctz(m) : -1;                                                            \
    }
FIND_IN_ROW(1)
FIND_IN_ROW(2)
FIND_IN_ROW(4)

#if defined(__SSE2__)
/* Way of `tag` among the 8 tags t[0..7], or -1: all 8 compared at once (SSE2, in every x86-64), no
 * fingerprint. Halves of each 64-bit tag compared as 32-bit lanes, packed to one byte each: bits 2w and
 * 2w + 1 of the mask are the halves of way w (tags are unique in a set). */
static inline __attribute__((always_inline)) int find_8_simd(const int64_t *t, int64_t tag) {
    __m128i k = _mm_set1_epi64x(tag);
    __m128i c0 = _mm_cmpeq_epi32(_mm_loadu_si128((const __m128i *)t), k);
    __m128i c1 = _mm_cmpeq_epi32(_mm_loadu_si128((const __m128i *)(t + 2)), k);
    __m128i c2 = _mm_cmpeq_epi32(_mm_loadu_si128((const __m128i *)(t + 4)), k);
    __m128i c3 = _mm_cmpeq_epi32(_mm_loadu_si128((const __m128i *)(t + 6)), k);
    unsigned m = (unsigned)_mm_movemask_epi8(_mm_packs_epi16(_mm_packs_epi32(c0, c1), _mm_packs_epi32(c2, c3)));
    m &= (m >> 1) & 0x5555u;
    return m ? __builtin_ctz(m) >> 1 : -1;
}
#define LRU_FIND_8_SIMD 1
#else
#define LRU_FIND_8_SIMD 0
#endif

static inline __attribute__((always_inline)) int find_any(const int64_t *row, int64_t ways, int64_t tag) {
    switch (ways) {
    case 1: return find_1(row, tag);
    case 2: return find_2(row, tag);
    case 4: return find_4(row, tag);
    default:
        for (int64_t w = 0; w < ways; w++)
            if (row[w] == tag) return (int)w;
        return -1;
    }
}

/* Candidate ways (bit 8 w + 7) of one fingerprint word whose byte equals the broadcast fingerprint `b`:
 * the classic zero-byte test; a borrow can only flag bytes above a true match, and every candidate is
 * checked against its tag anyway. */
static inline __attribute__((always_inline)) uint64_t fp_candidates(uint64_t word, uint64_t b) {
    uint64_t x = word ^ b;
    return (x - LRU_BYTES) & ~x & (LRU_BYTES << 7);
}

/* Way of `tag` in a row whose fingerprints start at row[1] (packed rows of 5-16 ways, linked rows) and
 * whose tags are `t`, or -1: fingerprints propose, tags decide. */
static inline __attribute__((always_inline)) int fp_find_with(const int64_t *row, const int64_t *t, int64_t ways,
                                                             int64_t tag, uint64_t fp) {
    uint64_t b = fp * LRU_BYTES;
    int64_t words = (ways + 7) / 8;
    for (int64_t k = 0; k < words; k++) {
        uint64_t m = fp_candidates((uint64_t)row[1 + k], b);
        if (k == words - 1 && (ways & 7)) m &= (1ULL << (8 * (ways & 7))) - 1;  /* bytes of no way */
        while (m) {
            int w = (int)(8 * k) + (__builtin_ctzll(m) >> 3);
            if (t[w] == tag) return w;
            m &= m - 1;
        }
    }
    return -1;
}

static inline __attribute__((always_inline)) int fp_find(const int64_t *row, const int64_t *t, int64_t ways,
                                                        int64_t tag) {
    return fp_find_with(row, t, ways, tag, lru_fingerprint(tag));
}

/* Set the fingerprint of way w (fingerprints start at row[1]) to `fp`. */
static inline __attribute__((always_inline)) void fp_set_with(int64_t *row, int w, uint64_t fp) {
    uint64_t *fw = (uint64_t *)&row[1 + (w >> 3)];
    int sh = 8 * (w & 7);
    *fw = (*fw & ~(0xFFULL << sh)) | (fp << sh);
}

/* Set the fingerprint of way w (fingerprints start at row[1]) to tag's. */
static inline __attribute__((always_inline)) void fp_set(int64_t *row, int w, int64_t tag) {
    fp_set_with(row, w, lru_fingerprint(tag));
}

/* Mask of the order word's first `ways` nibbles. */
static inline __attribute__((always_inline)) uint64_t order_mask(int64_t ways) { return ways >= 16 ? ~0ULL : (1ULL << (4 * ways)) - 1; }

/* Position (0 = most recent) of way w in an order word: its lowest zero nibble after xor-ing w into
 * every nibble (borrows only run upward from a zero nibble, so the lowest flagged nibble is exact). */
static inline __attribute__((always_inline)) int order_pos(uint64_t ord, int w) {
    uint64_t x = ord ^ (LRU_NIBBLES * (uint64_t)w);
    uint64_t z = (x - LRU_NIBBLES) & ~x & (LRU_NIBBLES << 3);
    return __builtin_ctzll(z) >> 2;
}

/* The order with way w (at position p) moved to the front. */
static inline __attribute__((always_inline)) uint64_t order_touch(uint64_t ord, int w, int p) {
    uint64_t below = (1ULL << (4 * p)) - 1;           /* positions < p (p <= 15) */
    uint64_t above = ~below << 4;                      /* positions > p (none when p = 15) */
    return (ord & above) | ((ord & below) << 4) | (uint64_t)w;
}

/* ---- linked rows (17..255 ways) ---- */
static inline __attribute__((always_inline)) uint8_t *linked_prev(int64_t *row, int64_t ways) {
    return (uint8_t *)(row + 1 + linked_fp_words(ways));
}
static inline __attribute__((always_inline)) int64_t *linked_tags(int64_t *row, int64_t ways) {
    return row + 1 + linked_fp_words(ways) + linked_link_words(ways);
}

/* Move way w to the most recent end of a linked row's list. */
static inline void linked_touch(int64_t *row, int64_t ways, int w) {
    uint64_t ht = (uint64_t)row[0];
    int head = (int)(ht & 255), tail = (int)((ht >> 8) & 255);
    if (w == head) return;
    uint8_t *prev = linked_prev(row, ways), *next = prev + ways;
    int p = prev[w];
    next[p] = next[w];
    if (w == tail) tail = p;
    else prev[next[w]] = (uint8_t)p;
    next[w] = (uint8_t)head;
    prev[head] = (uint8_t)w;
    row[0] = (int64_t)((uint64_t)w | ((uint64_t)tail << 8));
}

/* Move way w to the least recent end of a linked row's list (an invalidated way: the next fill's). */
static inline void linked_to_tail(int64_t *row, int64_t ways, int w) {
    uint64_t ht = (uint64_t)row[0];
    int head = (int)(ht & 255), tail = (int)((ht >> 8) & 255);
    if (w == tail) return;
    uint8_t *prev = linked_prev(row, ways), *next = prev + ways;
    if (w == head) head = next[w];
    else next[prev[w]] = next[w];
    prev[next[w]] = prev[w];
    prev[w] = (uint8_t)tail;
    next[tail] = (uint8_t)w;
    row[0] = (int64_t)((uint64_t)head | ((uint64_t)w << 8));
}


/* The row of set `index mod sets`, for an array of W ways when W > 0 (a compile-time constant in the
 * specialised record loops: the stride folds), else of a->ways. */
static inline __attribute__((always_inline)) int64_t *lru_set_w(int64_t *tags, const Lru *a, uint64_t index,
                                                                 const int W) {
    uint64_t s = a->mask >= 0 ? (index & (uint64_t)a->mask) : (index % (uint64_t)a->sets);
    return tags + a->off + (int64_t)s * (W ? lru_row_words(W) : a->stride);
}

/* Look `tag` up in `row` (a set of array a); a hit becomes most recent. W: the array's ways when known
 * at compile time (then every layout test below folds away), else 0. */
static inline __attribute__((always_inline)) int lru_lookup_row(int64_t *row, const Lru *a, int64_t tag,
                                                                const int W) {
    LruShape sh = lru_shape(a, W);
    int64_t ways = sh.ways;
    if (sh.packed) {
        uint64_t ord = (uint64_t)row[0];
        const int64_t *t = row + (sh.fp ? 3 : 1);
        /* the most recent way first: a hit there changes nothing (measured: most TLB hits of streaming
         * traces, found with one compare instead of a search and an order update; the PSCs and the nested
         * TLB, whose hits fall at any way, search at once: lru_access_row) */
        if (t[ord & 15] == tag) return 1;
        int w = sh.fp ? fp_find(row, t, ways, tag) : find_any(t, ways, tag);
        if (w < 0) return 0;
        row[0] = (int64_t)order_touch(ord, w, order_pos(ord, w));
        return 1;
    }
    if (sh.linked) {
        const int64_t *t = linked_tags(row, ways);
        if (t[row[0] & 255] == tag) return 1;  /* the most recent way */
        int w = fp_find(row, t, ways, tag);
        if (w < 0) return 0;
        linked_touch(row, ways, w);
        return 1;
    }
    if (row[0] == tag) return 1;
    int64_t hit = find_any(row, ways, tag);
    if (hit < 0) return 0;
    for (int64_t x = hit; x > 0; x--) row[x] = row[x - 1];
    row[0] = tag;
    return 1;
}

/* Insert `tag` (known absent) into `row` as most recent, evicting the least recent of a full set. */
static inline __attribute__((always_inline)) void lru_fill_row(int64_t *row, const Lru *a, int64_t tag,
                                                               const int W) {
    LruShape sh = lru_shape(a, W);
    int64_t ways = sh.ways;
    if (sh.packed) {
        uint64_t ord = (uint64_t)row[0];
        uint64_t victim = (ord >> (4 * (ways - 1))) & 15;
        if (sh.fp) {
            fp_set(row, (int)victim, tag);
            row[3 + victim] = tag;
        } else {
            row[1 + victim] = tag;
        }
        row[0] = (int64_t)(((ord << 4) | victim) & order_mask(ways));
        return;
    }
    if (sh.linked) {
        int victim = (int)(((uint64_t)row[0] >> 8) & 255);
        linked_tags(row, ways)[victim] = tag;
        fp_set(row, victim, tag);
        linked_touch(row, ways, victim);
        return;
    }
    for (int64_t x = ways - 1; x > 0; x--) row[x] = row[x - 1];
    row[0] = tag;
}

/* Look `tag` up in `row` and, when it misses, fill it: lru_lookup_row then lru_fill_row on a miss, with
 * one search and one fingerprint (the PSCs and the nested TLB fill every level a walk missed and nothing
 * else touches their arrays in between, so they can fill at once). Returns 1 on a hit. Unlike
 * lru_lookup_row it does not try the most recent way first: whether a PSC or nested-TLB lookup hits
 * there is close to random on walk-heavy traces, and the mispredicted branch and the dependent load
 * (the order word, then that way's tag) cost more than the search they save (pairs of runs, nested
 * baseline-4k: pchase 1.085x, big chase 1.068x, sparse with zen4 1.063x faster, for 4-5 % more
 * instructions). */
static inline __attribute__((always_inline)) int lru_access_row(int64_t *row, const Lru *a, int64_t tag,
                                                                const int W) {
    LruShape sh = lru_shape(a, W);
    if (!sh.packed) {
        if (lru_lookup_row(row, a, tag, W)) return 1;
        lru_fill_row(row, a, tag, W);
        return 0;
    }
    int64_t ways = sh.ways;
    uint64_t ord = (uint64_t)row[0];
    int64_t *t = row + (sh.fp ? 3 : 1);
    /* 8 ways (the presets' PSC level 3 and nested TLB): the tags compared at once, no fingerprints (why
     * that is safe: the layout comment above; callgrind sparse baseline-4k: 304.2 -> 285.0 M, pchase
     * 287.5 -> 276.0 M; pairs sparse 1.03-1.06x, pchase 0.97-1.00x, big chase 1.00x) */
    const int simd8 = LRU_FIND_8_SIMD && W == 8;
    uint64_t fp = sh.fp && !simd8 ? lru_fingerprint(tag) : 0;
    int w;
#if LRU_FIND_8_SIMD
    if (simd8) w = find_8_simd(t, tag);
    else
#endif
    w = sh.fp ? fp_find_with(row, t, ways, tag, fp) : find_any(t, ways, tag);
    if (w >= 0) {
        row[0] = (int64_t)order_touch(ord, w, order_pos(ord, w));
        return 1;
    }
    uint64_t victim = (ord >> (4 * (ways - 1))) & 15;
    if (sh.fp && !simd8) fp_set_with(row, (int)victim, fp);
    t[victim] = tag;
    row[0] = (int64_t)(((ord << 4) | victim) & order_mask(ways));
    return 0;
}

/* lru_lookup_row / lru_fill_row with the ways of the common geometries (PSCs, nested TLBs, TLB arrays
 * of the CPU presets) made constant by a switch: a predictable jump instead of the run-time layout tests
 * (callgrind, nested baseline-4k on the big random chase: the PSC and nested-TLB operations were most of
 * a walk's instructions). */
static inline __attribute__((always_inline)) int lru_lookup_any(int64_t *row, const Lru *a, int64_t tag) {
    switch (a->ways) {
    case 4: return lru_lookup_row(row, a, tag, 4);
    case 8: return lru_lookup_row(row, a, tag, 8);
    case 12: return lru_lookup_row(row, a, tag, 12);
    case 16: return lru_lookup_row(row, a, tag, 16);
    default: return lru_lookup_row(row, a, tag, 0);
    }
}

static inline __attribute__((always_inline)) void lru_fill_any(int64_t *row, const Lru *a, int64_t tag) {
    switch (a->ways) {
    case 4: lru_fill_row(row, a, tag, 4); return;
    case 8: lru_fill_row(row, a, tag, 8); return;
    case 12: lru_fill_row(row, a, tag, 12); return;
    case 16: lru_fill_row(row, a, tag, 16); return;
    default: lru_fill_row(row, a, tag, 0); return;
    }
}

static inline __attribute__((always_inline)) int lru_access_any(int64_t *row, const Lru *a, int64_t tag) {
    switch (a->ways) {
    case 4: return lru_access_row(row, a, tag, 4);
    case 8: return lru_access_row(row, a, tag, 8);
    case 12: return lru_access_row(row, a, tag, 12);
    case 16: return lru_access_row(row, a, tag, 16);
    default: return lru_access_row(row, a, tag, 0);
    }
}

static inline __attribute__((always_inline)) int lru_lookup(int64_t *tags, const Lru *a, uint64_t index, int64_t tag) {
    return lru_lookup_any(lru_set_w(tags, a, index, 0), a, tag);
}

static inline __attribute__((always_inline)) void lru_fill(int64_t *tags, const Lru *a, uint64_t index, int64_t tag) {
    lru_fill_any(lru_set_w(tags, a, index, 0), a, tag);
}

/* Invalidate: remove `tag` from its set; the other entries keep their order (docs/model.md section 9). */
static void lru_invalidate(int64_t *tags, const Lru *a, uint64_t index, int64_t tag) {
    int64_t *row = lru_set_w(tags, a, index, 0);
    int64_t ways = a->ways;
    if (a->shape.packed) {
        int64_t *t = row + (a->shape.fp ? 3 : 1);
        int w = a->shape.fp ? fp_find(row, t, ways, tag) : find_any(t, ways, tag);
        if (w < 0) return;
        t[w] = -1;  /* its fingerprint may stay: an empty way never matches a tag */
        /* the way leaves its position and becomes the least recent (an empty way) */
        uint64_t ord = (uint64_t)row[0];
        int p = order_pos(ord, w);
        uint64_t below = (1ULL << (4 * p)) - 1;
        uint64_t moved = (ord & below) | ((ord >> 4) & ~below);  /* position ways-1 now 0 (invariant) */
        row[0] = (int64_t)(moved | ((uint64_t)w << (4 * (ways - 1))));
        return;
    }
    if (a->shape.linked) {
        int64_t *t = linked_tags(row, ways);
        int w = fp_find(row, t, ways, tag);
        if (w < 0) return;
        t[w] = -1;  /* its fingerprint may stay: an empty way never matches a tag */
        linked_to_tail(row, ways, w);
        return;
    }
    for (int64_t w = 0; w < ways; w++) {
        if (row[w] == tag) {
            for (int64_t x = w; x < ways - 1; x++) row[x] = row[x + 1];
            row[ways - 1] = -1;
            return;
        }
    }
}

/* Empty every set: all ways invalid, the order 0, 1, ..., ways-1. */
static void lru_empty(int64_t *tags, const Lru *a) {
    if (a->shape.packed) {
        uint64_t ident = 0;
        for (int64_t w = a->ways - 1; w >= 0; w--) ident = (ident << 4) | (uint64_t)w;
        for (int64_t s = 0; s < a->sets; s++) {
            int64_t *row = tags + a->off + s * a->stride;
            row[0] = (int64_t)ident;
            for (int64_t w = 1; w < a->stride; w++) row[w] = a->shape.fp && w < 3 ? 0 : -1;
        }
        return;
    }
    if (a->shape.linked) {
        int64_t W = a->ways;
        for (int64_t s = 0; s < a->sets; s++) {
            int64_t *row = tags + a->off + s * a->stride;
            row[0] = (int64_t)((uint64_t)(W - 1) << 8);  /* head 0, tail W-1 */
            for (int64_t k = 0; k < linked_fp_words(W); k++) row[1 + k] = 0;
            uint8_t *prev = linked_prev(row, W), *next = prev + W;
            for (int64_t w = 0; w < W; w++) {
                prev[w] = (uint8_t)(w > 0 ? w - 1 : 0);
                next[w] = (uint8_t)(w + 1 < W ? w + 1 : 0);
            }
            int64_t *t = linked_tags(row, W);
            for (int64_t w = 0; w < W; w++) t[w] = -1;
        }
        return;
    }
    int64_t n = a->sets * a->ways;
    for (int64_t i = 0; i < n; i++) tags[a->off + i] = -1;
}

#endif /* MEMMODEL_CORE_LRU_H */
