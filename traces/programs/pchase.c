/* pchase.c: a random pointer chase over a 32 MiB region (memmodel shipped trace).
 *
 * 131072 nodes of 256 bytes (32 MiB) are linked into one random cycle (Sattolo's
 * algorithm, xorshift64 with a fixed seed, so the trace is identical on every run),
 * then the chase follows STEPS pointers. Each step is one dependent 8-byte load at a
 * random 256-byte-aligned address: a TLB- and cache-hostile access stream.
 * Usage: pchase [steps]   (default 400000)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define NODE_BYTES 256
#define NODES (1u << 17) /* 131072 nodes x 256 B = 32 MiB */

struct node {
    struct node *next;
    char pad[NODE_BYTES - sizeof(struct node *)];
};

static uint64_t rng_state = 0x9E3779B97F4A7C15ull; /* fixed seed */

static uint64_t xorshift64(void) {
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

int main(int argc, char **argv) {
    long steps = argc > 1 ? atol(argv[1]) : 400000;
    struct node *nodes = malloc((size_t)NODES * sizeof(struct node));
    uint32_t *perm = malloc((size_t)NODES * sizeof(uint32_t));
    if (!nodes || !perm) return 1;
    for (uint32_t i = 0; i < NODES; i++) perm[i] = i;
    for (uint32_t i = NODES - 1; i > 0; i--) { /* Sattolo: one cycle through all nodes */
        uint32_t j = (uint32_t)(xorshift64() % i);
        uint32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (uint32_t i = 0; i < NODES; i++) nodes[perm[i]].next = &nodes[perm[(i + 1) % NODES]];
    struct node *p = &nodes[perm[0]];
    for (long s = 0; s < steps; s++) p = p->next;
    printf("pchase: %ld steps, end node %ld\n", steps, (long)(p - nodes));
    free(perm);
    free(nodes);
    return 0;
}
