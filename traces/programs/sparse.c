/* sparse.c: sparse random accesses over 6 GiB, twice the 3 GiB reach of a Skylake L2 TLB with
 * 2 MiB pages (1536 entries x 2 MiB) (memmodel shipped trace and the README's demo).
 *
 * A 6 GiB anonymous mapping (MAP_NORESERVE: only touched pages take memory) is accessed at
 * 65536 pseudo-random 4 KiB pages (page i is splitmix64(i) mod 1572864, at a random 64-byte line
 * in it), in 4 rounds that visit the same pages in different orders (round r visits
 * i * K_r mod 65536 for an odd K_r): round 0 stores, rounds 1-3 increment (load + store).
 * Between rounds the memory lifecycle moves: after round 1 the top 1 GiB is unmapped and mapped
 * again (fresh zero pages) and the bottom 1 GiB is given back with madvise(MADV_DONTNEED); after
 * round 2, 64 MiB in the middle is given back with madvise(MADV_DONTNEED). At the end it prints
 * a checksum and unmaps everything. Deterministic (fixed constants, no clock, no input).
 * Usage: sparse   (no arguments)
 */
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>

#define GIB ((uint64_t)1 << 30)
#define SPAN (6 * GIB)
#define PAGES (SPAN >> 12) /* 1572864 pages of 4 KiB */
#define NTOUCH 65536u      /* distinct pages touched (a power of two: i * odd K is a permutation) */
#define ROUNDS 4

static uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static const int mflags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;

int main(void) {
    static const uint32_t k[ROUNDS] = {1u, 40503u, 2654435761u, 97u}; /* odd: permutations */
    volatile uint8_t *p = mmap(NULL, SPAN, PROT_READ | PROT_WRITE, mflags, -1, 0);
    if (p == MAP_FAILED) return 1;
    uint64_t sum = 0;
    for (int r = 0; r < ROUNDS; r++) {
        for (uint32_t j = 0; j < NTOUCH; j++) {
            uint32_t i = (j * k[r]) & (NTOUCH - 1);
            uint64_t h = splitmix64(i);
            uint64_t off = ((h % PAGES) << 12) | ((h >> 58) << 6);
            if (r == 0)
                p[off] = (uint8_t)i;
            else
                p[off] += 1;
        }
        if (r == 1) {
            munmap((void *)(p + 5 * GIB), GIB);
            if (mmap((void *)(p + 5 * GIB), GIB, PROT_READ | PROT_WRITE, mflags | MAP_FIXED, -1, 0) == MAP_FAILED)
                return 1;
            madvise((void *)p, GIB, MADV_DONTNEED);
        }
        if (r == 2)
            madvise((void *)(p + 3 * GIB), 64u << 20, MADV_DONTNEED);
    }
    for (uint32_t i = 0; i < NTOUCH; i += 4096) {
        uint64_t h = splitmix64(i);
        sum += p[((h % PAGES) << 12) | ((h >> 58) << 6)];
    }
    printf("sparse checksum %llu\n", (unsigned long long)sum);
    munmap((void *)p, SPAN);
    return 0;
}
