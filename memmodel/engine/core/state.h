/* Named state: hash tables, the guest radix page tables, slots, the host backing, the Engine.
 * Part of the engine core: included once, in order, by memmodel/engine/_core.c (not standalone). */
#ifndef MEMMODEL_CORE_STATE_H
#define MEMMODEL_CORE_STATE_H

/* ---------------------------------------------------------------------------------------------
 * Guest page tables (radix tree) and the virtual-page slot cache
 * -------------------------------------------------------------------------------------------*/
/* One guest table. Tables live in one arena (Guest.arena) and are named by their offset in it in units
 * of NODE_UNIT bytes (an int32 handle, stable when the arena grows). A leaf-level table (level L: 4 KiB
 * pages) has no child array, so it takes 2 KiB + 16 bytes (the former layout took 6 KiB + 16 for every
 * table: on sparse, 3,090 tables, 19 -> 6.4 MB, and the TLB-only replay 1.10x faster, pairs of runs). */
typedef struct {
    uint32_t gframe;      /* guest frame of this table (its guest-physical address >> 12; below 2^32, as map's) */
    uint32_t nmap;        /* leaf mappings in this table and below (each holds its own guest frames: < 2^32) */
    uint64_t occ;         /* bit j: some entry of map[8j .. 8j + 7] is nonzero (exactly: cleared when the group
                           * empties), so a release visits a leaf table's mappings without scanning its empty
                           * entries; in the header's 16 bytes, which a fault's nmap update touches anyway */
    uint32_t map[512];    /* leaf mapping of this entry's size: its first guest frame + 1, 0 = none (32 bits:
                           * guest memory is below 16 TiB, so a frame + 1 is below 2^32; config and Engine) */
    int32_t child[];      /* tables above the leaf level only: the handle of the next-level table under
                           * each entry, -1 = none */
} Node;

#define NODE_UNIT 16
#define NODE_BYTES(leaf) (sizeof(Node) + ((leaf) ? 0 : 512 * sizeof(int32_t)))

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

/* Fibonacci hashing: the top 64 - shift bits of key * 2^64/phi (consecutive keys spread over the table);
 * the home position of key in a table of 2^(64 - shift) positions. Every hash table of the core uses it. */
static inline __attribute__((always_inline)) uint64_t fib_index(uint64_t key, int shift) {
    return (key * 0x9E3779B97F4A7C15ULL) >> shift;
}

static inline __attribute__((always_inline)) uint64_t hash_slot(uint64_t key, int64_t cap) {
    return fib_index(key, 64 - __builtin_ctzll((uint64_t)cap));
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
    Region arena;         /* tables of levels >= 2 (Node), back to back; a handle n is at n * NODE_UNIT;
                           * past arena_used all bytes are zero (tables are never freed) */
    int64_t arena_used;   /* bytes */
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
    uint8_t gleaf;        /* guest leaf level of gs (levels - (gs - 12) / 9): what a walk loads */
    uint8_t pad;
} Slot;

typedef struct {          /* 32-bit guest frames: guest memory is below 16 TiB (Engine init checks) */
    uint32_t gframe;      /* guest frame of the page (4 KiB) */
    uint32_t tbl[4];      /* guest frames of the page's guest tables at levels 2..5 */
} SlotCold;

/* The guest of a native replay with 4 KiB pages only (Params.flat; core/flat.h): every mapping is one 4 KiB
 * page and nothing but the mappings' existence, their frames (to free them) and the tables' existence (to
 * count them) is ever read, so it keeps no radix tree and no slots. Per 2 MiB virtual region (a leaf
 * table of docs/model.md section 2) two bitmaps and the pages' frames; the tables above the leaf level
 * as a set of ids. */
typedef struct {
    /* group k covers pages 64k..64k+63 of a 2 MiB region, bit i = page 64k+i; a page's two words share
     * a 16-byte pair, so a fault updates the line its TLB miss just read (the ever bits as an array of
     * their own held ~13 % of the fault's samples on sparse TLB-only, perf, yet the end-to-end time did
     * not measurably change in pairs of runs: kept for the one line) */
    struct {
        uint64_t mapped;  /* mapped pages */
        uint64_t ever;    /* pages ever translated (touched_pages; a fault on one re-faults) */
    } g[8];
} PageBits;

typedef struct {          /* one entry of FlatIndex: key and value on one line (a lookup reads one line) */
    uint64_t key;         /* region number + 1; 0 = empty */
    int64_t r;            /* the region's index */
} FlatEntry;

typedef struct {          /* open addressing, linear probing, at most half full */
    FlatEntry *e;
    PageBits *bits;       /* at the same position as its entry: the region's mapped and ever-translated pages
                           * (all a TLB miss reads besides the entry; one prefetch address for both) */
    int64_t cap;          /* power of two */
    int shift;            /* 64 - log2(cap) */
    int64_t used;         /* regions (= leaf tables); a new region's index r is the count before it */
} FlatIndex;

typedef struct {
    FlatIndex index;      /* region number (v >> 21) -> its page bits, and its index r in frames; one region
                           * per leaf table */
    Hash upper;           /* the tables above the leaf level that exist: (v >> entry_shift(L, k - 1)) * 8 + k */
    Region frames;        /* per index, 512 uint32: each page's guest frame (read only where mapped), as of
                           * the last release: made at the first release */
    uint64_t *log;        /* the faults since the last release, two words each: (r << 9) | page in region,
                           * its guest frame; applied to frames by the next release (flat_apply_log) */
    int64_t log_n, log_cap;
} Flat;

typedef struct {
    Slot *e;
    SlotCold *cold;
    int64_t cap;          /* power of two */
    int shift;            /* 64 - log2(cap): the hash's shift */
    int64_t used;         /* = pages ever translated */
} Slots;

typedef struct {
    int levels;
    int pshift;
    int zeroing;
    Buddy buddy;
    uint8_t *shift;       /* per guest frame: host page shift backing it, 0 = unbacked */
    uint32_t *hframe;     /* per guest frame that starts a host page: the host frame backing it (other
                           * frames of a huge page hold nothing: host_fault) */
    uint8_t *ever;        /* per guest frame: was ever backed by a 4 KiB host page (re-fault zeroing, an
                           * extra; with ever2m: was ever host-backed) */
    uint8_t *ever2m;      /* per 2 MiB guest-physical region: a host page of 2 MiB or more ever backed it */
    int32_t *occ2m;       /* per 2 MiB guest-physical region: backed frames */
    int32_t *occ1g;       /* per 1 GiB guest-physical region: backed frames */
    uint8_t *rshift;      /* per 2 MiB guest-physical region: the shift of the host page holding all of it
                           * (21, 30), else 0; so rshift[f >> 9] is 0 or shift[f] (host_shift) */
    uint8_t *tbl[6];      /* per level 2..levels: host table present, indexed by gframe >> (9 (L-k+1)) */
} Host;

/* The host's per-guest-frame maps, for host_map_bytes. */
enum { HOST_SHIFT, HOST_HFRAME, HOST_EVER, HOST_EVER2M, HOST_OCC2M, HOST_OCC1G, HOST_RSHIFT, HOST_TBL };

/* Bytes of host map `which` (HOST_TBL + k: the level-k table map) for a guest of gf frames: what
 * Engine init allocates (sparse_alloc) and dealloc frees. */
static size_t host_map_bytes(const Host *h, int64_t gf, int which) {
    switch (which) {
    case HOST_SHIFT: case HOST_EVER: return (size_t)gf + 1;
    case HOST_HFRAME: return ((size_t)gf + 1) * sizeof(uint32_t);
    case HOST_OCC2M: return ((size_t)(gf >> 9) + 2) * sizeof(int32_t);
    case HOST_OCC1G: return ((size_t)(gf >> 18) + 2) * sizeof(int32_t);
    case HOST_RSHIFT: case HOST_EVER2M: return (size_t)(gf >> 9) + 2;
    default: return (size_t)(gf >> (9 * (h->levels - (which - HOST_TBL) + 1))) + 2;
    }
}

typedef struct {
    int virt;
    int64_t window;
    int report;
    int64_t report_interval;
    int report_order;
    int only_4k;
    int flat;        /* native 4 KiB replay: the guest's mappings live in the Flat store, not in tables and slots */
} Params;

/* A TLB array as the record loop's fast paths read it: where its sets start and how a page picks one. */
typedef struct {
    const Lru *a;            /* the array (NULL: none) */
    int64_t *base;           /* its first set in the shared tags buffer */
    int64_t mask;            /* sets - 1 when sets is a power of two, else -1 */
    int64_t sets, stride;    /* sets; words per set */
} FastArray;

/* What a record loop keeps in locals while it runs (registers: a field of the Engine would be a
 * load-add-store chain from one translation to the next), written back to the Engine when it ends. */
typedef struct {
    uint64_t l1_hits;        /* L1 hits of the fast paths not yet added to C[C_L1_HITS] */
    int64_t to_snapshot;     /* the Engine's to_snapshot while the loop runs */
    int missed;              /* a translation since the last record missed the L1: the record loop then
                              * prefetches one coming slot and clears it (set on misses only, so an L1 hit
                              * writes nothing: clearing it on every hit cost ~15 % on qsort, pairs of runs) */
    /* Read only while the loop runs: the 4 KiB L1 and L2 arrays (only_4k), copied out of the Engine. For
     * the compiler a store to a TLB row or a counter may change an Lru field, so translate() reloaded
     * each array's mask and offset on every translation (callgrind, TLB-only pchase: the set-index lines
     * were 7 % of the instructions; with these locals 2 % fewer instructions in all and 1.06x faster end
     * to end, median of 30 pairs of runs). */
    FastArray f1, f2;
    /* Replays with entries of several sizes (not only_4k): the L1 arrays that list 2 MiB and 1 GiB entries
     * (NULL views when none does, and for only_4k replays), for the large-entry hit path of translate(),
     * and the size code that path tries next: 1 (2M), 2 (1G) or 0 (none: its last lookup missed, and no
     * L1 hit of a large entry came since; or no L1 array lists 2M). The code is set only to a size whose
     * L1 array exists (an L1 hit of that size), so its view is never NULL. */
    FastArray f2m, f1g;
    int large;
} Hot;

/* Virtual pages [lo, hi) (4 KiB page numbers) that a generation bump may have changed. */
typedef struct {
    uint64_t lo, hi;
} PageRange;

/* Generation bumps whose ranges the Engine keeps (a power of two): a slot at most this many bumps old
 * is revalidated by range tests instead of resolved again (slot_revalidate). */
#define GEN_HISTORY 8

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
    int has_gpsc, has_hpsc;  /* any guest / host PSC array (a walk without one skips the PSC loops) */
    int ntlb;
    int psc_preset;          /* the walk's caches have the CPU presets' shapes (psc_preset_of): walks use the
                              * PSC and nested-TLB code specialised for them */
    Guest g;
    Host h;
    Slots slots;
    Flat flat;
    uint32_t gen;
    uint64_t to_report;      /* with reporting: clock ticks (I/L/S/M records, docs/model.md section 8) until the next
                              * pass, 1..interval (a pass falls where clock % interval == 0) */
    /* repeat collapsing: the last translated page and the counter its repeats hit */
    uint64_t last_p4;
    int last_counter;        /* C_L1_HITS, C_L2_HITS, or -1 = no collapse */
    int last_es;             /* its effective TLB shift (always 12 when only_4k: the 4 KiB paths skip the store) */
    int l1_4k, l2_4k;        /* only_4k: the L1 / L2 arrays of 4 KiB entries (or -1); else both -1 */
    int64_t to_snapshot;     /* translations until the next time-series row */
    int report_dirty;        /* a guest free or a host fault since the last reporting pass */
    /* with reporting: the guest-frame ranges [lo, hi) freed by the guest or newly host-backed since the
     * last pass, as pairs (report_mark); rlog_full: too many, or none kept yet (a pass then visits every
     * free block) */
    uint64_t *rlog;
    int64_t rlog_n, rlog_cap;
    int rlog_full;
    int resolving;           /* the last page walked had to be resolved (a first touch, or a stale slot after
                              * a release): the coming pages likely do too, so the record loop prefetches
                              * their guest leaf-table entries as well as their slots */
    int64_t *series;
    int64_t series_rows, series_cap;
    uint8_t *outcomes, *outcome_shifts;
    int64_t n_outcomes, cap_outcomes;
    int record_outcomes;
    int started;
    /* read only when a stale slot is revalidated: last, away from the fields every translation reads */
    PageRange gen_range[GEN_HISTORY];  /* bump g may have changed pages gen_range[g % GEN_HISTORY] only */
    /* psc_preset: the first set of the guest's [0] and the host's [1] PSC level j = 1..3 in tags, [1][0]
     * the nested TLB's (one load per lookup, not the array number, the array and its offset: tags never
     * moves; callgrind sparse baseline-4k 285.0 -> 278.9 M, pairs sparse 1.03x, pchase 1.07x). Kept last,
     * away from the fields every translation reads */
    int64_t *preset_rows[2][4];
} Engine;

static inline __attribute__((always_inline)) int leaf_level(int levels, int shift) { return levels - (shift - 12) / 9; }

static inline __attribute__((always_inline)) Node *node_at(const Guest *g, int64_t n) {
    return (Node *)(g->arena.p + (size_t)n * NODE_UNIT);
}

/* Bit t set: m[t] (t < 8) is nonzero. */
static inline __attribute__((always_inline)) unsigned group_mask(const uint32_t *m) {
#if defined(__SSE2__)
    __m128i z = _mm_setzero_si128();
    __m128i a = _mm_loadu_si128((const __m128i *)m), b = _mm_loadu_si128((const __m128i *)(m + 4));
    unsigned empty = (unsigned)_mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(a, z))) |
                     (unsigned)_mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(b, z))) << 4;
    return ~empty & 0xffu;
#else
    unsigned r = 0;
    for (int t = 0; t < 8; t++) r |= (unsigned)(m[t] != 0) << t;
    return r;
#endif
}

/* Set map[i] of table n to m (nonzero: a new mapping) or clear it (m = 0), keeping occ exact. */
static inline __attribute__((always_inline)) void node_set_map(Node *n, int i, uint32_t m) {
    n->map[i] = m;
    if (m) {
        n->occ |= 1ULL << (i >> 3);
    } else if (!group_mask(&n->map[i & ~7])) {
        n->occ &= ~(1ULL << (i >> 3));
    }
}

/* A new table (level L when `leaf`): empty entries, no children; *index = its handle. NULL when out of
 * memory or past the handles' range. */
static Node *node_new(Guest *g, int64_t gframe, int leaf, int64_t *index) {
    int64_t bytes = (int64_t)NODE_BYTES(leaf);
    if (g->arena_used + bytes > (int64_t)g->arena.cap) {
        /* handles are int32; every table holds a guest frame, so frames bound the tables */
        size_t limit = (size_t)(g->frames + 1) * NODE_BYTES(0);
        if (limit > (size_t)INT32_MAX * NODE_UNIT) limit = (size_t)INT32_MAX * NODE_UNIT;
        if (region_grow(&g->arena, (size_t)(g->arena_used + bytes), limit) != 0) return NULL;
    }
    *index = g->arena_used / NODE_UNIT;
    Node *n = node_at(g, *index);
    g->arena_used += bytes;
    /* the bytes were never used (see Guest.arena): the map and nmap are already zero */
    n->gframe = (uint32_t)gframe;
    if (!leaf) memset(n->child, 0xff, 512 * sizeof(int32_t));
    return n;
}

/* Shift of the address bits that index the entries of a level-k table. */
static inline int entry_shift(int levels, int k) { return 12 + 9 * (levels - k); }

/* Index of the level-k table (k >= 2) covering v, or -1 when it does not exist. */
static int64_t table_of(const Guest *g, uint64_t v, int k) {
    int L = g->levels;
    int64_t n = hash_get(&g->root, v >> entry_shift(L, 1));
    for (int lvl = 3; lvl <= k && n >= 0; lvl++)
        n = node_at(g, n)->child[(v >> entry_shift(L, lvl - 1)) & 511];
    return n;
}

/* Prefetch the guest leaf-table entry of x and its table's header (a first touch reads the one and
 * updates the other: on a sparse trace these are misses of a multi-megabyte table array; with the slot
 * prefetch, the TLB-only replay of sparse went 1.55x faster, pairs of runs). The tables above the leaf
 * are few and cached; nothing is changed. */
static inline __attribute__((always_inline)) void guest_leaf_prefetch(const Guest *g, uint64_t x) {
    int L = g->levels;
    int64_t n = hash_get(&g->root, x >> entry_shift(L, 1));
    for (int k = 2; k < L && n >= 0; k++) n = node_at(g, n)->child[(x >> entry_shift(L, k)) & 511];
    if (n >= 0) {
        __builtin_prefetch(&node_at(g, n)->map[(x >> 12) & 511], 1);
        __builtin_prefetch(&node_at(g, n)->nmap, 1);
    }
}

/* The guest mapping covering x: its shift (0 = unmapped), its table node and entry index. When `path` is
 * given, path[k] = node index of the level-k table on x's way down (k = 2.. up to the mapping's level or
 * the last table that exists). The one descent of the guest tables: translations, faults and releases. */
static int guest_find(const Guest *g, uint64_t x, int64_t *path, int64_t *node, int *idx) {
    int L = g->levels;
    int64_t n = hash_get(&g->root, x >> entry_shift(L, 1));
    for (int k = 2; n >= 0; k++) {
        if (path) path[k] = n;
        int es = entry_shift(L, k);
        int i = (int)((x >> es) & 511);
        if (node_at(g, n)->map[i]) { *node = n; *idx = i; return es; }
        if (k == L) break;  /* a leaf-level table has no child array */
        n = node_at(g, n)->child[i];
    }
    return 0;
}

#endif /* MEMMODEL_CORE_STATE_H */
