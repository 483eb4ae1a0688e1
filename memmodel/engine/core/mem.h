/* Large state arrays (guest table arena, slots) on the replaying machine's 2 MiB pages.
 * Part of the engine core: included once, in order, by memmodel/engine/_core.c (not standalone). */
#ifndef MEMMODEL_CORE_MEM_H
#define MEMMODEL_CORE_MEM_H

#include <sys/mman.h>

/* The slot table and the guest table arena are read at random, one line per page. On a sparse trace they
 * grow to megabytes, and on 4 KiB pages nearly every such read also misses the replaying machine's own
 * TLB (a 2D walk when the replay runs in a VM). Arrays of 2 MiB and more are therefore anonymous mappings
 * advised onto transparent huge pages (Linux; elsewhere plain memory). Measured on the shipped sparse
 * trace (64,300 pages over 6 GiB), the same build with and without the advice, pairs of runs: the TLB-only
 * replay end to end 20.2 -> 10.8 ms (median pair 1.86x), the nested baseline-4k 1.20x faster; traces whose
 * state stays below 2 MiB are unchanged. */
#define STATE_HUGE_MIN ((size_t)1 << 21)
#define STATE_HUGE_ALIGN ((size_t)1 << 21)

static size_t state_mapped_len(size_t bytes) { return (bytes + STATE_HUGE_ALIGN - 1) & ~(STATE_HUGE_ALIGN - 1); }

#if defined(MAP_ANONYMOUS)
/* An anonymous mapping of `len` bytes (a multiple of 2 MiB) aligned to 2 MiB (the kernel backs a huge page
 * only where an aligned 2 MiB range lies inside the mapping; mmap alone does not promise that) and
 * advised onto transparent huge pages; `prot` and the extra `flags` as mmap's. NULL when refused. */
static uint8_t *huge_map(size_t len, int prot, int flags) {
    uint8_t *raw = (uint8_t *)mmap(NULL, len + STATE_HUGE_ALIGN, prot, MAP_PRIVATE | MAP_ANONYMOUS | flags, -1, 0);
    if (raw == (uint8_t *)MAP_FAILED) return NULL;
    uint8_t *p = (uint8_t *)(((uintptr_t)raw + STATE_HUGE_ALIGN - 1) & ~(uintptr_t)(STATE_HUGE_ALIGN - 1));
    if (p > raw) munmap(raw, (size_t)(p - raw));
    if (raw + len + STATE_HUGE_ALIGN > p + len) munmap(p + len, (size_t)(raw + len + STATE_HUGE_ALIGN - (p + len)));
#if defined(MADV_HUGEPAGE)
    madvise(p, len, MADV_HUGEPAGE);
#endif
    return p;
}
#endif

/* Zeroed memory of `bytes`: when large, a huge_map. */
static void *state_alloc(size_t bytes) {
#if defined(MAP_ANONYMOUS)
    if (bytes >= STATE_HUGE_MIN) return huge_map(state_mapped_len(bytes), PROT_READ | PROT_WRITE, 0);
#endif
    return calloc(1, bytes);
}

/* Free p, `bytes` long: a mapping of `mapped` bytes when it was made as one (bytes >= `threshold`), else
 * heap memory. */
static void free_by_size(void *p, size_t bytes, size_t threshold, size_t mapped) {
    if (!p) return;
#if defined(MAP_ANONYMOUS)
    if (bytes >= threshold) { munmap(p, mapped); return; }
#endif
    (void)threshold;
    (void)mapped;
    free(p);
}

/* Free what state_alloc or state_grow returned for `bytes` bytes (the size decides how it was made). */
static void state_free(void *p, size_t bytes) { free_by_size(p, bytes, STATE_HUGE_MIN, state_mapped_len(bytes)); }

/* p (from state_alloc, `old` bytes) grown to `bytes`, contents kept: a new aligned mapping and one copy
 * (mremap could move it to an address the kernel does not back with huge pages). */
static void *state_grow(void *p, size_t old, size_t bytes) {
    void *q = state_alloc(bytes);
    if (!q) return NULL;
    if (p) memcpy(q, p, old);
    state_free(p, old);
    return q;
}

/* Zeroed memory of `bytes` that a replay touches sparsely (per-guest-frame maps, buddy bitmaps): from 1
 * MiB on, an anonymous mapping whose pages the kernel zeroes when first touched, so the untouched part of
 * a 16 GiB guest's or 64 GiB host's maps costs nothing. calloc re-zeroed all of it on every replay once
 * glibc's mmap threshold had risen past these sizes (after the first replay freed them): an empty nested
 * replay cost 0.6-0.9 ms, 64 % of it in memset (perf); now 0.19 ms. Below 1 MiB calloc stays cheaper
 * than a mapping's system calls and faults (an empty TLB-only replay: 60 us, 80 us with mappings from 64
 * KiB on). */
#define SPARSE_MAP_MIN ((size_t)1 << 20)

static size_t sparse_mapped_len(size_t bytes) { return (bytes + 4095) & ~(size_t)4095; }

static void *sparse_alloc(size_t bytes) {
#if defined(MAP_ANONYMOUS)
    if (bytes >= SPARSE_MAP_MIN) {
        void *p = mmap(NULL, sparse_mapped_len(bytes), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        return p == MAP_FAILED ? NULL : p;
    }
#endif
    return calloc(1, bytes);
}

/* Free what sparse_alloc returned for `bytes` bytes. */
static void sparse_free(void *p, size_t bytes) { free_by_size(p, bytes, SPARSE_MAP_MIN, sparse_mapped_len(bytes)); }

/* A growable array that moves at most once (the guest table arena): while below 2 MiB it grows by
 * doubling and copying (small traces keep a few heap kilobytes); past that, address space for `limit`
 * bytes is reserved (PROT_NONE, no memory), advised onto huge pages as above, and made writable in place
 * as the array grows: one copy of the first 2 MiB, then none, and the bytes past the used end are the
 * kernel's fresh zero pages. On the shipped sparse trace (3,090 tables, 6.3 MB) growing by copying
 * wrote about 24 MB per replay (zeroing each new block, then the copy: reckoned from the block sizes); in
 * place, the TLB-only replay ran 1.06x faster (median of 30 pairs of runs). When
 * the reservation fails (an address-space limit), the array keeps growing by copy. */
typedef struct {
    uint8_t *p;         /* start; NULL before the first growth */
    size_t cap;         /* writable bytes from p; all zero past what the owner used, unless raw */
    size_t reserved;    /* bytes of address space reserved at p (0: a state_alloc block, grown by copy) */
    int raw;            /* set by the owner: bytes past the used end may hold anything (never read before
                         * written), so below 2 MiB it grows by realloc, without zeroing (and, for glibc's
                         * mapped chunks, without copying: the flat store's frames on sparse, 6.3 MB, took
                         * ~4 M memset and 2 M memcpy instructions per replay through calloc and copy) */
} Region;

#define REGION_FIRST ((size_t)1 << 16)

/* Make r at least `need` bytes (doubling, from 64 KiB), contents kept; `limit` bounds what it can ever
 * need (the reservation). Returns 0, or -1 when out of memory or past `limit` (r unchanged). */
static int region_grow(Region *r, size_t need, size_t limit) {
    if (need > limit) return -1;
    size_t cap = r->cap ? r->cap * 2 : REGION_FIRST;
    while (cap < need) cap *= 2;
    if (cap > limit) cap = limit;
#if defined(MAP_ANONYMOUS) && defined(MAP_NORESERVE)
    if (!r->reserved && cap >= STATE_HUGE_MIN) {
        size_t len = state_mapped_len(limit);
        uint8_t *q = huge_map(len, PROT_NONE, MAP_NORESERVE);
        if (q != NULL) {
            if (mprotect(q, cap, PROT_READ | PROT_WRITE) != 0) {
                munmap(q, len);
                return -1;
            }
            if (r->p) memcpy(q, r->p, r->cap);
            state_free(r->p, r->cap);
            r->p = q;
            r->cap = cap;
            r->reserved = len;
            return 0;
        }
    }
    if (r->reserved) {
        if (mprotect(r->p + r->cap, cap - r->cap, PROT_READ | PROT_WRITE) != 0) return -1;
        r->cap = cap;
        return 0;
    }
#endif
    uint8_t *q = r->raw && cap < STATE_HUGE_MIN ? (uint8_t *)realloc(r->p, cap)
                                                : (uint8_t *)state_grow(r->p, r->cap, cap);
    if (!q) return -1;
    r->p = q;
    r->cap = cap;
    return 0;
}

static void region_free(Region *r) {
#if defined(MAP_ANONYMOUS) && defined(MAP_NORESERVE)
    if (r->reserved) {
        munmap(r->p, r->reserved);
        r->p = NULL;
        r->cap = r->reserved = 0;
        return;
    }
#endif
    state_free(r->p, r->cap);
    r->p = NULL;
    r->cap = 0;
}
#endif
