/* Large state arrays (guest table arena, slots) on the replaying machine's 2 MiB pages.
 * Part of the engine core: included once, in order, by memmodel/engine/_core.c (not standalone). */
#ifndef MEMMODEL_CORE_MEM_H
#define MEMMODEL_CORE_MEM_H

#include <sys/mman.h>

/* The slot table and the guest table arena are read at random, one line per page. On a sparse trace they
 * grow to megabytes, and on 4 KiB pages nearly every such read also misses the replaying machine's own
 * TLB (a 2D walk when the replay runs in a VM). Arrays of 2 MiB and more are therefore anonymous mappings
 * advised onto transparent huge pages (Linux; elsewhere plain memory): measured on the shipped sparse
 * trace (64,300 pages over 6 GiB), the TLB-only replay end to end 14.0 -> 10.1 ms, the nested baseline-4k
 * 58 -> 54 ms; traces whose state stays small are unchanged. Growth moves the mapping (mremap), no copy. */
#define STATE_HUGE_MIN ((size_t)1 << 21)

/* Zeroed memory of `bytes`: an anonymous mapping advised onto transparent huge pages when large. */
static void *state_alloc(size_t bytes) {
#if defined(MAP_ANONYMOUS)
    if (bytes >= STATE_HUGE_MIN) {
        void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return NULL;
#if defined(MADV_HUGEPAGE)
        madvise(p, bytes, MADV_HUGEPAGE);
#endif
        return p;
    }
#endif
    return calloc(1, bytes);
}

static void state_free(void *p, size_t bytes) {
    if (!p) return;
#if defined(MAP_ANONYMOUS)
    if (bytes >= STATE_HUGE_MIN) { munmap(p, bytes); return; }
#endif
    free(p);
}

/* p (from state_alloc, `old` bytes) grown to `bytes`, contents kept. */
static void *state_grow(void *p, size_t old, size_t bytes) {
#if defined(__linux__) && defined(MREMAP_MAYMOVE)
    if (old >= STATE_HUGE_MIN) {
        void *q = mremap(p, old, bytes, MREMAP_MAYMOVE);
        if (q == MAP_FAILED) return NULL;
        madvise(q, bytes, MADV_HUGEPAGE);
        return q;
    }
#endif
    void *q = state_alloc(bytes);
    if (!q) return NULL;
    if (p) memcpy(q, p, old);
    state_free(p, old);
    return q;
}
#endif
