/* memmodel's engine core: the canonical model (MODEL.md v2, sections 1-9) in C.
 *
 * One Engine object holds the state of one replay of one config. Python (memmodel.engine.replay) builds
 * it from a resolved config, feeds it batches of trace records and reads counters, the walk-length
 * histogram and the time series. No I/O and no Python objects in the model code below the glue.
 *
 * Layout (state you can name):
 *   Lru     one set-associative true-LRU array (TLB array, PSC, nested TLB): `ways` tags per set, most
 *           recent first, -1 = empty way. All arrays live in one int64 `tags` buffer.
 *   Buddy   one side's allocator: a bitmap per order 0..18 (bit i of order o = frames [i<<o, (i+1)<<o)
 *           are a free block), nr_free per order, a lowest-free-word hint per order, and for
 *           placement = "random" a Fenwick tree of per-word popcounts per order (k-th free block in
 *           O(log n)). Free space is always the canonical decomposition (frees merge with free buddies).
 *   Guest   the guest's page tables as a radix tree that mirrors MODEL.md section 2: the root's children
 *           (level-2 tables, identified by v >> (12 + 9 (L-1)), unbounded for non-canonical addresses)
 *           in a small hash table; every table node has 512 entries, each with an optional child table
 *           and an optional leaf mapping of the entry's size (a table may exist under an entry that
 *           holds a huge page: tables are never freed). `nmap` counts the leaf mappings below a node,
 *           so "the aligned region around v holds no mapping" is one descent.
 *   Host    per guest-physical 4 KiB frame: the host page shift backing it (0 = unbacked), the host
 *           frame, an ever-backed flag; per 2 MiB / 1 GiB guest-physical region: backed frame counts;
 *           per host table level: a presence array (host tables are identified by gpa, bounded by
 *           guest memory).
 *   Slots   a hash table from 4 KiB virtual page to a slot caching what its translations need
 *           (guest frame, guest shift gs, effective shift es = min(gs, hs)) and the generation it was
 *           computed in. A slot exists iff the page was ever translated (touched_bytes). Faults only
 *           add mappings, so a cached slot stays valid until a release changes a mapping or a backing:
 *           every such event bumps the generation, and a stale slot is recomputed on its next use.
 *
 * Exactness of the shortcuts (docs/model.md states the argument; the differential tests prove it):
 *   - Repeat collapsing: after a full translation of page p, p's TLB entry is the most recent entry of
 *     the L1 array that holds its size (or of the L2 array when no L1 array holds it). Another
 *     translation of p before any event is therefore a hit that changes no LRU order and no other
 *     state: it is counted directly. Events (a U record, a reporting pass) end the collapse.
 *   - 4 KiB L1 fast path (every entry is 4 KiB: guest or host page size 4K): an L1 hit on tag
 *     (4K, p) proves p was translated, mapped and backed since its entry was filled, because every
 *     release that unmaps p or discards its backing invalidates or flushes p's entries (section 9);
 *     so the hit needs no page lookup.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef unsigned __int128 u128;

/* ---------------------------------------------------------------------------------------------
 * Counters: one declarative table gives the enum, the exported names and their order.
 * -------------------------------------------------------------------------------------------*/
#define COUNTERS(X)                                                                                  \
    X(INSTRUCTIONS, "instructions") X(ACCESSES, "accesses") X(L1_HITS, "l1_hits")                    \
    X(L2_HITS, "l2_hits") X(WALKS, "walks") X(GUEST_PTE_LOADS, "guest_pte_loads")                   \
    X(HOST_PTE_LOADS, "host_pte_loads") X(PSC_GUEST_HITS, "psc_guest_hits")                         \
    X(NTLB_HITS, "ntlb_hits") X(NTLB_MISSES, "ntlb_misses") X(GUEST_FAULTS, "guest_faults")         \
    X(GUEST_FALLBACKS, "guest_fallbacks") X(GUEST_PAGES_4K, "guest_pages_4k")                       \
    X(GUEST_PAGES_2M, "guest_pages_2m") X(GUEST_PAGES_1G, "guest_pages_1g")                         \
    X(GUEST_PT_PAGES, "guest_pt_pages") X(GUEST_ZEROED_BYTES, "guest_zeroed_bytes")                 \
    X(HOST_FAULTS, "host_faults") X(HOST_FALLBACKS, "host_fallbacks")                               \
    X(HOST_PAGES_4K, "host_pages_4k") X(HOST_PAGES_2M, "host_pages_2m")                             \
    X(HOST_PAGES_1G, "host_pages_1g") X(HOST_PT_PAGES, "host_pt_pages")                             \
    X(HOST_BACKED_BYTES, "host_backed_bytes") X(HOST_ZEROED_BYTES, "host_zeroed_bytes")             \
    X(TOUCHED_PAGES, "touched_pages") X(UNMAPS, "unmaps") X(GUEST_FREED_BYTES, "guest_freed_bytes") \
    X(GUEST_SPLITS, "guest_splits") X(HOST_SPLITS, "host_splits")                                   \
    X(HOST_DISCARDS, "host_discards") X(HOST_FREED_BYTES, "host_freed_bytes")                       \
    X(REPORT_TICKS, "report_ticks") X(TLB_FLUSHES, "tlb_flushes")                                   \
    X(TLB_PAGE_INVALIDATIONS, "tlb_page_invalidations")                                             \
    X(GUEST_RESIDENT_BYTES, "guest_resident_bytes") X(HOST_RESIDENT_BYTES, "host_resident_bytes")   \
    X(HOST_RESIDENT_PEAK_BYTES, "host_resident_peak_bytes")                                         \
    X(GUEST_ZEROED_REFAULT_BYTES, "guest_zeroed_refault_bytes")                                     \
    X(HOST_ZEROED_REFAULT_BYTES, "host_zeroed_refault_bytes")

#define X_ENUM(id, name) C_##id,
enum { COUNTERS(X_ENUM) N_COUNTERS };
#define X_NAME(id, name) name,
static const char *COUNTER_NAME[] = {COUNTERS(X_NAME)};

/* Time-series columns (cumulative values after `translations` translations). */
#define SERIES(X)                                                                                    \
    X(TRANSLATIONS, "translations") X(L1_HITS, "l1_hits") X(L2_HITS, "l2_hits") X(WALKS, "walks")   \
    X(WALK_LOADS, "walk_loads") X(GUEST_FAULTS, "guest_faults") X(HOST_FAULTS, "host_faults")       \
    X(HOST_BACKED, "host_backed_bytes") X(GUEST_ZEROED, "guest_zeroed_bytes")                       \
    X(HOST_ZEROED, "host_zeroed_bytes") X(HOST_RESIDENT, "host_resident_bytes")                     \
    X(GUEST_RESIDENT, "guest_resident_bytes") X(TLB_FLUSHES, "tlb_flushes")                         \
    X(HOST_DISCARDS, "host_discards") X(UNMAPS, "unmaps")
#define X_SENUM(id, name) S_##id,
enum { SERIES(X_SENUM) N_SERIES };
static const char *SERIES_NAME[] = {SERIES(X_NAME)};

#define MAX_ORDER 18
#define HIST_SIZE 64
#define NO_ARRAY (-1)

enum { ST_OK = 0, ST_OOM_GUEST = 2, ST_OOM_HOST = 3, ST_NOMEM = 4 };
enum { KIND_I = 0, KIND_L = 1, KIND_S = 2, KIND_M = 3, KIND_U = 4 };
enum { OUT_L1 = 1, OUT_L2 = 2, OUT_WALK = 3 }; /* memmodel.trace.schema TLB_* codes */

static inline uint64_t splitmix64(uint64_t x) {
    uint64_t z = x + 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

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
    uint64_t allocs;              /* successful allocations so far (i of MODEL.md section 2) */
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

static int buddy_build(Buddy *b, int64_t frames, const int64_t *removed, int64_t n_removed, int random,
                       uint64_t seed) {
    memset(b, 0, sizeof(*b));
    b->frames = frames;
    b->random = random;
    b->seed_mix = splitmix64(seed ^ 0xA5A5A5A5ULL);
    for (int o = 0; o <= MAX_ORDER; o++) {
        b->nwords[o] = ((frames >> o) + 63) / 64 + 1;
        b->bits[o] = (uint64_t *)calloc((size_t)b->nwords[o], sizeof(uint64_t));
        if (!b->bits[o]) return ST_NOMEM;
        if (random) {
            b->fen[o] = (int32_t *)calloc((size_t)b->nwords[o] + 1, sizeof(int32_t));
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
        free(b->bits[o]);
        free(b->fen[o]);
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

/* alloc(order) of MODEL.md section 2: the first frame, or -1 when no block of order >= `order` is free. */
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

/* ---------------------------------------------------------------------------------------------
 * Guest page tables (radix tree) and the virtual-page slot cache
 * -------------------------------------------------------------------------------------------*/
typedef struct {
    int64_t gframe;       /* guest frame of this table (its guest-physical address >> 12) */
    int64_t nmap;         /* leaf mappings in this table and below */
    int32_t child[512];   /* node index of the next-level table under each entry, -1 = none */
    int64_t map[512];     /* leaf mapping of this entry's size: its first guest frame + 1, 0 = none */
} Node;

typedef struct {          /* open addressing, linear probing; key 0 = empty (keys are stored + 1) */
    uint64_t *keys;
    int64_t *vals;
    int64_t cap;          /* power of two */
    int64_t used;
} Hash;

static int hash_init(Hash *h, int64_t cap) {
    h->cap = cap;
    h->used = 0;
    h->keys = (uint64_t *)calloc((size_t)cap, sizeof(uint64_t));
    h->vals = (int64_t *)malloc((size_t)cap * sizeof(int64_t));
    return (h->keys && h->vals) ? ST_OK : ST_NOMEM;
}

static inline uint64_t hash_slot(uint64_t key, int64_t cap) {
    return ((key * 0x9E3779B97F4A7C15ULL) >> 20) & (uint64_t)(cap - 1);
}

static inline int64_t hash_get(const Hash *h, uint64_t key) {
    uint64_t k = key + 1;
    uint64_t i = hash_slot(k, h->cap);
    for (;;) {
        uint64_t x = h->keys[i];
        if (x == k) return h->vals[i];
        if (x == 0) return -1;
        i = (i + 1) & (uint64_t)(h->cap - 1);
    }
}

static int hash_put(Hash *h, uint64_t key, int64_t val);

static int hash_grow(Hash *h) {
    Hash bigger;
    if (hash_init(&bigger, h->cap * 2) != ST_OK) {
        free(bigger.keys);
        free(bigger.vals);
        return ST_NOMEM;
    }
    for (int64_t i = 0; i < h->cap; i++)
        if (h->keys[i]) hash_put(&bigger, h->keys[i] - 1, h->vals[i]);
    free(h->keys);
    free(h->vals);
    *h = bigger;
    return ST_OK;
}

/* Insert (the key must be absent). */
static int hash_put(Hash *h, uint64_t key, int64_t val) {
    if (2 * (h->used + 1) > h->cap && hash_grow(h) != ST_OK) return ST_NOMEM;
    uint64_t k = key + 1;
    uint64_t i = hash_slot(k, h->cap);
    while (h->keys[i] != 0) i = (i + 1) & (uint64_t)(h->cap - 1);
    h->keys[i] = k;
    h->vals[i] = val;
    h->used++;
    return ST_OK;
}

typedef struct {
    int levels;
    int pshift;           /* preferred page shift */
    int zeroing;
    int unmap_passthrough;
    int64_t frames;
    Buddy buddy;
    Node *nodes;          /* tables of levels >= 2 */
    int64_t n_nodes, cap_nodes;
    Hash root;            /* level-2 table id -> node index */
    int64_t root_frame;
} Guest;

/* A translated 4 KiB virtual page: the hash-table entry is the slot itself (16 bytes: a lookup touches
 * one line, and the table of a few 10^4 pages stays in the L2 cache); what only walks read lives in a
 * parallel "cold" array at the same index (measured: one 64-byte entry per page cost ~25% of a
 * TLB-only replay in cache misses). */
typedef struct {
    uint64_t key;         /* page + 1; 0 = empty */
    uint32_t gen;         /* generation the entry was computed in */
    uint8_t gs, es;       /* guest page shift, effective TLB shift min(gs, hs) */
    uint16_t pad;
} Slot;

typedef struct {
    int64_t gframe;       /* guest frame of the page (4 KiB) */
    int64_t tbl[4];       /* guest frames of the page's guest tables at levels 2..5 */
} SlotCold;

typedef struct {
    Slot *e;
    SlotCold *cold;
    int64_t cap;          /* power of two */
    int64_t used;         /* = pages ever translated */
} Slots;

typedef struct {
    int levels;
    int pshift;
    int zeroing;
    Buddy buddy;
    uint8_t *shift;       /* per guest frame: host page shift backing it, 0 = unbacked */
    uint32_t *hframe;     /* per guest frame: host frame backing it */
    uint8_t *ever;        /* per guest frame: was ever host-backed (re-fault zeroing, an extra) */
    int32_t *occ2m;       /* per 2 MiB guest-physical region: backed frames */
    int32_t *occ1g;       /* per 1 GiB guest-physical region: backed frames */
    uint8_t *tbl[6];      /* per level 2..levels: host table present, indexed by gframe >> (9 (L-k+1)) */
} Host;

typedef struct {
    int virt;
    int64_t window;
    int report;
    int64_t report_interval;
    int report_order;
    int only_4k;
} Params;

typedef struct {
    PyObject_HEAD
    Params p;
    uint64_t C[N_COUNTERS];
    u128 unmapped_bytes;
    int64_t hist[HIST_SIZE];
    int64_t *tags;
    Lru *arrays;
    int n_arrays;
    int l1_of[3], l2_of[3];  /* TLB array holding entries of size code 0 (4K), 1 (2M), 2 (1G), or -1 */
    int gpsc[6], hpsc[6];    /* PSC array of a level 1..5, or -1 */
    int ntlb;
    Guest g;
    Host h;
    Slots slots;
    uint32_t gen;
    uint64_t clock;          /* I/L/S/M records so far (MODEL.md section 8) */
    /* repeat collapsing: the last translated page and the counter its repeats hit */
    uint64_t last_p4;
    int last_counter;        /* C_L1_HITS, C_L2_HITS, or -1 = no collapse */
    int last_es;             /* its effective TLB shift */
    int64_t to_snapshot;     /* translations until the next time-series row */
    int64_t *series;
    int64_t series_rows, series_cap;
    uint8_t *outcomes, *outcome_shifts;
    int64_t n_outcomes, cap_outcomes;
    int record_outcomes;
    int started;
} Engine;

static inline int leaf_level(int levels, int shift) { return levels - (shift - 12) / 9; }

static Node *node_new(Guest *g, int64_t gframe, int64_t *index) {
    if (g->n_nodes == g->cap_nodes) {
        int64_t cap = g->cap_nodes ? g->cap_nodes * 2 : 64;
        Node *bigger = (Node *)realloc(g->nodes, (size_t)cap * sizeof(Node));
        if (!bigger) return NULL;
        g->nodes = bigger;
        g->cap_nodes = cap;
    }
    Node *n = &g->nodes[g->n_nodes];
    n->gframe = gframe;
    n->nmap = 0;
    memset(n->child, 0xff, sizeof(n->child));
    memset(n->map, 0, sizeof(n->map));
    *index = g->n_nodes++;
    return n;
}

/* Shift of the address bits that index the entries of a level-k table. */
static inline int entry_shift(int levels, int k) { return 12 + 9 * (levels - k); }

/* Index of the level-k table (k >= 2) covering v, or -1 when it does not exist. */
static int64_t table_of(const Guest *g, uint64_t v, int k) {
    int L = g->levels;
    int64_t n = hash_get(&g->root, v >> entry_shift(L, 1));
    for (int lvl = 3; lvl <= k && n >= 0; lvl++)
        n = g->nodes[n].child[(v >> entry_shift(L, lvl - 1)) & 511];
    return n;
}

/* The guest mapping of v: returns its shift (0 = unmapped) and sets *gframe to v's 4 KiB guest frame. */
static int guest_lookup(const Guest *g, uint64_t v, int64_t *gframe) {
    int L = g->levels;
    int64_t n = hash_get(&g->root, v >> entry_shift(L, 1));
    for (int k = 2; k <= L && n >= 0; k++) {
        const Node *node = &g->nodes[n];
        int es = entry_shift(L, k);
        int idx = (int)((v >> es) & 511);
        if (node->map[idx]) {
            *gframe = node->map[idx] - 1 + (int64_t)((v >> 12) & ((1ULL << (es - 12)) - 1));
            return es;
        }
        n = node->child[idx];
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Host side (MODEL.md section 2: host faults, host touch; section 4: host translate)
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

static int psc_deepest_hit(Engine *e, const int *psc, int leaf, int levels, uint64_t page) {
    for (int j = leaf - 1; j >= 1; j--) {
        int a = psc[j];
        if (a >= 0) {
            uint64_t key = page >> (9 * (levels - j));
            if (lru_lookup(e->tags, &e->arrays[a], key, (int64_t)key)) return j;
        }
    }
    return 0;
}

static void psc_fill(Engine *e, const int *psc, int k, int leaf, int levels, uint64_t page) {
    for (int j = k + 1; j < leaf; j++) {
        int a = psc[j];
        if (a >= 0) {
            uint64_t key = page >> (9 * (levels - j));
            lru_fill(e->tags, &e->arrays[a], key, (int64_t)key);
        }
    }
}

/* Host-translate guest frame `frame` (backed); returns the host PTE loads. */
static int host_translate(Engine *e, int64_t frame) {
    Host *h = &e->h;
    int hs = h->shift[frame];
    int code = (hs - 12) / 9;
    uint64_t pfn = (uint64_t)frame >> (hs - 12);
    int H = h->levels - code;
    int64_t tag = (int64_t)((pfn << 2) | (uint64_t)code);
    if (e->ntlb >= 0 && lru_lookup(e->tags, &e->arrays[e->ntlb], pfn, tag)) {
        e->C[C_NTLB_HITS]++;
        return 0;
    }
    e->C[C_NTLB_MISSES]++;
    int kh = psc_deepest_hit(e, e->hpsc, H, h->levels, (uint64_t)frame);
    int loads = H - kh;
    e->C[C_HOST_PTE_LOADS] += (uint64_t)loads;
    psc_fill(e, e->hpsc, kh, H, h->levels, (uint64_t)frame);
    if (e->ntlb >= 0) lru_fill(e->tags, &e->arrays[e->ntlb], pfn, tag);
    return loads;
}

/* ---------------------------------------------------------------------------------------------
 * Guest fault (MODEL.md section 2)
 * -------------------------------------------------------------------------------------------*/
/* Whether the aligned region of shift s around v holds no guest mapping. */
static int guest_region_free(const Guest *g, uint64_t v, int s) {
    int L = g->levels;
    int k = leaf_level(L, s);
    int64_t t = table_of(g, v, k);
    if (t < 0) return 1;
    const Node *node = &g->nodes[t];
    int idx = (int)((v >> s) & 511);
    if (node->map[idx]) return 0;
    int32_t c = node->child[idx];
    return c < 0 || g->nodes[c].nmap == 0;
}

/* A guest table at level k covering v, allocated (zeroed, host-touched) when missing. */
static int guest_table(Engine *e, uint64_t v, int k, int64_t *out) {
    Guest *g = &e->g;
    int L = g->levels;
    int64_t t = table_of(g, v, k);
    if (t >= 0) { *out = t; return ST_OK; }
    /* the parent exists (tables are allocated top-down) */
    int64_t frame = buddy_alloc(&g->buddy, 0);
    if (frame < 0) return ST_OOM_GUEST;
    e->C[C_GUEST_PT_PAGES]++;
    int64_t idx;
    if (!node_new(g, frame, &idx)) return ST_NOMEM;
    if (k == 2) {
        if (hash_put(&g->root, v >> entry_shift(L, 1), idx) != ST_OK) return ST_NOMEM;
    } else {
        int64_t parent = table_of(g, v, k - 1);
        g->nodes[parent].child[(v >> entry_shift(L, k - 1)) & 511] = (int32_t)idx;
    }
    if (e->p.virt) {
        int st = host_touch(e, frame, 1);
        if (st) return st;
    }
    *out = idx;
    return ST_OK;
}

/* Add 1 to nmap of every table on the path of v from level 2 to level k. */
static void guest_count_path(Guest *g, uint64_t v, int k, int64_t delta) {
    int L = g->levels;
    int64_t n = hash_get(&g->root, v >> entry_shift(L, 1));
    for (int lvl = 2; lvl <= k && n >= 0; lvl++) {
        g->nodes[n].nmap += delta;
        if (lvl < k) n = g->nodes[n].child[(v >> entry_shift(L, lvl)) & 511];
    }
}

static int guest_fault(Engine *e, uint64_t v, int refault) {
    Guest *g = &e->g;
    int L = g->levels;
    int s = 0;
    for (int cand = 30; cand >= 12; cand -= 9) {
        if (cand > g->pshift) continue;
        if (cand > 12 && !guest_region_free(g, v, cand)) continue;
        if (buddy_can_alloc(&g->buddy, cand - 12)) { s = cand; break; }
    }
    if (s == 0) return ST_OOM_GUEST;
    int leaf = leaf_level(L, s);
    int64_t t = -1;
    for (int k = 2; k <= leaf; k++) {
        int st = guest_table(e, v, k, &t);
        if (st) return st;
    }
    int64_t data = buddy_alloc(&g->buddy, s - 12);
    if (data < 0) return ST_OOM_GUEST;
    g->nodes[t].map[(v >> s) & 511] = data + 1;
    guest_count_path(g, v, leaf, 1);
    e->C[C_GUEST_FAULTS]++;
    e->C[C_GUEST_PAGES_4K + (s - 12) / 9]++;
    if (s < g->pshift) e->C[C_GUEST_FALLBACKS]++;
    e->C[C_GUEST_RESIDENT_BYTES] += 1ULL << s;
    if (g->zeroing) {
        e->C[C_GUEST_ZEROED_BYTES] += 1ULL << s;
        if (refault) e->C[C_GUEST_ZEROED_REFAULT_BYTES] += 1ULL << s;
        if (e->p.virt) {
            int st = host_touch(e, data, (int64_t)1 << (s - 12));
            if (st) return st;
        }
    }
    return ST_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Slots: what a 4 KiB virtual page's translations need
 * -------------------------------------------------------------------------------------------*/
static int slots_init(Slots *t, int64_t cap) {
    t->e = (Slot *)calloc((size_t)cap, sizeof(Slot));
    t->cold = (SlotCold *)malloc((size_t)cap * sizeof(SlotCold));
    t->cap = cap;
    t->used = 0;
    return (t->e && t->cold) ? ST_OK : ST_NOMEM;
}

static inline SlotCold *cold_of(const Slots *t, const Slot *x) { return &t->cold[x - t->e]; }

static inline Slot *slot_find(const Slots *t, uint64_t p4) {
    uint64_t k = p4 + 1;
    uint64_t i = hash_slot(k, t->cap);
    for (;;) {
        Slot *x = &t->e[i];
        if (x->key == k) return x;
        if (x->key == 0) return NULL;
        i = (i + 1) & (uint64_t)(t->cap - 1);
    }
}

/* A new (zeroed) slot for p4, which must be absent; grows the table at half load. */
static Slot *slot_insert(Slots *t, uint64_t p4) {
    if (2 * (t->used + 1) > t->cap) {
        Slots bigger;
        if (slots_init(&bigger, t->cap * 2) != ST_OK) {
            free(bigger.e);
            free(bigger.cold);
            return NULL;
        }
        for (int64_t j = 0; j < t->cap; j++) {
            if (!t->e[j].key) continue;
            uint64_t i = hash_slot(t->e[j].key, bigger.cap);
            while (bigger.e[i].key) i = (i + 1) & (uint64_t)(bigger.cap - 1);
            bigger.e[i] = t->e[j];
            bigger.cold[i] = t->cold[j];
        }
        bigger.used = t->used;
        free(t->e);
        free(t->cold);
        *t = bigger;
    }
    uint64_t k = p4 + 1;
    uint64_t i = hash_slot(k, t->cap);
    while (t->e[i].key) i = (i + 1) & (uint64_t)(t->cap - 1);
    t->e[i].key = k;
    t->used++;
    return &t->e[i];
}

/* Resolve page p4 (steps 1-2 of MODEL.md section 3): guest fault if unmapped, host fault if unbacked;
 * fill its slot. */
static int resolve(Engine *e, uint64_t p4, Slot **slot_io) {
    Slot *slot = *slot_io;
    int refault = slot != NULL;  /* translated before: a fault now is a re-fault after a release */
    uint64_t v = p4 << 12;
    int64_t gframe = 0;
    int gs = guest_lookup(&e->g, v, &gframe);
    if (gs == 0) {
        int st = guest_fault(e, v, refault);
        if (st) return st;
        gs = guest_lookup(&e->g, v, &gframe);
    }
    int es = gs;
    if (e->p.virt) {
        if (e->h.shift[gframe] == 0) {
            int st = host_fault(e, gframe);
            if (st) return st;
        }
        int hs = e->h.shift[gframe];
        if (hs < es) es = hs;
    }
    if (slot == NULL) {
        slot = slot_insert(&e->slots, p4);
        if (!slot) return ST_NOMEM;
        e->C[C_TOUCHED_PAGES]++;
        *slot_io = slot;
    }
    SlotCold *cold = cold_of(&e->slots, slot);
    cold->gframe = gframe;
    slot->gs = (uint8_t)gs;
    slot->es = (uint8_t)es;
    slot->gen = e->gen;
    /* the guest tables on the page's path (levels 2..leaf(gs)): tables are never freed, and a page
     * whose size changes gets a new generation, so these stay right while the slot is current */
    Guest *g = &e->g;
    int L = g->levels;
    int G = leaf_level(L, gs);
    int64_t n = -1;
    for (int j = 2; j <= G; j++) {
        n = j == 2 ? hash_get(&g->root, v >> entry_shift(L, 1)) : g->nodes[n].child[(v >> entry_shift(L, j - 1)) & 511];
        cold->tbl[j - 2] = g->nodes[n].gframe;
    }
    return ST_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Time series and outcomes
 * -------------------------------------------------------------------------------------------*/
static int snapshot(Engine *e) {
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

/* ---------------------------------------------------------------------------------------------
 * One translation (MODEL.md sections 3 and 4)
 * -------------------------------------------------------------------------------------------*/
static int translate(Engine *e, uint64_t v) {
    uint64_t p4 = v >> 12;
    int st;
    if (p4 == e->last_p4 && e->last_counter >= 0) {
        /* a repeat of the page just translated, no event since: a hit on the most recent entry */
        e->C[e->last_counter]++;
        e->C[C_ACCESSES]++;
        if (e->record_outcomes &&
            (st = record_outcome(e, e->last_counter == C_L1_HITS ? OUT_L1 : OUT_L2, e->last_es)))
            return st;
        goto counted;
    }
    int l1_4k = e->p.only_4k ? e->l1_of[0] : -1;
    int l2_4k = e->p.only_4k ? e->l2_of[0] : -1;
    if (l1_4k >= 0 && lru_lookup(e->tags, &e->arrays[l1_4k], p4, (int64_t)(p4 << 2))) {
        /* 4 KiB fast path: the hit proves p4 is mapped, backed and touched (file comment) */
        e->C[C_L1_HITS]++;
        e->C[C_ACCESSES]++;
        e->last_p4 = p4;
        e->last_counter = C_L1_HITS;
        e->last_es = 12;
        if (e->record_outcomes && (st = record_outcome(e, OUT_L1, 12))) return st;
        goto counted;
    }
    if (l2_4k >= 0 && lru_lookup(e->tags, &e->arrays[l2_4k], p4, (int64_t)(p4 << 2))) {
        /* the same proof for an L2 hit; the entry then fills the L1 (if an L1 array holds 4K) */
        e->C[C_L2_HITS]++;
        e->C[C_ACCESSES]++;
        if (l1_4k >= 0) lru_fill(e->tags, &e->arrays[l1_4k], p4, (int64_t)(p4 << 2));
        e->last_p4 = p4;
        e->last_counter = l1_4k >= 0 ? C_L1_HITS : C_L2_HITS;
        e->last_es = 12;
        if (e->record_outcomes && (st = record_outcome(e, OUT_L2, 12))) return st;
        goto counted;
    }
    {
        Slot *slot = slot_find(&e->slots, p4);
        if (slot == NULL || slot->gen != e->gen) {
            st = resolve(e, p4, &slot);
            if (st) return st;
        }
        int es = slot->es;
        int code = (es - 12) / 9;
        uint64_t vpn = p4 >> (es - 12);
        int64_t tag = (int64_t)((vpn << 2) | (uint64_t)code);
        int l1 = e->l1_of[code], l2 = e->l2_of[code];
        int outcome;
        if (l1 >= 0 && l1 != l1_4k && lru_lookup(e->tags, &e->arrays[l1], vpn, tag)) {
            e->C[C_L1_HITS]++;
            outcome = OUT_L1;
        } else if (l2 >= 0 && l2 != l2_4k && lru_lookup(e->tags, &e->arrays[l2], vpn, tag)) {
            e->C[C_L2_HITS]++;
            if (l1 >= 0) lru_fill(e->tags, &e->arrays[l1], vpn, tag);
            outcome = OUT_L2;
        } else {
            /* ---- the 2D walk (section 4) ---- */
            e->C[C_WALKS]++;
            outcome = OUT_WALK;
            Guest *g = &e->g;
            int L = g->levels;
            int G = leaf_level(L, slot->gs);
            int k = psc_deepest_hit(e, e->gpsc, G, L, p4);
            if (k > 0) e->C[C_PSC_GUEST_HITS]++;
            e->C[C_GUEST_PTE_LOADS] += (uint64_t)(G - k);
            int loads = G - k;
            if (e->p.virt) {
                const SlotCold *cold = cold_of(&e->slots, slot);
                for (int j = k + 1; j <= G; j++) {
                    /* a PSC hit at level k holds the host-physical address of table k+1 */
                    if (j == k + 1 && k >= 1) continue;
                    loads += host_translate(e, j == 1 ? g->root_frame : cold->tbl[j - 2]);
                }
                loads += host_translate(e, cold->gframe);
            }
            psc_fill(e, e->gpsc, k, G, L, p4);
            e->hist[loads < HIST_SIZE ? loads : HIST_SIZE - 1]++;
            if (l2 >= 0) lru_fill(e->tags, &e->arrays[l2], vpn, tag);
            if (l1 >= 0) lru_fill(e->tags, &e->arrays[l1], vpn, tag);
        }
        e->C[C_ACCESSES]++;
        e->last_p4 = p4;
        e->last_counter = l1 >= 0 ? C_L1_HITS : (l2 >= 0 ? C_L2_HITS : -1);
        e->last_es = es;
        if (e->record_outcomes && (st = record_outcome(e, outcome, es))) return st;
    }
counted:
    /* a countdown, not C_ACCESSES % window: a 64-bit division per translation cost ~10% (perf) */
    if (--e->to_snapshot == 0) {
        e->to_snapshot = e->p.window;
        if ((st = snapshot(e))) return st;
    }
    return ST_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Invalidation (MODEL.md section 9)
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

/* A release changed a mapping or a backing: every cached slot becomes stale. The generation is 32-bit;
 * at its wrap every slot is marked stale by hand so that an old generation can never pass as current. */
static void bump_gen(Engine *e) {
    if (++e->gen == 0) {
        for (int64_t i = 0; i < e->slots.cap; i++) e->slots.e[i].gen = 0;
        e->gen = 1;
    }
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
 * Release (MODEL.md section 7), host side: guest frames [fp, fq)
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
    int64_t span = (int64_t)1 << (s - 12);
    for (int64_t i = 0; i < span; i++) h->shift[first + i] = (uint8_t)ns;
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
        if (s == 0) { f++; continue; }
        int64_t span = (int64_t)1 << (s - 12);
        /* f is the first frame of its page (no page crosses fp, and pages are visited in order) */
        buddy_free(&h->buddy, h->hframe[f], s - 12);
        for (int64_t i = 0; i < span; i++) h->shift[f + i] = 0;
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
/* The guest mapping covering address x: its table node, entry index and shift; 0 when unmapped. */
static int guest_find(const Guest *g, uint64_t x, int64_t *node, int *idx) {
    int L = g->levels;
    int64_t n = hash_get(&g->root, x >> entry_shift(L, 1));
    for (int k = 2; k <= L && n >= 0; k++) {
        int es = entry_shift(L, k);
        int i = (int)((x >> es) & 511);
        if (g->nodes[n].map[i]) { *node = n; *idx = i; return es; }
        n = g->nodes[n].child[i];
    }
    return 0;
}

static int guest_split(Engine *e, uint64_t x) {
    Guest *g = &e->g;
    int64_t n;
    int idx;
    int s = guest_find(g, x, &n, &idx);
    int L = g->levels;
    int ns = s - 9;
    int k = leaf_level(L, ns);       /* the table that will hold the smaller pages */
    int64_t data = g->nodes[n].map[idx] - 1;
    uint64_t base = (x >> s) << s;
    int64_t t;
    int st = guest_table(e, base, k, &t);
    if (st) return st;
    g->nodes[n].map[idx] = 0;  /* n is still valid: guest_table may have realloc'ed, re-index below */
    Node *child = &e->g.nodes[t];
    int64_t step = (int64_t)1 << (ns - 12);
    for (int i = 0; i < 512; i++) child->map[i] = data + i * step + 1;
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
} ReleaseCtx;

/* Visit the mappings of node n (a level-k table) intersecting [p, q), ascending. */
static int guest_visit(Engine *e, int64_t n, int k, uint64_t node_base, ReleaseCtx *cx) {
    Guest *g = &e->g;
    int L = g->levels;
    int es = entry_shift(L, k);
    u128 span = (u128)1 << es;
    u128 lo = cx->p > node_base ? (cx->p - node_base) >> es : 0;
    for (u128 i = lo; i < 512; i++) {
        u128 b = (u128)node_base + i * span;
        if (b >= cx->q) break;
        u128 end = b + span;
        if (end <= cx->p) continue;
        Node *node = &g->nodes[n];
        if (node->map[i]) {
            int64_t data = node->map[i] - 1;
            if (cx->passthrough) {
                /* discard the guest-physical image of the intersection */
                u128 a0 = b > cx->p ? b : cx->p;
                u128 a1 = end < cx->q ? end : cx->q;
                int64_t f0 = data + (int64_t)((a0 - b) >> 12);
                int64_t f1 = data + (int64_t)((a1 - b) >> 12);
                int st = host_release(e, f0, f1, &cx->host_changed);
                if (st) return st;
            } else {
                /* entirely inside [p, q) after the splits: unmap and free its frames */
                node->map[i] = 0;
                guest_count_path(g, (uint64_t)b, k, -1);
                buddy_free(&g->buddy, data, es - 12);
                e->C[C_GUEST_FREED_BYTES] += 1ULL << es;
                e->C[C_GUEST_RESIDENT_BYTES] -= 1ULL << es;
                cx->changed = 1;
            }
        } else if (node->child[i] >= 0 && g->nodes[node->child[i]].nmap > 0 && k < L) {
            int st = guest_visit(e, node->child[i], k + 1, (uint64_t)b, cx);
            if (st) return st;
        }
    }
    return ST_OK;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
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
        if (g->nodes[n].nmap > 0) st = guest_visit(e, n, 2, (uint64_t)((u128)ids[i] << top), cx);
    }
    free(ids);
    return st;
}

/* A U(a, n) record (MODEL.md section 7). */
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
    ReleaseCtx cx = {p, q, 0, e->g.unmap_passthrough, 0};
    int st;
    if (!cx.passthrough) {
        /* 1. split the pages crossing p, then those crossing q */
        u128 bounds[2] = {p, q};
        for (int b = 0; b < 2; b++) {
            if (bounds[b] >= TOP) continue;
            uint64_t x = (uint64_t)bounds[b];
            for (;;) {
                int64_t nd;
                int idx;
                int s = guest_find(&e->g, x, &nd, &idx);
                if (s <= 12 || ((x >> s) << s) == x) break;
                st = guest_split(e, x);
                if (st) return st;
                cx.changed = 1;
            }
        }
        /* 2. free the pages inside */
        st = guest_range(e, &cx);
        if (st) return st;
        if (cx.changed) {
            bump_gen(e);
            guest_invalidate(e, p, q);
        }
    } else {
        st = guest_range(e, &cx);
        if (st) return st;
        if (cx.host_changed) {
            bump_gen(e);
            e->C[C_HOST_DISCARDS]++;
            host_flush(e);
        }
    }
    return ST_OK;
}

/* A free page reporting pass (MODEL.md section 8). */
static int report_pass(Engine *e) {
    e->C[C_REPORT_TICKS]++;
    event_boundary(e);
    Buddy *b = &e->g.buddy;
    int min_order = e->p.report_order;
    /* the free blocks of order >= min_order, ascending by address: merge the per-order bitmaps */
    int64_t total = 0;
    for (int o = min_order; o <= MAX_ORDER; o++) total += b->nr_free[o];
    if (total == 0) return ST_OK;
    uint64_t *blocks = (uint64_t *)malloc((size_t)total * sizeof(uint64_t));
    if (!blocks) return ST_NOMEM;
    int64_t nb = 0;
    for (int o = min_order; o <= MAX_ORDER; o++) {
        for (int64_t w = 0; w < b->nwords[o]; w++) {
            uint64_t word = b->bits[o][w];
            while (word) {
                int bit = __builtin_ctzll(word);
                word &= word - 1;
                uint64_t start = (uint64_t)(((w << 6) + bit) << o);
                blocks[nb++] = (start << 5) | (uint64_t)o;  /* frames < 2^58: room for the order */
            }
        }
    }
    qsort(blocks, (size_t)nb, sizeof(uint64_t), cmp_u64);
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
        bump_gen(e);
        host_flush(e);  /* one flush per counted discard; flushing twice leaves the same state */
    }
    return ST_OK;
}

static inline int tick(Engine *e) {
    e->clock++;
    if (e->p.report && e->clock % (uint64_t)e->p.report_interval == 0) return report_pass(e);
    return ST_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Python glue
 * -------------------------------------------------------------------------------------------*/
static PyObject *OomGuest, *OomHost;

static int raise_status(int st) {
    if (st == ST_OOM_GUEST) PyErr_SetString(OomGuest, "guest out of memory");
    else if (st == ST_OOM_HOST) PyErr_SetString(OomHost, "host out of memory");
    else PyErr_NoMemory();
    return -1;
}

static void Engine_dealloc(Engine *e) {
    free(e->tags);
    free(e->arrays);
    buddy_release_mem(&e->g.buddy);
    buddy_release_mem(&e->h.buddy);
    free(e->g.nodes);
    free(e->g.root.keys);
    free(e->g.root.vals);
    free(e->h.shift);
    free(e->h.hframe);
    free(e->h.ever);
    free(e->h.occ2m);
    free(e->h.occ1g);
    for (int k = 0; k < 6; k++) free(e->h.tbl[k]);
    free(e->slots.e);
    free(e->slots.cold);
    free(e->series);
    free(e->outcomes);
    free(e->outcome_shifts);
    Py_TYPE(e)->tp_free((PyObject *)e);
}

static int get_i64_buffer(PyObject *obj, Py_buffer *view, const char *what) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return -1;
    if (view->itemsize != 8) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_TypeError, "%s must be a contiguous 64-bit integer array", what);
        return -1;
    }
    return 0;
}

/* Engine(params, arrays, g_removed, h_removed)
 *   params: dict of ints (see memmodel.engine.replay.Replay)
 *   arrays: sequence of (entries, ways) for every LRU array, in index order */
static int Engine_init(Engine *e, PyObject *args, PyObject *kw) {
    PyObject *params, *arrays, *g_removed, *h_removed;
    if (!PyArg_ParseTuple(args, "O!OOO", &PyDict_Type, &params, &arrays, &g_removed, &h_removed)) return -1;
#define P(name, dst)                                                                                 \
    do {                                                                                             \
        PyObject *o_ = PyDict_GetItemString(params, name);                                           \
        if (!o_) { PyErr_Format(PyExc_KeyError, "engine parameter %s missing", name); return -1; }   \
        long long v_ = PyLong_AsLongLong(o_);                                                        \
        if (v_ == -1 && PyErr_Occurred()) return -1;                                                 \
        dst = v_;                                                                                    \
    } while (0)
    long long virt, window, report, interval, rorder, only4k, gl, gp, gz, gf, gunmap, grand, hl, hp, hz, hrand,
        ntlb, outcomes;
    unsigned long long gseed = 0, hseed = 0;
    P("virtualized", virt); P("window", window); P("report", report); P("report_interval", interval);
    P("report_order", rorder); P("only_4k", only4k); P("guest_levels", gl); P("guest_shift", gp);
    P("guest_zeroing", gz); P("guest_frames", gf); P("guest_passthrough", gunmap); P("guest_random", grand);
    P("host_levels", hl); P("host_shift", hp); P("host_zeroing", hz); P("host_random", hrand);
    P("ntlb", ntlb); P("outcomes", outcomes);
    {
        PyObject *o = PyDict_GetItemString(params, "guest_seed");
        if (!o) { PyErr_SetString(PyExc_KeyError, "guest_seed"); return -1; }
        gseed = PyLong_AsUnsignedLongLong(o);
        if (PyErr_Occurred()) return -1;
        o = PyDict_GetItemString(params, "host_seed");
        if (!o) { PyErr_SetString(PyExc_KeyError, "host_seed"); return -1; }
        hseed = PyLong_AsUnsignedLongLong(o);
        if (PyErr_Occurred()) return -1;
    }
    long long host_frames = 0;
    P("host_frames", host_frames);
    e->p.virt = (int)virt;
    e->p.window = window;
    e->p.report = (int)report;
    e->p.report_interval = interval;
    e->p.report_order = (int)rorder;
    e->p.only_4k = (int)only4k;
    e->record_outcomes = (int)outcomes;
    e->ntlb = (int)ntlb;
    static const char *lists[4] = {"l1_of", "l2_of", "gpsc", "hpsc"};
    int *dsts[4] = {e->l1_of, e->l2_of, e->gpsc, e->hpsc};
    int lens[4] = {3, 3, 6, 6};
    for (int i = 0; i < 4; i++) {
        PyObject *seq = PyDict_GetItemString(params, lists[i]);
        if (!seq || !PySequence_Check(seq) || PySequence_Size(seq) != lens[i]) {
            PyErr_Format(PyExc_ValueError, "engine parameter %s must be a sequence of %d ints", lists[i], lens[i]);
            return -1;
        }
        for (int j = 0; j < lens[i]; j++) {
            PyObject *it = PySequence_GetItem(seq, j);
            if (!it) return -1;
            dsts[i][j] = (int)PyLong_AsLong(it);
            Py_DECREF(it);
            if (PyErr_Occurred()) return -1;
        }
    }
    /* LRU arrays */
    Py_ssize_t na = PySequence_Size(arrays);
    if (na < 0) return -1;
    if (na > 60) { PyErr_SetString(PyExc_ValueError, "at most 60 translation-cache arrays"); return -1; }
    e->arrays = (Lru *)calloc((size_t)(na + 1), sizeof(Lru));
    if (!e->arrays) { PyErr_NoMemory(); return -1; }
    int64_t off = 0;
    for (Py_ssize_t i = 0; i < na; i++) {
        PyObject *it = PySequence_GetItem(arrays, i);
        if (!it) return -1;
        long long entries, ways;
        int ok = PyArg_ParseTuple(it, "LL", &entries, &ways);
        Py_DECREF(it);
        if (!ok) return -1;
        Lru *a = &e->arrays[i];
        a->off = off;
        a->ways = ways;
        a->sets = entries / ways;
        a->mask = (a->sets & (a->sets - 1)) == 0 ? a->sets - 1 : -1;
        off += entries;
    }
    e->n_arrays = (int)na;
    e->tags = (int64_t *)malloc((size_t)(off + 1) * sizeof(int64_t));
    if (!e->tags) { PyErr_NoMemory(); return -1; }
    for (int64_t i = 0; i <= off; i++) e->tags[i] = -1;

    /* sides */
    Py_buffer gv, hv;
    if (get_i64_buffer(g_removed, &gv, "g_removed") < 0) return -1;
    if (get_i64_buffer(h_removed, &hv, "h_removed") < 0) { PyBuffer_Release(&gv); return -1; }
    Guest *g = &e->g;
    g->levels = (int)gl;
    g->pshift = (int)gp;
    g->zeroing = (int)gz;
    g->unmap_passthrough = (int)gunmap;
    g->frames = gf;
    int st = buddy_build(&g->buddy, gf, (const int64_t *)gv.buf, gv.len / 8, (int)grand, gseed);
    if (st == ST_OK && hash_init(&g->root, 16) != ST_OK) st = ST_NOMEM;
    Host *h = &e->h;
    h->levels = (int)hl;
    h->pshift = (int)hp;
    h->zeroing = (int)hz;
    if (st == ST_OK && virt) {
        st = buddy_build(&h->buddy, host_frames, (const int64_t *)hv.buf, hv.len / 8, (int)hrand, hseed);
        if (st == ST_OK) {
            h->shift = (uint8_t *)calloc((size_t)gf + 1, 1);
            h->hframe = (uint32_t *)calloc((size_t)gf + 1, sizeof(uint32_t));
            h->ever = (uint8_t *)calloc((size_t)gf + 1, 1);
            h->occ2m = (int32_t *)calloc((size_t)(gf >> 9) + 2, sizeof(int32_t));
            h->occ1g = (int32_t *)calloc((size_t)(gf >> 18) + 2, sizeof(int32_t));
            if (!h->shift || !h->hframe || !h->ever || !h->occ2m || !h->occ1g) st = ST_NOMEM;
            for (int k = 2; k <= h->levels && st == ST_OK; k++) {
                h->tbl[k] = (uint8_t *)calloc((size_t)(gf >> (9 * (h->levels - k + 1))) + 2, 1);
                if (!h->tbl[k]) st = ST_NOMEM;
            }
        }
    }
    PyBuffer_Release(&gv);
    PyBuffer_Release(&hv);
    if (st == ST_OK) st = slots_init(&e->slots, 1 << 12);
    if (st) { raise_status(st); return -1; }
    e->gen = 1;
    e->to_snapshot = e->p.window;
    e->last_counter = -1;
    e->last_p4 = 0;
    return 0;
#undef P
}

/* start(): MODEL.md section 2 start-up (after the allocators and fragmentation). */
static PyObject *Engine_start(Engine *e, PyObject *args) {
    (void)args;
    if (e->started) Py_RETURN_NONE;
    e->started = 1;
    if (e->p.virt) {
        if (buddy_alloc(&e->h.buddy, 0) < 0) return raise_status(ST_OOM_HOST), NULL;
        e->C[C_HOST_PT_PAGES]++;
    }
    Py_RETURN_NONE;
}

/* prealloc(): host-touch [0, guest.memory) (start-up step 2, when host.prealloc). */
static PyObject *Engine_prealloc(Engine *e, PyObject *unused) {
    (void)unused;
    int st = host_touch(e, 0, e->g.frames);
    if (st) return raise_status(st), NULL;
    Py_RETURN_NONE;
}

/* guest_root(): start-up step 3. */
static PyObject *Engine_guest_root(Engine *e, PyObject *unused) {
    (void)unused;
    int64_t root = buddy_alloc(&e->g.buddy, 0);
    if (root < 0) return raise_status(ST_OOM_GUEST), NULL;
    e->g.root_frame = root;
    e->C[C_GUEST_PT_PAGES]++;
    if (e->p.virt) {
        int st = host_touch(e, root, 1);
        if (st) return raise_status(st), NULL;
    }
    Py_RETURN_NONE;
}

/* feed(kind, gva, size) -> index of the record being processed when an error stopped the run, or -1. */
static PyObject *Engine_feed(Engine *e, PyObject *args) {
    PyObject *ko, *ao, *so;
    if (!PyArg_ParseTuple(args, "OOO", &ko, &ao, &so)) return NULL;
    Py_buffer kb, ab, sb;
    if (PyObject_GetBuffer(ko, &kb, PyBUF_C_CONTIGUOUS) < 0) return NULL;
    if (PyObject_GetBuffer(ao, &ab, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) { PyBuffer_Release(&kb); return NULL; }
    if (PyObject_GetBuffer(so, &sb, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyBuffer_Release(&kb); PyBuffer_Release(&ab); return NULL;
    }
    Py_ssize_t n = kb.len;
    if (ab.itemsize != 8 || sb.itemsize != 8 || ab.len != n * 8 || sb.len != n * 8) {
        PyBuffer_Release(&kb); PyBuffer_Release(&ab); PyBuffer_Release(&sb);
        PyErr_SetString(PyExc_TypeError, "feed needs kind (uint8), gva and size (uint64) arrays of one length");
        return NULL;
    }
    const uint8_t *kind = (const uint8_t *)kb.buf;
    const uint64_t *gva = (const uint64_t *)ab.buf;
    const uint64_t *size = (const uint64_t *)sb.buf;
    int st = ST_OK;
    Py_ssize_t i;
    Py_ssize_t bad = -1;
    Py_BEGIN_ALLOW_THREADS
    for (i = 0; i < n; i++) {
        uint8_t k = kind[i];
        if (k == KIND_I) {
            e->C[C_INSTRUCTIONS]++;
            if ((st = tick(e))) break;
            continue;
        }
        if (k <= KIND_M) {
            uint64_t a = gva[i], sz = size[i];
            if ((st = translate(e, a))) break;
            /* a straddling access translates its last byte right after its first (addresses wrap) */
            if (sz > 4096 - (a & 4095) && (st = translate(e, a + sz - 1))) break;
            if ((st = tick(e))) break;
            continue;
        }
        if (k == KIND_U) {
            if ((st = unmap_record(e, gva[i], size[i]))) break;
            continue;
        }
        bad = i;
        break;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&kb);
    PyBuffer_Release(&ab);
    PyBuffer_Release(&sb);
    if (bad >= 0) {
        PyErr_Format(PyExc_ValueError, "record %zd has unknown kind code %d (allowed: 0=I 1=L 2=S 3=M 4=U)",
                     bad, (int)kind[bad]);
        return NULL;
    }
    if (st) return raise_status(st), NULL;
    Py_RETURN_NONE;
}

static PyObject *Engine_counters(Engine *e, PyObject *unused) {
    (void)unused;
    PyObject *d = PyDict_New();
    if (!d) return NULL;
    for (int i = 0; i < N_COUNTERS; i++) {
        PyObject *v = PyLong_FromUnsignedLongLong(e->C[i]);
        if (!v || PyDict_SetItemString(d, COUNTER_NAME[i], v) < 0) { Py_XDECREF(v); Py_DECREF(d); return NULL; }
        Py_DECREF(v);
    }
    /* unmapped_bytes may exceed 2^64: build it from its two halves */
    PyObject *hi = PyLong_FromUnsignedLongLong((unsigned long long)(e->unmapped_bytes >> 64));
    PyObject *lo = PyLong_FromUnsignedLongLong((unsigned long long)e->unmapped_bytes);
    PyObject *sh = PyLong_FromLong(64);
    PyObject *t1 = (hi && sh) ? PyNumber_Lshift(hi, sh) : NULL;
    PyObject *tot = (t1 && lo) ? PyNumber_Or(t1, lo) : NULL;
    Py_XDECREF(hi); Py_XDECREF(lo); Py_XDECREF(sh); Py_XDECREF(t1);
    if (!tot || PyDict_SetItemString(d, "unmapped_bytes", tot) < 0) { Py_XDECREF(tot); Py_DECREF(d); return NULL; }
    Py_DECREF(tot);
    return d;
}

static PyObject *i64_bytes(const int64_t *p, int64_t n) {
    return PyBytes_FromStringAndSize((const char *)p, (Py_ssize_t)(n * (int64_t)sizeof(int64_t)));
}

static PyObject *Engine_hist(Engine *e, PyObject *unused) { (void)unused; return i64_bytes(e->hist, HIST_SIZE); }

static PyObject *Engine_series(Engine *e, PyObject *unused) {
    (void)unused;
    return i64_bytes(e->series ? e->series : e->hist, e->series_rows * N_SERIES);
}

static PyObject *Engine_nr_free(Engine *e, PyObject *args) {
    int host;
    if (!PyArg_ParseTuple(args, "p", &host)) return NULL;
    return i64_bytes(host ? e->h.buddy.nr_free : e->g.buddy.nr_free, MAX_ORDER + 1);
}

static PyObject *Engine_take_outcomes(Engine *e, PyObject *unused) {
    (void)unused;
    PyObject *o = PyBytes_FromStringAndSize((const char *)e->outcomes, (Py_ssize_t)e->n_outcomes);
    PyObject *s = PyBytes_FromStringAndSize((const char *)e->outcome_shifts, (Py_ssize_t)e->n_outcomes);
    if (!o || !s) { Py_XDECREF(o); Py_XDECREF(s); return NULL; }
    e->n_outcomes = 0;
    return Py_BuildValue("(NN)", o, s);
}

/* lookup_shifts(p4 array as bytes of int64) -> bytes: es of each page's slot (0 = never translated). */
static PyObject *Engine_lookup_shifts(Engine *e, PyObject *args) {
    PyObject *po;
    if (!PyArg_ParseTuple(args, "O", &po)) return NULL;
    Py_buffer pb;
    if (get_i64_buffer(po, &pb, "pages") < 0) return NULL;
    int64_t n = pb.len / 8;
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
    if (!out) { PyBuffer_Release(&pb); return NULL; }
    uint8_t *o = (uint8_t *)PyBytes_AS_STRING(out);
    const int64_t *p = (const int64_t *)pb.buf;
    for (int64_t i = 0; i < n; i++) {
        const Slot *slot = slot_find(&e->slots, (uint64_t)p[i]);
        o[i] = slot ? slot->es : 0;
    }
    PyBuffer_Release(&pb);
    return out;
}


/* ---------------------------------------------------------------------------------------------
 * A buddy allocator on its own (tests and tools): BuddyAllocator(frames, removed, random, seed)
 * -------------------------------------------------------------------------------------------*/
typedef struct {
    PyObject_HEAD
    Buddy b;
} BuddyObject;

static int BuddyObject_init(BuddyObject *self, PyObject *args, PyObject *kw) {
    (void)kw;
    long long frames;
    PyObject *removed;
    int random;
    unsigned long long seed;
    if (!PyArg_ParseTuple(args, "LOpK", &frames, &removed, &random, &seed)) return -1;
    Py_buffer rv;
    if (get_i64_buffer(removed, &rv, "removed") < 0) return -1;
    int st = buddy_build(&self->b, frames, (const int64_t *)rv.buf, rv.len / 8, random, seed);
    PyBuffer_Release(&rv);
    if (st) { PyErr_NoMemory(); return -1; }
    return 0;
}

static void BuddyObject_dealloc(BuddyObject *self) {
    buddy_release_mem(&self->b);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *BuddyObject_alloc(BuddyObject *self, PyObject *args) {
    int order;
    if (!PyArg_ParseTuple(args, "i", &order)) return NULL;
    if (order < 0 || order > MAX_ORDER) { PyErr_SetString(PyExc_ValueError, "order must be 0..18"); return NULL; }
    return PyLong_FromLongLong(buddy_alloc(&self->b, order));
}

static PyObject *BuddyObject_free(BuddyObject *self, PyObject *args) {
    long long frame;
    int order;
    if (!PyArg_ParseTuple(args, "Li", &frame, &order)) return NULL;
    if (order < 0 || order > MAX_ORDER || frame < 0 || frame + (1LL << order) > self->b.frames ||
        (frame & ((1LL << order) - 1))) {
        PyErr_SetString(PyExc_ValueError, "free needs an aligned block inside memory");
        return NULL;
    }
    buddy_free(&self->b, frame, order);
    Py_RETURN_NONE;
}

static PyObject *BuddyObject_nr_free(BuddyObject *self, PyObject *unused) {
    (void)unused;
    return i64_bytes(self->b.nr_free, MAX_ORDER + 1);
}

static PyMethodDef BuddyObject_methods[] = {
    {"alloc", (PyCFunction)BuddyObject_alloc, METH_VARARGS, "alloc(order) -> first frame, or -1."},
    {"free", (PyCFunction)BuddyObject_free, METH_VARARGS, "free(frame, order): merges with free buddies."},
    {"nr_free", (PyCFunction)BuddyObject_nr_free, METH_NOARGS, "Free blocks per order (int64 bytes)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject BuddyType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "memmodel.engine._core.BuddyAllocator",
    .tp_basicsize = sizeof(BuddyObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A buddy allocator of MODEL.md section 2 (the engine's own code).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)BuddyObject_init,
    .tp_dealloc = (destructor)BuddyObject_dealloc,
    .tp_methods = BuddyObject_methods,
};

/* records_to_runs(kind, gva, size) -> (pages bytes int64, counts bytes int64, instructions):
 * MODEL.md section 1 translations of L/S/M records as runs of one 4 KiB page (U is refused). */
static PyObject *core_records_to_runs(PyObject *mod, PyObject *args) {
    (void)mod;
    PyObject *ko, *ao, *so;
    if (!PyArg_ParseTuple(args, "OOO", &ko, &ao, &so)) return NULL;
    Py_buffer kb, ab, sb;
    if (PyObject_GetBuffer(ko, &kb, PyBUF_C_CONTIGUOUS) < 0) return NULL;
    if (PyObject_GetBuffer(ao, &ab, PyBUF_C_CONTIGUOUS) < 0) { PyBuffer_Release(&kb); return NULL; }
    if (PyObject_GetBuffer(so, &sb, PyBUF_C_CONTIGUOUS) < 0) { PyBuffer_Release(&kb); PyBuffer_Release(&ab); return NULL; }
    Py_ssize_t n = kb.len;
    if (ab.len != n * 8 || sb.len != n * 8) {
        PyBuffer_Release(&kb); PyBuffer_Release(&ab); PyBuffer_Release(&sb);
        PyErr_SetString(PyExc_TypeError, "records_to_runs needs kind (uint8), gva and size (uint64) of one length");
        return NULL;
    }
    PyObject *pages = PyBytes_FromStringAndSize(NULL, 2 * n * 8 + 8);
    PyObject *counts = PyBytes_FromStringAndSize(NULL, 2 * n * 8 + 8);
    if (!pages || !counts) { Py_XDECREF(pages); Py_XDECREF(counts); PyBuffer_Release(&kb); PyBuffer_Release(&ab); PyBuffer_Release(&sb); return NULL; }
    int64_t *pg = (int64_t *)PyBytes_AS_STRING(pages);
    int64_t *ct = (int64_t *)PyBytes_AS_STRING(counts);
    const uint8_t *kind = (const uint8_t *)kb.buf;
    const uint64_t *gva = (const uint64_t *)ab.buf;
    const uint64_t *size = (const uint64_t *)sb.buf;
    int64_t runs = 0, ins = 0;
    int64_t prev = -1;
    Py_ssize_t bad = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint8_t k = kind[i];
        if (k == KIND_I) { ins++; continue; }
        if (k > KIND_M) { bad = i; break; }
        uint64_t a = gva[i], sz = size[i];
        int two = sz > 4096 - (a & 4095);  /* (a mod 4096) + n > 4096, without overflow */
        for (int t = 0; t <= two; t++) {
            int64_t page = (int64_t)((t == 0 ? a : a + sz - 1) >> 12);
            if (page == prev) ct[runs - 1]++;
            else { pg[runs] = page; ct[runs] = 1; runs++; prev = page; }
        }
    }
    PyBuffer_Release(&ab);
    PyBuffer_Release(&sb);
    if (bad >= 0) {
        int code = kind[bad];
        PyBuffer_Release(&kb);
        Py_DECREF(pages); Py_DECREF(counts);
        PyErr_Format(PyExc_ValueError, "record %zd has kind code %d: only I, L, S and M records make page runs", bad, code);
        return NULL;
    }
    PyBuffer_Release(&kb);
    if (_PyBytes_Resize(&pages, (Py_ssize_t)(runs * 8)) < 0) { Py_DECREF(counts); return NULL; }
    if (_PyBytes_Resize(&counts, (Py_ssize_t)(runs * 8)) < 0) { Py_DECREF(pages); return NULL; }
    return Py_BuildValue("(NNL)", pages, counts, (long long)ins);
}

static PyMethodDef core_functions[] = {
    {"records_to_runs", core_records_to_runs, METH_VARARGS, "Records -> runs of translations of one 4 KiB page."},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef Engine_methods[] = {
    {"start", (PyCFunction)Engine_start, METH_NOARGS, "Start-up step 2a: the host root table."},
    {"prealloc", (PyCFunction)Engine_prealloc, METH_NOARGS, "Start-up step 2b: host-touch all guest memory."},
    {"guest_root", (PyCFunction)Engine_guest_root, METH_NOARGS, "Start-up step 3: the guest root table."},
    {"feed", (PyCFunction)Engine_feed, METH_VARARGS, "Replay records: feed(kind u8, gva u64, size u64)."},
    {"counters", (PyCFunction)Engine_counters, METH_NOARGS, "The raw counters as a dict."},
    {"hist", (PyCFunction)Engine_hist, METH_NOARGS, "Walk-length histogram (int64 bytes)."},
    {"series", (PyCFunction)Engine_series, METH_NOARGS, "Time-series rows (int64 bytes)."},
    {"nr_free", (PyCFunction)Engine_nr_free, METH_VARARGS, "Free blocks per order (int64 bytes)."},
    {"take_outcomes", (PyCFunction)Engine_take_outcomes, METH_NOARGS, "Outcome codes and shifts since last take."},
    {"lookup_shifts", (PyCFunction)Engine_lookup_shifts, METH_VARARGS, "Effective TLB shift of given pages."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject EngineType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "memmodel.engine._core.Engine",
    .tp_basicsize = sizeof(Engine),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The state of one replay of one config (MODEL.md v2).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Engine_init,
    .tp_dealloc = (destructor)Engine_dealloc,
    .tp_methods = Engine_methods,
};

static struct PyModuleDef coremodule = {PyModuleDef_HEAD_INIT, "_core",
                                        "memmodel's engine core (MODEL.md v2 in C).", -1, core_functions};

PyMODINIT_FUNC PyInit__core(void) {
    if (PyType_Ready(&EngineType) < 0 || PyType_Ready(&BuddyType) < 0) return NULL;
    PyObject *m = PyModule_Create(&coremodule);
    if (!m) return NULL;
    Py_INCREF(&EngineType);
    PyModule_AddObject(m, "Engine", (PyObject *)&EngineType);
    Py_INCREF(&BuddyType);
    PyModule_AddObject(m, "BuddyAllocator", (PyObject *)&BuddyType);
    OomGuest = PyErr_NewException("memmodel.engine._core.GuestOutOfMemory", PyExc_MemoryError, NULL);
    OomHost = PyErr_NewException("memmodel.engine._core.HostOutOfMemory", PyExc_MemoryError, NULL);
    PyModule_AddObject(m, "GuestOutOfMemory", OomGuest);
    PyModule_AddObject(m, "HostOutOfMemory", OomHost);
    PyObject *names = PyTuple_New(N_COUNTERS);
    for (int i = 0; i < N_COUNTERS; i++) PyTuple_SET_ITEM(names, i, PyUnicode_FromString(COUNTER_NAME[i]));
    PyModule_AddObject(m, "COUNTER_NAMES", names);
    PyObject *snames = PyTuple_New(N_SERIES);
    for (int i = 0; i < N_SERIES; i++) PyTuple_SET_ITEM(snames, i, PyUnicode_FromString(SERIES_NAME[i]));
    PyModule_AddObject(m, "SERIES_NAMES", snames);
    PyModule_AddIntConstant(m, "HIST_SIZE", HIST_SIZE);
    return m;
}
