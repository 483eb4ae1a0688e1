/* qsort.c: libc qsort of 8000 pseudo-random ints (memmodel shipped trace).
 *
 * A mixed workload: the comparison callback, libc's merge sort with its temporary
 * buffer (loads, stores, read-modify-writes) and the stack. Fixed-seed LCG, so the
 * trace is identical on every run.
 * Usage: qsort [n]   (default 8000)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static int cmp_int(const void *x, const void *y) {
    int a = *(const int *)x, b = *(const int *)y;
    return (a > b) - (a < b);
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 8000;
    int *v = malloc((size_t)n * sizeof(int));
    if (!v) return 1;
    uint32_t x = 12345u; /* fixed seed */
    for (long i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        v[i] = (int)(x >> 1);
    }
    qsort(v, (size_t)n, sizeof(int), cmp_int);
    long bad = 0;
    for (long i = 1; i < n; i++) bad += v[i - 1] > v[i];
    printf("qsort: n=%ld, out of order %ld\n", n, bad);
    free(v);
    return 0;
}
