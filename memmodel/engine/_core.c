/* memmodel's engine core: the canonical model (docs/model.md v2, sections 1-9) in C.
 *
 * One Engine object holds the state of one replay of one config. Python (memmodel.engine.replay) builds
 * it from a resolved config, feeds it batches of trace records and reads counters, the walk-length
 * histogram and the time series. No I/O and no Python objects in the model code below the glue.
 *
 * Layout (state you can name):
 *   Lru     one set-associative true-LRU array (TLB array, PSC, nested TLB): `ways` tags per set, -1 =
 *           empty way, with the recency order in one word of 4-bit way numbers per set (ways <= 16) or
 *           as the tags' own order (more ways). All arrays live in one int64 `tags` buffer (core/lru.h).
 *   Buddy   one side's allocator: a bitmap per order 0..18 (bit i of order o = frames [i<<o, (i+1)<<o)
 *           are a free block), nr_free per order, a lowest-free-word hint per order, and for
 *           placement = "random" a Fenwick tree of per-word popcounts per order (k-th free block in
 *           O(log n)). Free space is always the canonical decomposition (frees merge with free buddies).
 *   Guest   the guest's page tables as a radix tree that mirrors docs/model.md section 2: the root's children
 *           (level-2 tables, identified by v >> (12 + 9 (L-1)), unbounded for non-canonical addresses)
 *           in a small hash table; every table node has 512 entries, each with an optional child table
 *           (above the leaf level: a leaf-level table keeps no child array) and an optional leaf mapping
 *           of the entry's size (a table may exist under an entry that holds a huge page: tables are
 *           never freed). Nodes lie back to back in one arena, named by int32 handles. `nmap` counts
 *           the leaf mappings below a node, so "the aligned region around v holds no mapping" is one
 *           descent; `occ` marks the groups of 8 entries holding a mapping (a release visits those only).
 *   Host    per guest-physical 4 KiB frame: the host page shift backing it (0 = unbacked), the host
 *           frame (of a page's first frame), an ever-backed flag (4 KiB host pages; per 2 MiB region for
 *           larger ones); per 2 MiB / 1 GiB guest-physical region: backed frame counts;
 *           per host table level: a presence array (host tables are identified by gpa, bounded by
 *           guest memory).
 *   Slots   a hash table from 4 KiB virtual page to a slot caching what its translations need
 *           (guest frame, guest shift gs, effective shift es = min(gs, hs)) and the generation it was
 *           computed in. A slot exists iff the page was ever translated (touched_bytes). Faults only
 *           add mappings, so a cached slot stays valid until a release changes a mapping or a backing:
 *           a short release marks the slots of the pages it changed stale (slots_forget), a long one
 *           bumps the generation and records its pages' range, a slot of an older generation outside
 *           every range recorded since is current again (slot_revalidate), and a stale slot is
 *           recomputed on its next use (docs/model.md Part 3 item 3).
 *   Flat    the guest of a native replay with 4 KiB pages only, instead of Guest's tables and the Slots
 *           (core/flat.h, docs/model.md Part 3 item 9): per 2 MiB virtual region touched (= leaf table),
 *           bitmaps of the mapped and the ever-translated pages and the pages' frames; the tables above
 *           the leaf level as a set of identifiers. The Guest keeps its Buddy and root frame.
 *
 * Exactness of the shortcuts (docs/model.md states the argument; the differential tests prove it):
 *   - Repeat collapsing: after a full translation of page p, p's TLB entry is the most recent entry of
 *     the L1 array that holds its size (or of the L2 array when no L1 array holds it). Another
 *     translation of p before any event is therefore a hit that changes no LRU order and no other
 *     state: it is counted directly. Events (a U record, a reporting pass) end the collapse.
 *   - 4 KiB L1 fast path (every entry is 4 KiB: guest or host page size 4K): an L1 hit on tag
 *     (4K, p) proves p was translated, mapped and backed since its entry was filled, because every
 *     release that unmaps p or discards its backing invalidates or flushes p's entries (section 9);
 *     so the hit needs no page lookup. The same holds for an L2 hit on (4K, p).
 *   - Flat store: the same allocator calls in the same order as the tables' fault and release paths,
 *     and the bitmaps are the mappings (no cached state); see core/flat.h.
 *   - 4 KiB walk fast path: when both fast lookups miss and p's slot is current (same generation: no
 *     release changed a mapping or a backing since it was computed), p is mapped and backed with an
 *     effective size of 4 KiB, so no fault happens and the walk, the PSC and TLB fills are exactly
 *     translate_full's walk branch (lookups of other entry sizes are empty: every entry is 4 KiB);
 *     when the slot is missing or stale, resolve() runs steps 1-2 first and the same walk follows.
 *   - LRU sets (core/lru.h): an order word plus tags in place, with 8-bit fingerprints proposing ways,
 *     keeps the same ordered list of valid tags as a most-recent-first list; a hit on the most recent
 *     way changes no order. The fingerprint only proposes: the full tag decides every hit.
 *   - accesses is not counted per translation: it equals l1_hits + l2_hits + walks (every translation
 *     ends in exactly one of them) and is set from them before any read (snapshot, counters).
 *   - Specialised record loops: the same loop compiled with the ways of the 4 KiB arrays and "no
 *     outcomes" as constants; a loop is picked only when the engine's arrays have exactly those ways.
 *   - The packed compact form: the same records (kind, size, icount) in fewer bytes; a replay of it
 *     equals a replay of the unpacked columns (tests/engine/test_compact_form.py).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h> /* clock_gettime: feed_chunked sizes its chunks by time */
#if defined(__SSE2__)
#include <emmintrin.h> /* core/lru.h and core/state.h compare 8 entries at once */
#endif

typedef unsigned __int128 u128;

/* The model, by concern (each header states what it holds): */
#include "core/defs.h"
#include "core/mem.h"
#include "core/lru.h"
#include "core/buddy.h"
#include "core/state.h"
#include "core/host.h"
#include "core/guest.h"
#include "core/slots.h"
#include "core/flat.h"
#include "core/series.h"
#include "core/translate.h"
#include "core/lifecycle.h"

/* ---------------------------------------------------------------------------------------------
 * Python glue
 * -------------------------------------------------------------------------------------------*/
static PyObject *OomGuest, *OomHost;

static int raise_status(int st) {
    if (st == ST_OOM_GUEST) PyErr_SetString(OomGuest, "guest out of memory");
    else if (st == ST_OOM_HOST) PyErr_SetString(OomHost, "host out of memory");
    else PyErr_NoMemory();
    return -1;
}

static void Engine_dealloc(Engine *e) {
    free(e->tags);
    free(e->arrays);
    buddy_release_mem(&e->g.buddy);
    buddy_release_mem(&e->h.buddy);
    region_free(&e->g.arena);
    free(e->g.root.keys);
    free(e->g.root.vals);
    const Host *h = &e->h;
    int64_t gf = e->g.frames;
    sparse_free(h->shift, host_map_bytes(h, gf, HOST_SHIFT));
    sparse_free(h->hframe, host_map_bytes(h, gf, HOST_HFRAME));
    sparse_free(h->ever, host_map_bytes(h, gf, HOST_EVER));
    sparse_free(h->ever2m, host_map_bytes(h, gf, HOST_EVER2M));
    sparse_free(h->occ2m, host_map_bytes(h, gf, HOST_OCC2M));
    sparse_free(h->occ1g, host_map_bytes(h, gf, HOST_OCC1G));
    sparse_free(h->rshift, host_map_bytes(h, gf, HOST_RSHIFT));
    for (int k = 2; k <= h->levels && k < 6; k++) sparse_free(h->tbl[k], host_map_bytes(h, gf, HOST_TBL + k));
    slots_free(&e->slots);
    flat_free(&e->flat);
    free(e->series);
    free(e->outcomes);
    free(e->outcome_shifts);
    free(e->rlog);
    Py_TYPE(e)->tp_free((PyObject *)e);
}

static int get_i64_buffer(PyObject *obj, Py_buffer *view, const char *what) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return -1;
    if (view->itemsize != 8) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_TypeError, "%s must be a contiguous 64-bit integer array", what);
        return -1;
    }
    return 0;
}

/* Engine(params, arrays, g_removed, h_removed)
 *   params: dict of ints (see memmodel.engine.replay.Replay)
 *   arrays: sequence of (entries, ways) for every LRU array, in index order */
static int Engine_init(Engine *e, PyObject *args, PyObject *kw) {
    PyObject *params, *arrays, *g_removed, *h_removed;
    if (!PyArg_ParseTuple(args, "O!OOO", &PyDict_Type, &params, &arrays, &g_removed, &h_removed)) return -1;
#define P(name, dst)                                                                                 \
    do {                                                                                             \
        PyObject *o_ = PyDict_GetItemString(params, name);                                           \
        if (!o_) { PyErr_Format(PyExc_KeyError, "engine parameter %s missing", name); return -1; }   \
        long long v_ = PyLong_AsLongLong(o_);                                                        \
        if (v_ == -1 && PyErr_Occurred()) return -1;                                                 \
        dst = v_;                                                                                    \
    } while (0)
    long long virt, window, report, interval, rorder, only4k, gl, gp, gz, gf, gunmap, grand, hl, hp, hz, hrand,
        ntlb, outcomes;
    unsigned long long gseed = 0, hseed = 0;
    P("virtualized", virt); P("window", window); P("report", report); P("report_interval", interval);
    P("report_order", rorder); P("only_4k", only4k); P("guest_levels", gl); P("guest_shift", gp);
    P("guest_zeroing", gz); P("guest_frames", gf); P("guest_passthrough", gunmap); P("guest_random", grand);
    P("host_levels", hl); P("host_shift", hp); P("host_zeroing", hz); P("host_random", hrand);
    P("ntlb", ntlb); P("outcomes", outcomes);
    if (gf >= (1LL << 32)) {  /* guest page-table entries hold a frame + 1 in 32 bits (state.h, Node) */
        PyErr_Format(PyExc_ValueError, "guest_frames = %lld: guest memory must be below 16 TiB (2^32 frames)", gf);
        return -1;
    }
    {
        PyObject *o = PyDict_GetItemString(params, "guest_seed");
        if (!o) { PyErr_SetString(PyExc_KeyError, "guest_seed"); return -1; }
        gseed = PyLong_AsUnsignedLongLong(o);
        if (PyErr_Occurred()) return -1;
        o = PyDict_GetItemString(params, "host_seed");
        if (!o) { PyErr_SetString(PyExc_KeyError, "host_seed"); return -1; }
        hseed = PyLong_AsUnsignedLongLong(o);
        if (PyErr_Occurred()) return -1;
    }
    long long host_frames = 0;
    P("host_frames", host_frames);
    e->p.virt = (int)virt;
    e->p.window = window;
    e->p.report = (int)report;
    e->p.report_interval = interval;
    e->to_report = (uint64_t)interval;  /* the clock starts at 0: the first pass at clock = interval */
    e->p.report_order = (int)rorder;
    e->p.only_4k = (int)only4k;
    e->record_outcomes = (int)outcomes;
    e->ntlb = (int)ntlb;
    static const char *lists[4] = {"l1_of", "l2_of", "gpsc", "hpsc"};
    int *dsts[4] = {e->l1_of, e->l2_of, e->gpsc, e->hpsc};
    int lens[4] = {3, 3, 6, 6};
    for (int i = 0; i < 4; i++) {
        PyObject *seq = PyDict_GetItemString(params, lists[i]);
        if (!seq || !PySequence_Check(seq) || PySequence_Size(seq) != lens[i]) {
            PyErr_Format(PyExc_ValueError, "engine parameter %s must be a sequence of %d ints", lists[i], lens[i]);
            return -1;
        }
        for (int j = 0; j < lens[i]; j++) {
            PyObject *it = PySequence_GetItem(seq, j);
            if (!it) return -1;
            dsts[i][j] = (int)PyLong_AsLong(it);
            Py_DECREF(it);
            if (PyErr_Occurred()) return -1;
        }
    }
    for (int j = 0; j < 6; j++) {
        e->has_gpsc |= e->gpsc[j] >= 0;
        e->has_hpsc |= e->hpsc[j] >= 0;
    }
    /* LRU arrays */
    Py_ssize_t na = PySequence_Size(arrays);
    if (na < 0) return -1;
    if (na > 60) { PyErr_SetString(PyExc_ValueError, "at most 60 translation-cache arrays"); return -1; }
    e->arrays = (Lru *)calloc((size_t)(na + 1), sizeof(Lru));
    if (!e->arrays) { PyErr_NoMemory(); return -1; }
    int64_t off = 0;
    for (Py_ssize_t i = 0; i < na; i++) {
        PyObject *it = PySequence_GetItem(arrays, i);
        if (!it) return -1;
        long long entries, ways;
        int ok = PyArg_ParseTuple(it, "LL", &entries, &ways);
        Py_DECREF(it);
        if (!ok) return -1;
        lru_geometry(&e->arrays[i], off, entries, ways);
        off += lru_words(entries, ways);
    }
    e->n_arrays = (int)na;
    e->tags = (int64_t *)malloc((size_t)(off + 1) * sizeof(int64_t));
    if (!e->tags) { PyErr_NoMemory(); return -1; }
    for (int64_t i = 0; i <= off; i++) e->tags[i] = -1;
    for (Py_ssize_t i = 0; i < na; i++) lru_empty(e->tags, &e->arrays[i]);

    /* sides */
    Py_buffer gv, hv;
    if (get_i64_buffer(g_removed, &gv, "g_removed") < 0) return -1;
    if (get_i64_buffer(h_removed, &hv, "h_removed") < 0) { PyBuffer_Release(&gv); return -1; }
    Guest *g = &e->g;
    g->levels = (int)gl;
    g->pshift = (int)gp;
    g->zeroing = (int)gz;
    g->unmap_passthrough = (int)gunmap;
    g->frames = gf;
    int st = buddy_build(&g->buddy, gf, (const int64_t *)gv.buf, gv.len / 8, (int)grand, gseed);
    if (st == ST_OK && hash_init(&g->root, 16) != ST_OK) st = ST_NOMEM;
    Host *h = &e->h;
    h->levels = (int)hl;
    h->pshift = (int)hp;
    h->zeroing = (int)hz;
    if (st == ST_OK && virt) {
        st = buddy_build(&h->buddy, host_frames, (const int64_t *)hv.buf, hv.len / 8, (int)hrand, hseed);
        if (st == ST_OK) {
            h->shift = (uint8_t *)sparse_alloc(host_map_bytes(h, gf, HOST_SHIFT));
            h->hframe = (uint32_t *)sparse_alloc(host_map_bytes(h, gf, HOST_HFRAME));
            h->ever = (uint8_t *)sparse_alloc(host_map_bytes(h, gf, HOST_EVER));
            h->ever2m = (uint8_t *)sparse_alloc(host_map_bytes(h, gf, HOST_EVER2M));
            h->occ2m = (int32_t *)sparse_alloc(host_map_bytes(h, gf, HOST_OCC2M));
            h->occ1g = (int32_t *)sparse_alloc(host_map_bytes(h, gf, HOST_OCC1G));
            h->rshift = (uint8_t *)sparse_alloc(host_map_bytes(h, gf, HOST_RSHIFT));
            if (!h->shift || !h->hframe || !h->ever || !h->ever2m || !h->occ2m || !h->occ1g || !h->rshift) st = ST_NOMEM;
            for (int k = 2; k <= h->levels && st == ST_OK; k++) {
                h->tbl[k] = (uint8_t *)sparse_alloc(host_map_bytes(h, gf, HOST_TBL + k));
                if (!h->tbl[k]) st = ST_NOMEM;
            }
        }
    }
    PyBuffer_Release(&gv);
    PyBuffer_Release(&hv);
    /* the flat store: a native replay of 4 KiB pages only, without pass-through (flat.h); the optional
     * parameter "flat" = 0 keeps the tables and slots (the differential tests compare the two) */
    e->p.flat = !virt && gp == 12 && only4k && !gunmap && !report;
    {
        PyObject *o = PyDict_GetItemString(params, "flat");
        int want = o ? PyObject_IsTrue(o) : e->p.flat;
        if (want < 0) return -1;
        if (want && !e->p.flat) {
            PyErr_SetString(PyExc_ValueError, "the flat store holds only native replays with 4 KiB guest pages");
            return -1;
        }
        e->p.flat = want;
    }
    if (st == ST_OK && e->p.flat) st = flat_init(&e->flat);
    /* a flat replay never reads its slots; the others start with room for the pages the trace is known to
     * touch (optional parameter "pages": what an earlier replay of the trace translated, from the replay
     * cache), so the table never grows: on sparse (64,300 pages) growing from 4,096 slots took 5 rehashes
     * and fresh zeroed tables; presized, the nested replays ran 1.04-1.05x (baseline-4k) and 1.06x
     * (baseline-thp, memctl-2m) faster, medians of 30 pairs of runs. A hint that is wrong only costs speed
     * (the table grows at half load as before); it is bounded so a damaged cache file cannot claim
     * gigabytes. */
    int64_t slots_cap = e->p.flat ? 16 : SLOTS_FIRST;
    {
        PyObject *o = PyDict_GetItemString(params, "pages");
        long long pages = o ? PyLong_AsLongLong(o) : 0;
        if (pages == -1 && PyErr_Occurred()) return -1;
        while (!e->p.flat && slots_cap < SLOTS_HINT_MAX && slots_cap < 2 * (int64_t)pages) slots_cap *= 2;
    }
    if (st == ST_OK) st = slots_init(&e->slots, slots_cap, e->p.virt);
    if (st) { raise_status(st); return -1; }
    e->gen = 1;
    e->to_snapshot = e->p.window;
    e->report_dirty = 1;
    e->rlog_full = 1;  /* the first pass visits every free block (start-up, fragmentation) */
    e->last_counter = -1;
    e->last_p4 = 0;
    e->last_es = 12;
    e->l1_4k = e->p.only_4k ? e->l1_of[0] : -1;
    e->l2_4k = e->p.only_4k ? e->l2_of[0] : -1;
    e->psc_preset = psc_preset_of(e);
    if (e->psc_preset) {
        for (int j = 1; j <= 3; j++) {
            e->preset_rows[0][j] = e->tags + e->arrays[e->gpsc[j]].off;
            if (e->p.virt) e->preset_rows[1][j] = e->tags + e->arrays[e->hpsc[j]].off;
        }
        if (e->p.virt) e->preset_rows[1][0] = e->tags + e->arrays[e->ntlb].off;
    }
    return 0;
#undef P
}

/* start(): docs/model.md section 2 start-up (after the allocators and fragmentation). */
static PyObject *Engine_start(Engine *e, PyObject *args) {
    (void)args;
    if (e->started) Py_RETURN_NONE;
    e->started = 1;
    if (e->p.virt) {
        if (buddy_alloc(&e->h.buddy, 0) < 0) return raise_status(ST_OOM_HOST), NULL;
        e->C[C_HOST_PT_PAGES]++;
    }
    Py_RETURN_NONE;
}

/* prealloc(): host-touch [0, guest.memory) (start-up step 2, when host.prealloc). */
static PyObject *Engine_prealloc(Engine *e, PyObject *unused) {
    (void)unused;
    int st = host_touch(e, 0, e->g.frames);
    if (st) return raise_status(st), NULL;
    Py_RETURN_NONE;
}

/* guest_root(): start-up step 3. */
static PyObject *Engine_guest_root(Engine *e, PyObject *unused) {
    (void)unused;
    int64_t root = buddy_alloc(&e->g.buddy, 0);
    if (root < 0) return raise_status(ST_OOM_GUEST), NULL;
    e->g.root_frame = root;
    e->C[C_GUEST_PT_PAGES]++;
    if (e->p.virt) {
        int st = host_touch(e, root, 1);
        if (st) return raise_status(st), NULL;
    }
    Py_RETURN_NONE;
}

/* One batch of records. Full form: kind/gva/size (and optionally icount) arrays of length n. Packed form
 * (the cached compact form, memmodel/trace/compact.py): gva and a 32-bit `meta` per record,
 *   bits 0-2 kind code, bit 3 escape, bits 4-15 size, bits 16-31 icount (fetches right before it);
 * an escaped record takes its size and icount from the next entry of esc_size/esc_icount instead (a U
 * record, a size > 4095 or an icount > 65535). 12 bytes per record instead of 21. */
typedef struct {
    const uint8_t *kind;
    const uint64_t *gva;
    const uint64_t *size;
    const uint32_t *icount;
    const uint32_t *meta;
    const uint64_t *esc_size;
    const uint32_t *esc_icount;
    Py_ssize_t n, n_esc;
} Records;

#define META_ESCAPE 8u

/* Where a record loop stopped on bad input: the record's index and its kind code (-1: an escape past
 * the end of the escape arrays); and, written when any loop ends, how many escapes it consumed (packed
 * form: the next chunk of a batch starts its escape arrays there, see feed_chunked). */
typedef struct {
    Py_ssize_t at;
    int kind;
    Py_ssize_t esc_used;
} BadRecord;

/* The record loop (docs/model.md sections 1 and 8: every record ticks the clock; L/S/M translate, a
 * straddle twice; U unmaps). W1/S1/W2/S2/OUT as in translate(); PACKED: the records are in the packed form;
 * REPORT: 0 when the loop is compiled for a run without free page reporting (the clock is then only
 * counted, and its three tests per record fold away: callgrind, TLB-only pchase, 199.9 M -> 187.0 M
 * instructions, 1.04-1.06x faster in pairs of runs), 1 to read it from the Engine; FLAT_MODE: 0 or 1
 * when the loop is compiled for replays without or with the flat store, 2 to read it from the Engine
 * (the flag read per missed record cost memctl-2m on pchase 1.5 % more instructions, 0.96x in pairs).
 * Returns a status; bad->at = index of a record of unknown kind (then the loop stops there); bad->esc_used
 * = the escapes consumed (one store when the loop ends, not per record). */
static inline __attribute__((always_inline)) int records_loop(Engine *e, Records r, BadRecord *bad,
                                                              const int W1, const int S1, const int W2,
                                                              const int S2, const int OUT, const int PACKED,
                                                              const int REPORT, const int FLAT_MODE) {
    int st = ST_OK;
    /* FLAT_MODE: 0 or 1 = the replay never or always keeps the flat store (specialised loops), 2 = read it
     * from the Engine (the generic loops) */
    const int FLAT = FLAT_MODE == 2 ? e->p.flat : FLAT_MODE;
    Py_ssize_t esc = 0;
    /* counted here, added to the Engine's counters when the loop ends (see Hot) */
    Hot hot = {0, e->to_snapshot, 1, fast_array(e, e->l1_4k), fast_array(e, e->l2_4k),
               fast_array(e, e->p.only_4k ? -1 : e->l1_of[1]),
               fast_array(e, e->p.only_4k ? -1 : e->l1_of[2]), 0};
    hot.large = hot.f2m.a != NULL;  /* 2M first; 1G once the full path hits a 1 GiB entry */
    /* fixed for the run: not reloaded per record */
    const int report = REPORT && e->p.report, virt = e->p.virt;
    uint64_t instructions = 0;
    for (Py_ssize_t i = 0; i < r.n; i++) {
        uint32_t k;
        uint64_t sz;
        uint32_t ic;
        if (PACKED) {
            uint32_t m = r.meta[i];
            k = m & 7u;
            if (__builtin_expect(m & META_ESCAPE, 0)) {
                if (esc == r.n_esc) { bad->at = i; bad->kind = -1; break; }
                sz = r.esc_size[esc];
                ic = r.esc_icount[esc];
                esc++;
            } else {
                sz = (m >> 4) & 4095u;
                ic = m >> 16;
            }
        } else {
            k = r.kind[i];
            sz = r.size[i];
            ic = r.icount ? r.icount[i] : 0;
        }
        /* after a record that missed the L1, prefetch a coming record's slot (after hits the next one
         * likely hits too and needs no slot: the prefetch was ~15 % of a streaming replay's instructions),
         * and while pages need resolving, its guest leaf-table entry too; with the flat store, its
         * region's index entry and page bits instead */
        if (hot.missed) {
            hot.missed = 0;
            if (FLAT) {
                flat_prefetch(&e->flat, r.gva, i, r.n);
            } else if (i + SLOT_PREFETCH < r.n) {
                uint64_t ahead = r.gva[i + SLOT_PREFETCH] >> 12;
                slot_prefetch(&e->slots, ahead, virt);
                if (e->resolving) guest_leaf_prefetch(&e->g, ahead << 12);
            }
        }
        instructions += ic;
        if (ic && report && (st = ticks(e, ic))) break;
        if (k == KIND_I) {
            instructions++;
            if (report && (st = tick(e))) break;
            continue;
        }
        if (k <= KIND_M) {
            uint64_t a = r.gva[i];
            if ((st = translate(e, a, W1, S1, W2, S2, OUT, FLAT, &hot))) break;
            /* a straddling access translates its last byte right after its first (addresses wrap) */
            if (__builtin_expect(sz > 4096 - (a & 4095), 0) && (st = translate(e, a + sz - 1, W1, S1, W2, S2, OUT, FLAT, &hot)))
                break;
            if (report && (st = tick(e))) break;
            continue;
        }
        if (k == KIND_U) {
            if ((st = unmap_record(e, r.gva[i], sz))) break;
            continue;
        }
        bad->at = i;
        bad->kind = (int)k;
        break;
    }
    e->C[C_L1_HITS] += hot.l1_hits;
    e->to_snapshot = hot.to_snapshot;
    e->C[C_INSTRUCTIONS] += instructions;
    bad->esc_used = esc;
    return st;
}

/* The record loop specialised for the geometry (ways and sets) of the 4 KiB L1 and L2 arrays of the CPU
 * presets, for the packed form that every replay of memmodel.analysis reads, in a run without free page
 * reporting: with the ways known, the LRU layout tests and strides fold (callgrind: ~20 % fewer
 * instructions per translation on the big random chase with Skylake's, ~20 % with Zen 4's); with the
 * sets known, a set is found without testing for the array and its power of two (Zen 4's 384 sets: a
 * multiplication instead of a division). Each instance costs ~4 s of compile time, so other geometries,
 * the plain form (Replay.feed: tests, callers with their own arrays), outcome recording and reporting take
 * one generic loop each (the one reporting preset, baseline-thp-fpr, maps 2 MiB pages: the 4 KiB loops
 * never served it). feed_records picks the loop from LOOPS. */
typedef int (*RecordsLoop)(Engine *e, Records r, BadRecord *bad);

/* The geometries (L1 ways, sets; L2 ways, sets): one list gives the loops and the table they are picked from. */
#define PRESET_GEOMETRIES(X)                                   \
    X(4, 16, 12, 128)  /* skylake */                          \
    X(4, 16, 16, 128)  /* icelake */                          \
    X(6, 16, 16, 128)  /* sapphire-rapids */                  \
    X(64, 1, 8, 256)   /* zen2, zen3 (fully associative L1) */ \
    X(72, 1, 8, 384)   /* zen4 */                             \
    X(96, 1, 8, 512)   /* zen5 */

/* each geometry twice: for replays with the flat store (native 4 KiB) and without (nested 4 KiB) */
#define RECORDS_LOOP_FOR(W1, S1, W2, S2)                                                               \
    static __attribute__((noinline)) int records_loop_##W1##_##S1##_##W2##_##S2(Engine *e, Records r,   \
                                                                                  BadRecord *bad) {      \
        return records_loop(e, r, bad, W1, S1, W2, S2, 0, 1, 0, 0);                                    \
    }                                                                                                  \
    static __attribute__((noinline)) int records_loop_##W1##_##S1##_##W2##_##S2##_flat(Engine *e,      \
                                                                                       Records r,      \
                                                                                       BadRecord *bad) { \
        return records_loop(e, r, bad, W1, S1, W2, S2, 0, 1, 0, 1);                                    \
    }
RECORDS_LOOP_FOR(0, 0, 0, 0)
PRESET_GEOMETRIES(RECORDS_LOOP_FOR)

#define LOOP_ROW(W1, S1, W2, S2) \
    {W1, S1, W2, S2, {records_loop_##W1##_##S1##_##W2##_##S2, records_loop_##W1##_##S1##_##W2##_##S2##_flat}},
static const struct {
    int w1, s1, w2, s2;
    RecordsLoop loop[2];  /* [flat] */
} LOOPS[] = {PRESET_GEOMETRIES(LOOP_ROW)};

/* the generic loops: the plain form, outcome recording (compare --mrc, memmodel sample), reporting */
static __attribute__((noinline)) int records_loop_plain(Engine *e, Records r, BadRecord *bad) {
    return records_loop(e, r, bad, 0, 0, 0, 0, 0, 0, 1, 2);
}
static __attribute__((noinline)) int records_loop_any(Engine *e, Records r, BadRecord *bad, int packed) {
    return packed ? records_loop(e, r, bad, 0, 0, 0, 0, 1, 1, 1, 2) : records_loop(e, r, bad, 0, 0, 0, 0, 1, 0, 1, 2);
}
static __attribute__((noinline)) int records_loop_report(Engine *e, Records r, BadRecord *bad) {
    return records_loop(e, r, bad, 0, 0, 0, 0, 0, 1, 1, 2);
}

static int feed_records(Engine *e, Records r, BadRecord *bad) {
    int packed = r.meta != NULL;
    if (e->record_outcomes) return records_loop_any(e, r, bad, packed);
    if (!packed) return records_loop_plain(e, r, bad);
    if (e->p.report) return records_loop_report(e, r, bad);
    if (e->l1_4k >= 0 && e->l2_4k >= 0) {
        const Lru *a1 = &e->arrays[e->l1_4k], *a2 = &e->arrays[e->l2_4k];
        for (size_t i = 0; i < sizeof LOOPS / sizeof LOOPS[0]; i++)
            if (a1->ways == LOOPS[i].w1 && a1->sets == LOOPS[i].s1 && a2->ways == LOOPS[i].w2 &&
                a2->sets == LOOPS[i].s2)
                return LOOPS[i].loop[e->p.flat](e, r, bad);
    }
    return e->p.flat ? records_loop_0_0_0_0_flat(e, r, bad) : records_loop_0_0_0_0(e, r, bad);
}

/* Ctrl-C during a long batch (api.py feeds a whole store's cached packed form as one). A batch is replayed
 * in chunks, each without the GIL; between two chunks the GIL is taken back and pending signal handlers
 * run, so KeyboardInterrupt stops the batch after the chunk it arrives in, instead of at the batch's end.
 * Results do not depend on where chunks end: a batch's records may be fed in any number of calls (the
 * tests feed the same records in many batches, and in chunks of 1, 7 and 1000 records: _set_feed_chunk).
 *
 * A chunk is sized by time, not by a record count: a packed record costs from ~3 ns (TLB hits) to
 * milliseconds (free page reporting every 3 records at order 0 over a 99 % fragmented guest with 4 KiB
 * pages: a pass walks the free lists), in bursts (the passes after an unmap). 2^20 records are ~3 ms of one
 * config and minutes of another: the 0.5 M packed records of sparse take 257 s under that one. So a chunk
 * takes as many records as fit in FEED_SLICE_NS at the slowest cost per record seen in this call, which is
 * forgotten by 1 % per chunk (so after a burst chunks grow back within a few hundred chunks, ~0.1 ms of
 * boundaries); at most 16x the last chunk and FEED_CHUNK_MAX; the first chunk, of a cost not known yet, is
 * small (FEED_CHUNK_FIRST). Measured with SIGALRM during memmodel.analysis.run of sparse and lifecycle
 * under that config (257 s and 29 s, each one chunk before: Ctrl-C waited 129 s and 14 s on average),
 * KeyboardInterrupt comes 1-16 ms after the signal, except in a chunk that runs into a burst (lifecycle,
 * ~0.3 s in: records from ~30 us to ~2 ms each; its chunk of 639 records took 1.3 s). Over the per-record
 * costs of both, sizing by the last chunk's cost alone would wait 0.4 s and 1.2 s on average; a first
 * chunk of 2^10 records alone took 3 s of lifecycle. Chunks much shorter than 20 ms would cost a replay
 * run beside a busy Python thread: that thread holds the GIL when a chunk ends, and taking it back can
 * wait a switch interval (5 ms).
 *
 * A chunk boundary costs a GIL release and re-acquire, two clock reads, a signal check and a restart of
 * the record loop (its Hot locals written back and reloaded, a missed prefetch): ~0.1 us, measured with
 * 1-record chunks. A fast replay ramps up in two boundaries (2^8, 2^12, then 2^16 records) and then runs
 * chunks of FEED_CHUNK_MAX records, >= 0.2 ms each: < 0.05 %, not measurable (benchmarks/ab_core.py, pairs
 * of runs). */
#define FEED_SLICE_NS 20e6                     /* 20 ms: a Ctrl-C answered well within human reaction time */
#define FEED_CHUNK_FIRST ((Py_ssize_t)1 << 8)
#define FEED_CHUNK_MAX ((Py_ssize_t)1 << 16)
/* 0: chunks sized by time (above); n >= 1: every chunk n records (the test hook _set_feed_chunk) */
static Py_ssize_t feed_chunk_fixed = 0;

/* feed_chunked's status when a signal handler raised (the Python exception is set). */
#define FEED_INTERRUPTED (-1)

static int64_t monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Replay the batch r in chunks, each without the GIL, running pending signal handlers in between (called
 * with the GIL held). Returns a status of the model (ST_*; bad->at set as by the loop, as an index in the
 * whole batch) or FEED_INTERRUPTED; the Engine then holds the records before the stop. */
static int feed_chunked(Engine *e, Records r, BadRecord *bad) {
    const Py_ssize_t n = r.n;
    Py_ssize_t done = 0, chunk = feed_chunk_fixed ? feed_chunk_fixed : FEED_CHUNK_FIRST;
    double cost = 0.0;  /* ns per record: the slowest seen in this call, forgotten by 1 % per chunk */
    int st;
    for (;;) {
        Records c = r;
        c.n = n - done < chunk ? n - done : chunk;
        int64_t t0, t1;
        Py_BEGIN_ALLOW_THREADS
        t0 = monotonic_ns();
        st = feed_records(e, c, bad);
        t1 = monotonic_ns();
        Py_END_ALLOW_THREADS
        if (bad->at >= 0) bad->at += done;
        done += c.n;
        if (st != ST_OK || bad->at >= 0 || done >= n) return st;
        /* the next chunk: its records, and the escapes this chunk did not consume */
        r.gva += c.n;
        if (r.meta) {
            r.meta += c.n;
            r.esc_size += bad->esc_used;
            r.esc_icount += bad->esc_used;
            r.n_esc -= bad->esc_used;
        } else {
            r.kind += c.n;
            r.size += c.n;
            if (r.icount) r.icount += c.n;
        }
        if (!feed_chunk_fixed) {  /* here c.n = chunk >= 1 */
            double per = (double)(t1 - t0) / (double)c.n;
            cost = per > 0.99 * cost ? per : 0.99 * cost;
            Py_ssize_t most = c.n < FEED_CHUNK_MAX / 16 ? 16 * c.n : FEED_CHUNK_MAX;
            double want = cost > 0.0 ? FEED_SLICE_NS / cost : (double)most;
            chunk = want >= (double)most ? most : want < 1.0 ? 1 : (Py_ssize_t)want;
        }
        if (PyErr_CheckSignals() < 0) return FEED_INTERRUPTED;
    }
}

/* _set_feed_chunk(n) -> the previous setting: a test hook (tests/engine). n >= 1: feed and feed_packed
 * replay batches in chunks of n records; 0: chunks sized by time again (the default). */
static PyObject *core_set_feed_chunk(PyObject *mod, PyObject *args) {
    (void)mod;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "n", &n)) return NULL;
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "the feed chunk must be >= 0 records (0: sized by time)");
        return NULL;
    }
    Py_ssize_t old = feed_chunk_fixed;
    feed_chunk_fixed = n;
    return PyLong_FromSsize_t(old);
}

/* The error for a loop stopped at bad input (a Python exception set; returns NULL). */
static PyObject *bad_record_error(BadRecord bad) {
    if (bad.kind < 0)
        PyErr_Format(PyExc_ValueError, "packed record %zd escapes past the end of its escape arrays "
                     "(a damaged compact form)", bad.at);
    else
        PyErr_Format(PyExc_ValueError, "record %zd has unknown kind code %d (allowed: 0=I 1=L 2=S 3=M 4=U)",
                     bad.at, bad.kind);
    return NULL;
}

/* feed_packed(gva u64, meta u32, esc_size u64, esc_icount u32): replay records in the packed form. */
static PyObject *Engine_feed_packed(Engine *e, PyObject *args) {
    PyObject *ao, *mo, *so, *io;
    if (!PyArg_ParseTuple(args, "OOOO", &ao, &mo, &so, &io)) return NULL;
    Py_buffer b[4];
    PyObject *objs[4] = {ao, mo, so, io};
    static const Py_ssize_t item[4] = {8, 4, 8, 4};
    int got = 0;
    for (; got < 4; got++) {
        if (PyObject_GetBuffer(objs[got], &b[got], PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) break;
        if (b[got].itemsize != item[got]) { got++; PyErr_SetString(PyExc_TypeError, "feed_packed needs gva "
            "(uint64), meta (uint32), esc_size (uint64) and esc_icount (uint32) arrays"); break; }
    }
    if (got == 4 && (b[0].len / 8 != b[1].len / 4 || b[2].len / 8 != b[3].len / 4)) {
        PyErr_SetString(PyExc_TypeError, "feed_packed: gva/meta and esc_size/esc_icount must have equal lengths");
    }
    if (PyErr_Occurred()) {
        for (int j = 0; j < got; j++) PyBuffer_Release(&b[j]);
        return NULL;
    }
    Records r = {NULL, (const uint64_t *)b[0].buf, NULL, NULL, (const uint32_t *)b[1].buf,
                 (const uint64_t *)b[2].buf, (const uint32_t *)b[3].buf, b[0].len / 8, b[2].len / 8};
    BadRecord bad = {-1, 0, 0};
    int st = feed_chunked(e, r, &bad);
    for (int j = 0; j < 4; j++) PyBuffer_Release(&b[j]);
    if (st == FEED_INTERRUPTED) return NULL;
    if (bad.at >= 0) return bad_record_error(bad);
    if (st) return raise_status(st), NULL;
    Py_RETURN_NONE;
}

/* feed(kind, gva, size) -> index of the record being processed when an error stopped the run, or -1. */
/* feed(kind, gva, size[, icount]): replay records in order. With `icount` (uint32, the compact form of
 * a trace), icount[i] instruction fetches come before record i. */
static PyObject *Engine_feed(Engine *e, PyObject *args) {
    PyObject *ko, *ao, *so, *io = NULL;
    if (!PyArg_ParseTuple(args, "OOO|O", &ko, &ao, &so, &io)) return NULL;
    Py_buffer kb, ab, sb;
    if (PyObject_GetBuffer(ko, &kb, PyBUF_C_CONTIGUOUS) < 0) return NULL;
    if (PyObject_GetBuffer(ao, &ab, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) { PyBuffer_Release(&kb); return NULL; }
    if (PyObject_GetBuffer(so, &sb, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyBuffer_Release(&kb); PyBuffer_Release(&ab); return NULL;
    }
    Py_ssize_t n = kb.len;
    if (ab.itemsize != 8 || sb.itemsize != 8 || ab.len != n * 8 || sb.len != n * 8) {
        PyBuffer_Release(&kb); PyBuffer_Release(&ab); PyBuffer_Release(&sb);
        PyErr_SetString(PyExc_TypeError, "feed needs kind (uint8), gva and size (uint64) arrays of one length");
        return NULL;
    }
    Py_buffer ib;
    const uint32_t *icount = NULL;
    if (io != NULL && io != Py_None) {
        if (PyObject_GetBuffer(io, &ib, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
            PyBuffer_Release(&kb); PyBuffer_Release(&ab); PyBuffer_Release(&sb); return NULL;
        }
        if (ib.itemsize != 4 || ib.len != n * 4) {
            PyBuffer_Release(&kb); PyBuffer_Release(&ab); PyBuffer_Release(&sb); PyBuffer_Release(&ib);
            PyErr_SetString(PyExc_TypeError, "icount must be a uint32 array of the records' length");
            return NULL;
        }
        icount = (const uint32_t *)ib.buf;
    }
    const uint8_t *kind = (const uint8_t *)kb.buf;
    const uint64_t *gva = (const uint64_t *)ab.buf;
    const uint64_t *size = (const uint64_t *)sb.buf;
    BadRecord bad = {-1, 0, 0};
    Records r = {kind, gva, size, icount, NULL, NULL, NULL, n, 0};
    int st = feed_chunked(e, r, &bad);
    PyBuffer_Release(&kb);
    PyBuffer_Release(&ab);
    PyBuffer_Release(&sb);
    if (icount) PyBuffer_Release(&ib);
    if (st == FEED_INTERRUPTED) return NULL;
    if (bad.at >= 0) return bad_record_error(bad);
    if (st) return raise_status(st), NULL;
    Py_RETURN_NONE;
}

static PyObject *Engine_counters(Engine *e, PyObject *unused) {
    (void)unused;
    PyObject *d = PyDict_New();
    if (!d) return NULL;
    sync_accesses(e);
    for (int i = 0; i < N_COUNTERS; i++) {
        PyObject *v = PyLong_FromUnsignedLongLong(e->C[i]);
        if (!v || PyDict_SetItemString(d, COUNTER_NAME[i], v) < 0) { Py_XDECREF(v); Py_DECREF(d); return NULL; }
        Py_DECREF(v);
    }
    /* unmapped_bytes may exceed 2^64: build it from its two halves */
    PyObject *hi = PyLong_FromUnsignedLongLong((unsigned long long)(e->unmapped_bytes >> 64));
    PyObject *lo = PyLong_FromUnsignedLongLong((unsigned long long)e->unmapped_bytes);
    PyObject *sh = PyLong_FromLong(64);
    PyObject *t1 = (hi && sh) ? PyNumber_Lshift(hi, sh) : NULL;
    PyObject *tot = (t1 && lo) ? PyNumber_Or(t1, lo) : NULL;
    Py_XDECREF(hi); Py_XDECREF(lo); Py_XDECREF(sh); Py_XDECREF(t1);
    if (!tot || PyDict_SetItemString(d, "unmapped_bytes", tot) < 0) { Py_XDECREF(tot); Py_DECREF(d); return NULL; }
    Py_DECREF(tot);
    return d;
}

static PyObject *i64_bytes(const int64_t *p, int64_t n) {
    return PyBytes_FromStringAndSize((const char *)p, (Py_ssize_t)(n * (int64_t)sizeof(int64_t)));
}

static PyObject *Engine_flat_store(Engine *e, PyObject *unused) { (void)unused; return PyBool_FromLong(e->p.flat); }
static PyObject *Engine_preset_walk(Engine *e, PyObject *unused) { (void)unused; return PyBool_FromLong(e->psc_preset); }
static PyObject *Engine_pages(Engine *e, PyObject *unused) {
    (void)unused;
    if (e->p.flat) Py_RETURN_NONE;
    return PyLong_FromLongLong((long long)e->slots.used);
}

static PyObject *Engine_hist(Engine *e, PyObject *unused) { (void)unused; return i64_bytes(e->hist, HIST_SIZE); }

static PyObject *Engine_series(Engine *e, PyObject *unused) {
    (void)unused;
    return i64_bytes(e->series ? e->series : e->hist, e->series_rows * N_SERIES);
}

static PyObject *Engine_nr_free(Engine *e, PyObject *args) {
    int host;
    if (!PyArg_ParseTuple(args, "p", &host)) return NULL;
    return i64_bytes(host ? e->h.buddy.nr_free : e->g.buddy.nr_free, MAX_ORDER + 1);
}

static PyObject *Engine_take_outcomes(Engine *e, PyObject *unused) {
    (void)unused;
    PyObject *o = PyBytes_FromStringAndSize((const char *)e->outcomes, (Py_ssize_t)e->n_outcomes);
    PyObject *s = PyBytes_FromStringAndSize((const char *)e->outcome_shifts, (Py_ssize_t)e->n_outcomes);
    if (!o || !s) { Py_XDECREF(o); Py_XDECREF(s); return NULL; }
    e->n_outcomes = 0;
    return Py_BuildValue("(NN)", o, s);
}

/* ---------------------------------------------------------------------------------------------
 * A buddy allocator on its own (tests and tools): BuddyAllocator(frames, removed, random, seed)
 * -------------------------------------------------------------------------------------------*/
typedef struct {
    PyObject_HEAD
    Buddy b;
} BuddyObject;

static int BuddyObject_init(BuddyObject *self, PyObject *args, PyObject *kw) {
    (void)kw;
    long long frames;
    PyObject *removed;
    int random;
    unsigned long long seed;
    if (!PyArg_ParseTuple(args, "LOpK", &frames, &removed, &random, &seed)) return -1;
    Py_buffer rv;
    if (get_i64_buffer(removed, &rv, "removed") < 0) return -1;
    int st = buddy_build(&self->b, frames, (const int64_t *)rv.buf, rv.len / 8, random, seed);
    PyBuffer_Release(&rv);
    if (st) { PyErr_NoMemory(); return -1; }
    return 0;
}

static void BuddyObject_dealloc(BuddyObject *self) {
    buddy_release_mem(&self->b);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *BuddyObject_alloc(BuddyObject *self, PyObject *args) {
    int order;
    if (!PyArg_ParseTuple(args, "i", &order)) return NULL;
    if (order < 0 || order > MAX_ORDER) { PyErr_SetString(PyExc_ValueError, "order must be 0..18"); return NULL; }
    return PyLong_FromLongLong(buddy_alloc(&self->b, order));
}

static PyObject *BuddyObject_free(BuddyObject *self, PyObject *args) {
    long long frame;
    int order;
    if (!PyArg_ParseTuple(args, "Li", &frame, &order)) return NULL;
    if (order < 0 || order > MAX_ORDER || frame < 0 || frame + (1LL << order) > self->b.frames ||
        (frame & ((1LL << order) - 1))) {
        PyErr_SetString(PyExc_ValueError, "free needs an aligned block inside memory");
        return NULL;
    }
    buddy_free(&self->b, frame, order);
    Py_RETURN_NONE;
}

static PyObject *BuddyObject_nr_free(BuddyObject *self, PyObject *unused) {
    (void)unused;
    return i64_bytes(self->b.nr_free, MAX_ORDER + 1);
}

static PyMethodDef BuddyObject_methods[] = {
    {"alloc", (PyCFunction)BuddyObject_alloc, METH_VARARGS, "alloc(order) -> first frame, or -1."},
    {"free", (PyCFunction)BuddyObject_free, METH_VARARGS, "free(frame, order): merges with free buddies."},
    {"nr_free", (PyCFunction)BuddyObject_nr_free, METH_NOARGS, "Free blocks per order (int64 bytes)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject BuddyType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "memmodel.engine._core.BuddyAllocator",
    .tp_basicsize = sizeof(BuddyObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A buddy allocator of docs/model.md section 2 (the engine's own code).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)BuddyObject_init,
    .tp_dealloc = (destructor)BuddyObject_dealloc,
    .tp_methods = BuddyObject_methods,
};

/* records_to_runs(kind, gva, size) -> (pages bytes int64, counts bytes int64, instructions):
 * docs/model.md section 1 translations of L/S/M records as runs of one 4 KiB page (U is refused). */
static PyObject *core_records_to_runs(PyObject *mod, PyObject *args) {
    (void)mod;
    PyObject *ko, *ao, *so;
    if (!PyArg_ParseTuple(args, "OOO", &ko, &ao, &so)) return NULL;
    Py_buffer kb, ab, sb;
    if (PyObject_GetBuffer(ko, &kb, PyBUF_C_CONTIGUOUS) < 0) return NULL;
    if (PyObject_GetBuffer(ao, &ab, PyBUF_C_CONTIGUOUS) < 0) { PyBuffer_Release(&kb); return NULL; }
    if (PyObject_GetBuffer(so, &sb, PyBUF_C_CONTIGUOUS) < 0) { PyBuffer_Release(&kb); PyBuffer_Release(&ab); return NULL; }
    Py_ssize_t n = kb.len;
    if (ab.len != n * 8 || sb.len != n * 8) {
        PyBuffer_Release(&kb); PyBuffer_Release(&ab); PyBuffer_Release(&sb);
        PyErr_SetString(PyExc_TypeError, "records_to_runs needs kind (uint8), gva and size (uint64) of one length");
        return NULL;
    }
    PyObject *pages = PyBytes_FromStringAndSize(NULL, 2 * n * 8 + 8);
    PyObject *counts = PyBytes_FromStringAndSize(NULL, 2 * n * 8 + 8);
    if (!pages || !counts) { Py_XDECREF(pages); Py_XDECREF(counts); PyBuffer_Release(&kb); PyBuffer_Release(&ab); PyBuffer_Release(&sb); return NULL; }
    int64_t *pg = (int64_t *)PyBytes_AS_STRING(pages);
    int64_t *ct = (int64_t *)PyBytes_AS_STRING(counts);
    const uint8_t *kind = (const uint8_t *)kb.buf;
    const uint64_t *gva = (const uint64_t *)ab.buf;
    const uint64_t *size = (const uint64_t *)sb.buf;
    int64_t runs = 0, ins = 0;
    int64_t prev = -1;
    Py_ssize_t bad = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint8_t k = kind[i];
        if (k == KIND_I) { ins++; continue; }
        if (k > KIND_M) { bad = i; break; }
        uint64_t a = gva[i], sz = size[i];
        int two = sz > 4096 - (a & 4095);  /* (a mod 4096) + n > 4096, without overflow */
        for (int t = 0; t <= two; t++) {
            int64_t page = (int64_t)((t == 0 ? a : a + sz - 1) >> 12);
            if (page == prev) ct[runs - 1]++;
            else { pg[runs] = page; ct[runs] = 1; runs++; prev = page; }
        }
    }
    PyBuffer_Release(&ab);
    PyBuffer_Release(&sb);
    if (bad >= 0) {
        int code = kind[bad];
        PyBuffer_Release(&kb);
        Py_DECREF(pages); Py_DECREF(counts);
        PyErr_Format(PyExc_ValueError, "record %zd has kind code %d: only I, L, S and M records make page runs", bad, code);
        return NULL;
    }
    PyBuffer_Release(&kb);
    if (_PyBytes_Resize(&pages, (Py_ssize_t)(runs * 8)) < 0) { Py_DECREF(counts); return NULL; }
    if (_PyBytes_Resize(&counts, (Py_ssize_t)(runs * 8)) < 0) { Py_DECREF(pages); return NULL; }
    return Py_BuildValue("(NNL)", pages, counts, (long long)ins);
}

static PyMethodDef core_functions[] = {
    {"records_to_runs", core_records_to_runs, METH_VARARGS, "Records -> runs of translations of one 4 KiB page."},
    {"_set_feed_chunk", core_set_feed_chunk, METH_VARARGS,
     "Test hook: _set_feed_chunk(n) -> previous; n >= 1: feed in chunks of n records, 0: chunks sized by time."},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef Engine_methods[] = {
    {"start", (PyCFunction)Engine_start, METH_NOARGS, "Start-up step 2a: the host root table."},
    {"prealloc", (PyCFunction)Engine_prealloc, METH_NOARGS, "Start-up step 2b: host-touch all guest memory."},
    {"guest_root", (PyCFunction)Engine_guest_root, METH_NOARGS, "Start-up step 3: the guest root table."},
    {"feed", (PyCFunction)Engine_feed, METH_VARARGS, "Replay records: feed(kind u8, gva u64, size u64)."},
    {"feed_packed", (PyCFunction)Engine_feed_packed, METH_VARARGS,
     "Replay packed records: feed_packed(gva u64, meta u32, esc_size u64, esc_icount u32)."},
    {"counters", (PyCFunction)Engine_counters, METH_NOARGS, "The raw counters as a dict."},
    {"hist", (PyCFunction)Engine_hist, METH_NOARGS, "Walk-length histogram (int64 bytes)."},
    {"flat_store", (PyCFunction)Engine_flat_store, METH_NOARGS, "Whether the guest is kept in the flat store."},
    {"pages", (PyCFunction)Engine_pages, METH_NOARGS,
     "Distinct 4 KiB virtual pages translated so far (the slot table's entries), or None for the flat store."},
    {"preset_walk", (PyCFunction)Engine_preset_walk, METH_NOARGS,
     "Whether walks use the PSC and nested-TLB code specialised for the CPU presets' shapes."},
    {"series", (PyCFunction)Engine_series, METH_NOARGS, "Time-series rows (int64 bytes)."},
    {"nr_free", (PyCFunction)Engine_nr_free, METH_VARARGS, "Free blocks per order (int64 bytes)."},
    {"take_outcomes", (PyCFunction)Engine_take_outcomes, METH_NOARGS, "Outcome codes and shifts since last take."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject EngineType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "memmodel.engine._core.Engine",
    .tp_basicsize = sizeof(Engine),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The state of one replay of one config (docs/model.md v2).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Engine_init,
    .tp_dealloc = (destructor)Engine_dealloc,
    .tp_methods = Engine_methods,
};

static struct PyModuleDef coremodule = {PyModuleDef_HEAD_INIT, "_core",
                                        "memmodel's engine core (docs/model.md v2 in C).", -1, core_functions};

PyMODINIT_FUNC PyInit__core(void) {
    if (PyType_Ready(&EngineType) < 0 || PyType_Ready(&BuddyType) < 0) return NULL;
    PyObject *m = PyModule_Create(&coremodule);
    if (!m) return NULL;
    Py_INCREF(&EngineType);
    PyModule_AddObject(m, "Engine", (PyObject *)&EngineType);
    Py_INCREF(&BuddyType);
    PyModule_AddObject(m, "BuddyAllocator", (PyObject *)&BuddyType);
    OomGuest = PyErr_NewException("memmodel.engine._core.GuestOutOfMemory", PyExc_MemoryError, NULL);
    OomHost = PyErr_NewException("memmodel.engine._core.HostOutOfMemory", PyExc_MemoryError, NULL);
    PyModule_AddObject(m, "GuestOutOfMemory", OomGuest);
    PyModule_AddObject(m, "HostOutOfMemory", OomHost);
    PyObject *names = PyTuple_New(N_COUNTERS);
    for (int i = 0; i < N_COUNTERS; i++) PyTuple_SET_ITEM(names, i, PyUnicode_FromString(COUNTER_NAME[i]));
    PyModule_AddObject(m, "COUNTER_NAMES", names);
    PyObject *snames = PyTuple_New(N_SERIES);
    for (int i = 0; i < N_SERIES; i++) PyTuple_SET_ITEM(snames, i, PyUnicode_FromString(SERIES_NAME[i]));
    PyModule_AddObject(m, "SERIES_NAMES", snames);
    PyModule_AddIntConstant(m, "HIST_SIZE", HIST_SIZE);
    return m;
}
