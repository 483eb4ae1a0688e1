/* stream.c: a sequential STREAM-style triad (memmodel shipped trace).
 *
 * Three arrays of N doubles (N = 262144: 2 MiB each, 6 MiB in all) are initialised,
 * then REPS passes of the triad a[i] = b[i] + s * c[i] run over them. Accesses are
 * unit-stride: the friendliest case for TLBs and prefetchers.
 * Usage: stream [reps]   (default 2)
 */
#include <stdio.h>
#include <stdlib.h>

#define N (1u << 18)

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 2;
    double *a = malloc(N * sizeof(double));
    double *b = malloc(N * sizeof(double));
    double *c = malloc(N * sizeof(double));
    if (!a || !b || !c) return 1;
    for (unsigned i = 0; i < N; i++) {
        a[i] = 0.0;
        b[i] = 1.0 + i;
        c[i] = 2.0 * i;
    }
    const double s = 3.0;
    for (int r = 0; r < reps; r++)
        for (unsigned i = 0; i < N; i++) a[i] = b[i] + s * c[i];
    double sum = 0.0;
    for (unsigned i = 0; i < N; i += 4096) sum += a[i];
    printf("stream: %d reps, checksum %.1f\n", reps, sum);
    free(a);
    free(b);
    free(c);
    return 0;
}
