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

/* Zeroed memory of `bytes`: when large, an anonymous mapping aligned to 2 MiB (the kernel backs a huge
 * page only where an aligned 2 MiB range lies inside the mapping; mmap alone does not promise that)
 * and advised onto transparent huge pages. */
static void *state_alloc(size_t bytes) {
#if defined(MAP_ANONYMOUS)
    if (bytes >= STATE_HUGE_MIN) {
        size_t len = state_mapped_len(bytes);
        uint8_t *raw = (uint8_t *)mmap(NULL, len + STATE_HUGE_ALIGN, PROT_READ | PROT_WRITE,
                                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
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
    return calloc(1, bytes);
}

/* Free what state_alloc or state_grow returned for `bytes` bytes (the size decides how it was made). */
static void state_free(void *p, size_t bytes) {
    if (!p) return;
#if defined(MAP_ANONYMOUS)
    if (bytes >= STATE_HUGE_MIN) { munmap(p, state_mapped_len(bytes)); return; }
#endif
    free(p);
}

/* p (from state_alloc, `old` bytes) grown to `bytes`, contents kept: a new aligned mapping and one copy
 * (mremap could move it to an address the kernel does not back with huge pages). */
static void *state_grow(void *p, size_t old, size_t bytes) {
    void *q = state_alloc(bytes);
    if (!q) return NULL;
    if (p) memcpy(q, p, old);
    state_free(p, old);
    return q;
}
#endif
