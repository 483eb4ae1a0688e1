/* Guest faults and guest tables (section 2).
 * Part of the engine core: included once, in order, by memmodel/engine/_core.c (not standalone). */
#ifndef MEMMODEL_CORE_GUEST_H
#define MEMMODEL_CORE_GUEST_H

/* ---------------------------------------------------------------------------------------------
 * Guest fault (docs/model.md section 2)
 * -------------------------------------------------------------------------------------------*/
/* Whether the aligned region of shift s around v holds no guest mapping. */
static int guest_region_free(const Guest *g, uint64_t v, int s) {
    int L = g->levels;
    int k = leaf_level(L, s);
    int64_t t = table_of(g, v, k);
    if (t < 0) return 1;
    const Node *node = node_at(g, t);
    int idx = (int)((v >> s) & 511);
    if (node->map[idx]) return 0;
    int32_t c = node->child[idx];
    return c < 0 || node_at(g, c)->nmap == 0;
}

/* A guest table at level k covering v, allocated (zeroed, host-touched) when missing. */
static int guest_table(Engine *e, uint64_t v, int k, int64_t *out) {
    Guest *g = &e->g;
    int L = g->levels;
    int64_t t = table_of(g, v, k);
    if (t >= 0) { *out = t; return ST_OK; }
    /* the parent exists (tables are allocated top-down) */
    int64_t frame = buddy_alloc(&g->buddy, 0);
    if (frame < 0) return ST_OOM_GUEST;
    e->C[C_GUEST_PT_PAGES]++;
    int64_t idx;
    if (!node_new(g, frame, k == L, &idx)) return ST_NOMEM;
    if (k == 2) {
        if (hash_put(&g->root, v >> entry_shift(L, 1), idx) != ST_OK) return ST_NOMEM;
    } else {
        int64_t parent = table_of(g, v, k - 1);
        node_at(g, parent)->child[(v >> entry_shift(L, k - 1)) & 511] = (int32_t)idx;
    }
    if (e->p.virt) {
        int st = host_touch(e, frame, 1);
        if (st) return st;
    }
    *out = idx;
    return ST_OK;
}

/* Add 1 to nmap of every table on the path of v from level 2 to level k. */
static void guest_count_path(Guest *g, uint64_t v, int k, int64_t delta) {
    int L = g->levels;
    int64_t n = hash_get(&g->root, v >> entry_shift(L, 1));
    for (int lvl = 2; lvl <= k && n >= 0; lvl++) {
        node_at(g, n)->nmap += delta;
        if (lvl < k) n = node_at(g, n)->child[(v >> entry_shift(L, lvl)) & 511];
    }
}

/* Guest fault at v (unmapped). `path` comes from guest_find's descent of v (path[k] = the level-k table
 * covering v, -1 below the deepest that exists); the missing tables are allocated top-down and added to
 * it, so path[k] covers k = 2..leaf on return; *gs_out and *gframe_out give v's new mapping (its shift
 * and 4 KiB guest frame). */
static int guest_fault(Engine *e, uint64_t v, int refault, int64_t *path, int *gs_out, int64_t *gframe_out) {
    Guest *g = &e->g;
    int L = g->levels;
    int s = 0;
    for (int cand = 30; cand >= 12; cand -= 9) {
        if (cand > g->pshift) continue;
        if (cand > 12 && !guest_region_free(g, v, cand)) continue;
        if (buddy_can_alloc(&g->buddy, cand - 12)) { s = cand; break; }
    }
    if (s == 0) return ST_OOM_GUEST;
    int leaf = leaf_level(L, s);
    for (int k = 2; k <= leaf; k++) {
        int64_t n = path[k];  /* guest_find found it, or it is missing (no second descent) */
        if (n < 0) {
            /* a missing table: allocated (and zeroed by the guest), linked, host-touched */
            int64_t frame = buddy_alloc(&g->buddy, 0);
            if (frame < 0) return ST_OOM_GUEST;
            e->C[C_GUEST_PT_PAGES]++;
            if (!node_new(g, frame, k == L, &n)) return ST_NOMEM;
            if (k == 2) {
                if (hash_put(&g->root, v >> entry_shift(L, 1), n) != ST_OK) return ST_NOMEM;
            } else {
                node_at(g, path[k - 1])->child[(v >> entry_shift(L, k - 1)) & 511] = (int32_t)n;
            }
            if (e->p.virt) {
                int st = host_touch(e, frame, 1);
                if (st) return st;
            }
        }
        path[k] = n;
    }
    int64_t data = buddy_alloc(&g->buddy, s - 12);
    if (data < 0) return ST_OOM_GUEST;
    node_set_map(node_at(g, path[leaf]), (int)((v >> s) & 511), (uint32_t)(data + 1));
    for (int k = 2; k <= leaf; k++) node_at(g, path[k])->nmap++;
    e->C[C_GUEST_FAULTS]++;
    e->C[C_GUEST_PAGES_4K + (s - 12) / 9]++;
    if (s < g->pshift) e->C[C_GUEST_FALLBACKS]++;
    e->C[C_GUEST_RESIDENT_BYTES] += 1ULL << s;
    if (g->zeroing) {
        e->C[C_GUEST_ZEROED_BYTES] += 1ULL << s;
        if (refault) e->C[C_GUEST_ZEROED_REFAULT_BYTES] += 1ULL << s;
        if (e->p.virt) {
            int st = host_touch(e, data, (int64_t)1 << (s - 12));
            if (st) return st;
        }
    }
    *gs_out = s;
    *gframe_out = data + (int64_t)((v >> 12) & ((1ULL << (s - 12)) - 1));
    return ST_OK;
}

#endif /* MEMMODEL_CORE_GUEST_H */
