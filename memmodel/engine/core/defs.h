/* Counters and series columns (X-macro tables), kind/status/outcome codes, splitmix64.
 * Part of the engine core: included once, in order, by memmodel/engine/_core.c (not standalone). */
#ifndef MEMMODEL_CORE_DEFS_H
#define MEMMODEL_CORE_DEFS_H

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

/* qsort order of uint64 keys. */
static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The first index i in [from, to) with a[i] != 0, else `to`: bytes up to an 8-aligned index, then a word of
 * 8 bytes per step (the lowest nonzero byte of a little-endian word by its trailing zeros; x86-64 and
 * aarch64 Linux are little-endian), then the tail bytes. Reads only a[from .. to). */
static inline int64_t first_nonzero_u8(const uint8_t *a, int64_t from, int64_t to) {
    int64_t i = from;
    while (i < to && (i & 7)) {
        if (a[i]) return i;
        i++;
    }
    for (; i + 8 <= to; i += 8) {
        uint64_t w;
        memcpy(&w, a + i, 8);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        if (w) return i + (__builtin_ctzll(w) >> 3);
#else
        if (w) break;  /* found in this word: the byte loop below finds which */
#endif
    }
    for (; i < to; i++)
        if (a[i]) return i;
    return to;
}

static inline uint64_t splitmix64(uint64_t x) {
    uint64_t z = x + 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

#endif /* MEMMODEL_CORE_DEFS_H */
