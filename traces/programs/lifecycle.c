/* lifecycle.c: memory that is freed and touched again (memmodel shipped trace, recorded with
 * valgrind --trace-syscalls=yes so that the frees become U records).
 *
 * 1. three rounds of malloc(4 MiB) / touch / free: glibc serves blocks above the mmap threshold
 *    with mmap and returns them with munmap (the threshold is pinned with mallopt so that glibc
 *    does not raise it after the first free);
 * 2. an 8 MiB mapping, touched, then madvise(MADV_DONTNEED) of 2 MiB in the middle and
 *    madvise(MADV_FREE) of 1 MiB near the end, both touched again (refaults);
 * 3. 512 heap blocks of 4000 B (brk), freed in order: the last free merges them into the top
 *    chunk, which is then past the trim threshold, and glibc shrinks the heap (a brk to a lower break);
 * 4. realloc growth of a 256 KiB mmapped block to 8 MiB (glibc uses mremap; a second 256 KiB block
 *    mapped right after it makes the first growth move it), then a shrink to 1 MiB (an mremap
 *    shrink in place), then free (munmap) of both blocks;
 * 5. munmap of the 8 MiB mapping.
 * Memory is touched with a 4 KiB stride (one store per page) so the trace stays small.
 * Usage: lifecycle   (no arguments; deterministic)
 */
#include <malloc.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)

static void touch(volatile char *p, size_t n, char v) {
    for (size_t i = 0; i < n; i += 4 * KIB)
        p[i] = v;
}

int main(void) {
    mallopt(M_MMAP_THRESHOLD, (int)(128 * KIB)); /* fixed: large blocks always mmapped */
    mallopt(M_TRIM_THRESHOLD, (int)(128 * KIB)); /* fixed: trim the heap top above 128 KiB */

    for (int r = 0; r < 3; r++) { /* 1. malloc / free of a large block: mmap / munmap */
        char *big = malloc(4 * MIB);
        if (!big) return 1;
        touch(big, 4 * MIB, (char)r);
        free(big);
    }

    char *m = mmap(NULL, 8 * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return 1;
    touch(m, 8 * MIB, 1); /* 2. madvise DONTNEED / FREE of parts, then refault */
    madvise(m + 2 * MIB, 2 * MIB, MADV_DONTNEED);
    madvise(m + 6 * MIB, 1 * MIB, MADV_FREE);
    touch(m + 2 * MIB, 2 * MIB, 2);
    touch(m + 6 * MIB, 1 * MIB, 3);

    static char *small[512]; /* 3. heap blocks freed in order: one brk shrink */
    for (int i = 0; i < 512; i++) {
        small[i] = malloc(4000);
        if (!small[i]) return 1;
        small[i][0] = (char)i;
    }
    for (int i = 0; i < 512; i++)
        free(small[i]);

    size_t size = 256 * KIB; /* 4. realloc growth (mremap), shrink, free */
    char *g = malloc(size);
    char *h = malloc(size); /* mapped right after g: g's first growth cannot stay in place */
    if (!g || !h) return 1;
    touch(g, size, 4);
    touch(h, size, 4);
    while (size < 8 * MIB) {
        char *n = realloc(g, 2 * size);
        if (!n) return 1;
        g = n;
        touch(g + size, size, 5);
        size *= 2;
    }
    g = realloc(g, 1 * MIB);
    if (!g) return 1;
    touch(g, 1 * MIB, 6);
    free(g);
    free(h);

    munmap(m, 8 * MIB); /* 5. */
    printf("lifecycle done\n");
    return 0;
}
