/* memmodel's one-pass stack-distance pass (miss-ratio curves of LRU TLB arrays) in C.
 *
 * A StackPass consumes a stream of translation runs (4 KiB page p4, entry shift es, count) and keeps,
 * for every per-set LRU stack distance d, how many references had distance d (memmodel.analysis.mrc
 * states the rule: an LRU array of `ways` ways per set hits a reference exactly when d < ways).
 *
 * Per reference (only the first translation of a run; the repeats are hits at any capacity):
 *   tag = (vpn << 2) | (es - 12) / 9, vpn = p4 >> (es - 12), set = vpn mod sets (docs/model.md section 3).
 *   d   = number of distinct tags of the same set referenced since the previous reference to tag
 *       = number of live markers after the tag's last position in its set's timeline.
 *
 * State (all of it bounded by the number of distinct tags, never by the length of the stream):
 *   Hash    open addressing (linear probing, load <= 1/2): tag + 1 -> the tag's position in its set's
 *           timeline (0 = empty slot).
 *   Set     per set: a timeline of `cap` positions, `who[pos]` = hash slot of the tag whose last
 *           reference sits at pos (-1 = none), and a Fenwick tree over the positions holding a 1 at
 *           every live position (one per distinct tag of the set). New references take position t++.
 *           When t reaches cap the live positions are renumbered 0..live-1 in order (compaction:
 *           only the relative order matters), and cap doubles first when more than half are live,
 *           so compaction is amortised O(1) per reference and cap <= 4 x the set's distinct tags.
 *
 * Exactness: d is computed from the live markers, which are exactly the last references of the
 * distinct tags of the set in timeline order; compaction keeps that order. A re-reference of the tag
 * at the newest position (d = 0) changes nothing and is counted without touching the tree.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define WORD 64

typedef struct {
    uint64_t *bits; /* live marker bitmap over the timeline, cap / 64 words */
    int32_t *tree;  /* Fenwick tree (1-based) of live markers per folded 64-position block */
    int32_t *who;   /* hash slot of the tag whose reference was appended at each position */
    int64_t t;      /* next free position */
    int64_t live;   /* distinct tags of this set = live markers */
    int64_t cap;    /* positions, a multiple of 64 (0 before the first reference) */
    int64_t folded; /* blocks 0..folded-1 are counted in the tree; the block of t never is */
    int64_t folded_live; /* live markers in the folded blocks */
} Set;

typedef struct {
    uint64_t key; /* tag + 1, 0 = empty */
    int64_t pos;  /* position of the tag's last reference in its set's timeline */
} Slot;

typedef struct {
    PyObject_HEAD
    int64_t sets;
    int mask; /* bit (es - 12) / 9: page sizes the array holds */
    Set *S;
    Slot *h;
    int64_t hcap, hused;
    int hbits;
    int64_t *hist;
    int64_t hist_len;
    int64_t cold, accesses, skipped;
} StackPass;

static inline int64_t slot_of(uint64_t key1, int hbits) {
    return (int64_t)((key1 * 0x9E3779B97F4A7C15ull) >> (64 - hbits));
}

static inline int64_t set_of(const StackPass *sp, uint64_t key1) {
    return sp->sets == 1 ? 0 : (int64_t)(((key1 - 1) >> 2) % (uint64_t)sp->sets);
}

static inline int64_t fen_prefix(const int32_t *tree, int64_t i) {
    int64_t s = 0;
    for (; i > 0; i &= i - 1) s += tree[i];
    return s;
}

static inline void fen_add(int32_t *tree, int64_t n, int64_t i, int32_t v) {
    for (; i <= n; i += i & -i) tree[i] += v;
}

/* Double the hash table; every live tag's `who` entry follows its new slot. */
static int hash_grow(StackPass *sp) {
    int bits = sp->hbits + 1;
    int64_t cap = (int64_t)1 << bits;
    Slot *h = (Slot *)calloc((size_t)cap, sizeof(Slot));
    if (!h) return -1;
    for (int64_t i = 0; i < sp->hcap; i++) {
        uint64_t k = sp->h[i].key;
        if (!k) continue;
        int64_t j = slot_of(k, bits);
        while (h[j].key) j = (j + 1) & (cap - 1);
        h[j] = sp->h[i];
        sp->S[set_of(sp, k)].who[h[j].pos] = (int32_t)j;
    }
    free(sp->h);
    sp->h = h;
    sp->hcap = cap;
    sp->hbits = bits;
    return 0;
}

/* The timeline of `s` is full: renumber its live positions 0..live-1 in order (only the order
 * matters), growing it first so that at most a quarter of it is live, and rebuild the block tree.
 * Cost O(live + cap / 64), paid once per >= 3/4 cap appends. */
static int set_compact(StackPass *sp, Set *s) {
    int64_t cap = s->cap, ncap = cap ? cap : WORD;
    while (4 * s->live > ncap) ncap *= 2;
    if (ncap > INT32_MAX) { PyErr_SetString(PyExc_OverflowError, "too many distinct tags in one set"); return -1; }
    int64_t n = 0;
    for (int64_t w = 0; w < cap / WORD; w++) {
        for (uint64_t b = s->bits[w]; b; b &= b - 1) {
            int32_t slot = s->who[w * WORD + __builtin_ctzll(b)];
            s->who[n] = slot;
            sp->h[slot].pos = n;
            n++;
        }
    }
    if (ncap != cap) {
        int32_t *who = (int32_t *)realloc(s->who, (size_t)ncap * sizeof(int32_t));
        if (!who) { PyErr_NoMemory(); return -1; }
        s->who = who;
        uint64_t *bits = (uint64_t *)realloc(s->bits, (size_t)(ncap / WORD) * sizeof(uint64_t));
        if (!bits) { PyErr_NoMemory(); return -1; }
        s->bits = bits;
        int32_t *tree = (int32_t *)realloc(s->tree, (size_t)(ncap / WORD + 1) * sizeof(int32_t));
        if (!tree) { PyErr_NoMemory(); return -1; }
        s->tree = tree;
        s->cap = ncap;
    }
    int64_t words = ncap / WORD, full = n / WORD;
    for (int64_t w = 0; w < words; w++)
        s->bits[w] = w < full ? ~0ull : (w == full && (n & 63) ? (1ull << (n & 63)) - 1 : 0);
    /* linear-time Fenwick build: 64 markers in every full block */
    s->tree[0] = 0;
    for (int64_t i = 1; i <= words; i++) s->tree[i] = i <= full ? WORD : 0;
    for (int64_t i = 1; i <= words; i++) {
        int64_t j = i + (i & -i);
        if (j <= words) s->tree[j] += s->tree[i];
    }
    s->t = n;
    s->folded = full;
    s->folded_live = full * WORD;
    return 0;
}

static int hist_bump(StackPass *sp, int64_t d) {
    if (d >= sp->hist_len) {
        int64_t n = sp->hist_len ? sp->hist_len : 64;
        while (n <= d) n *= 2;
        int64_t *h = (int64_t *)realloc(sp->hist, (size_t)n * sizeof(int64_t));
        if (!h) { PyErr_NoMemory(); return -1; }
        memset(h + sp->hist_len, 0, (size_t)(n - sp->hist_len) * sizeof(int64_t));
        sp->hist = h;
        sp->hist_len = n;
    }
    sp->hist[d]++;
    return 0;
}

/* One reference to `key1` (tag + 1). Returns 0, or -1 with a Python exception set. */
static inline int reference(StackPass *sp, uint64_t key1) {
    int64_t hmask = sp->hcap - 1;
    int64_t j = slot_of(key1, sp->hbits);
    while (sp->h[j].key && sp->h[j].key != key1) j = (j + 1) & hmask;
    Set *s = &sp->S[set_of(sp, key1)];
    if (sp->h[j].key) {
        int64_t last = sp->h[j].pos;
        if (last == s->t - 1) {
            /* the newest reference of its set again: distance 0, no marker moves */
            return sp->hist_len ? (sp->hist[0]++, 0) : hist_bump(sp, 0);
        }
        int64_t blk = last / WORD, off = last & 63;
        uint64_t upto = off == 63 ? ~0ull : (2ull << off) - 1; /* positions <= last in its block */
        int64_t before = (blk < s->folded ? fen_prefix(s->tree, blk) : s->folded_live)
                         + __builtin_popcountll(s->bits[blk] & upto);
        int64_t d = s->live - before; /* live markers after `last`: distinct tags since */
        if (d < sp->hist_len) sp->hist[d]++;
        else if (hist_bump(sp, d)) return -1;
        s->bits[blk] &= ~(1ull << off);
        if (blk < s->folded) {
            fen_add(s->tree, s->cap / WORD, blk + 1, -1);
            s->folded_live--;
        }
    } else {
        sp->cold++;
        s->live++;
        if (++sp->hused * 2 > sp->hcap) {
            if (hash_grow(sp)) { PyErr_NoMemory(); return -1; }
            hmask = sp->hcap - 1;
            j = slot_of(key1, sp->hbits);
            while (sp->h[j].key) j = (j + 1) & hmask;
        }
        sp->h[j].key = key1;
        sp->h[j].pos = -1; /* not in the timeline yet: a compaction below does not see it */
    }
    if (s->t == s->cap && set_compact(sp, s)) return -1;
    int64_t pos = s->t++, blk = pos / WORD;
    while (s->folded < blk) {
        /* the blocks before the one being filled enter the tree */
        int32_t c = (int32_t)__builtin_popcountll(s->bits[s->folded]);
        fen_add(s->tree, s->cap / WORD, s->folded + 1, c);
        s->folded_live += c;
        s->folded++;
    }
    s->bits[blk] |= 1ull << (pos & 63);
    s->who[pos] = (int32_t)j;
    sp->h[j].pos = pos;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Python glue
 * -------------------------------------------------------------------------------------------*/
static int StackPass_init(StackPass *sp, PyObject *args, PyObject *kw) {
    long long sets;
    int mask;
    if (!PyArg_ParseTuple(args, "Li", &sets, &mask)) return -1;
    if (sets < 1 || sets > (1LL << 40)) {
        PyErr_SetString(PyExc_ValueError, "sets must be >= 1");
        return -1;
    }
    if (mask < 0 || mask > 7) {
        PyErr_SetString(PyExc_ValueError, "mask must be a subset of the bits 1 (4K), 2 (2M), 4 (1G)");
        return -1;
    }
    if (sp->S) {
        PyErr_SetString(PyExc_RuntimeError, "StackPass already initialised");
        return -1;
    }
    sp->sets = sets;
    sp->mask = mask;
    sp->S = (Set *)calloc((size_t)sets, sizeof(Set));
    sp->hbits = 10;
    sp->hcap = (int64_t)1 << sp->hbits;
    sp->h = (Slot *)calloc((size_t)sp->hcap, sizeof(Slot));
    if (!sp->S || !sp->h) { PyErr_NoMemory(); return -1; }
    return 0;
}

static void StackPass_dealloc(StackPass *sp) {
    if (sp->S) {
        for (int64_t i = 0; i < sp->sets; i++) {
            free(sp->S[i].bits);
            free(sp->S[i].tree);
            free(sp->S[i].who);
        }
        free(sp->S);
    }
    free(sp->h);
    free(sp->hist);
    Py_TYPE(sp)->tp_free((PyObject *)sp);
}

static int get_buffer(PyObject *obj, Py_buffer *view, Py_ssize_t itemsize, const char *what) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return -1;
    if (view->itemsize != itemsize) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_TypeError, "%s must be a contiguous %d-byte integer array", what, (int)itemsize);
        return -1;
    }
    return 0;
}

/* feed(p4 int64, es uint8, counts int64): references of one batch of runs, in trace order */
static PyObject *StackPass_feed(StackPass *sp, PyObject *args) {
    PyObject *po, *eo, *co;
    if (!sp->S) { PyErr_SetString(PyExc_RuntimeError, "StackPass not initialised"); return NULL; }
    if (!PyArg_ParseTuple(args, "OOO", &po, &eo, &co)) return NULL;
    Py_buffer pb, eb, cb;
    if (get_buffer(po, &pb, 8, "p4")) return NULL;
    if (get_buffer(eo, &eb, 1, "es")) { PyBuffer_Release(&pb); return NULL; }
    if (get_buffer(co, &cb, 8, "counts")) { PyBuffer_Release(&pb); PyBuffer_Release(&eb); return NULL; }
    PyObject *ret = NULL;
    Py_ssize_t n = pb.len / 8;
    if (eb.len != n || cb.len / 8 != n) {
        PyErr_SetString(PyExc_ValueError, "p4, es and counts must have the same length");
        goto done;
    }
    const int64_t *p4 = (const int64_t *)pb.buf;
    const uint8_t *es = (const uint8_t *)eb.buf;
    const int64_t *cnt = (const int64_t *)cb.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        int e = es[i];
        int code = (e - 12) / 9;
        if ((e != 12 && e != 21 && e != 30)) {
            PyErr_Format(PyExc_ValueError, "run %zd: entry shift %d is not 12, 21 or 30", i, e);
            goto done;
        }
        if (cnt[i] < 1) {
            PyErr_Format(PyExc_ValueError, "run %zd: count %lld is not >= 1", i, (long long)cnt[i]);
            goto done;
        }
        if (!((sp->mask >> code) & 1)) {
            sp->skipped += cnt[i];
            continue;
        }
        sp->accesses += cnt[i];
        uint64_t vpn = (uint64_t)p4[i] >> (e - 12);
        if (reference(sp, ((vpn << 2) | (uint64_t)code) + 1)) goto done;
    }
    ret = Py_None;
    Py_INCREF(ret);
done:
    PyBuffer_Release(&pb);
    PyBuffer_Release(&eb);
    PyBuffer_Release(&cb);
    return ret;
}

/* result() -> (hist int64 bytes up to the largest distance seen, compulsory, accesses, skipped) */
static PyObject *StackPass_result(StackPass *sp, PyObject *unused) {
    int64_t len = sp->hist_len;
    while (len > 0 && sp->hist[len - 1] == 0) len--;
    PyObject *h = PyBytes_FromStringAndSize((const char *)sp->hist, (Py_ssize_t)(len * 8));
    if (!h) return NULL;
    return Py_BuildValue("(NLLL)", h, (long long)sp->cold, (long long)sp->accesses, (long long)sp->skipped);
}

/* state_bytes() -> bytes of memory the pass holds (hash, timelines, histogram) */
static PyObject *StackPass_state_bytes(StackPass *sp, PyObject *unused) {
    int64_t b = sp->hcap * (int64_t)sizeof(Slot) + sp->hist_len * 8 + sp->sets * (int64_t)sizeof(Set);
    for (int64_t i = 0; i < sp->sets && sp->S; i++) b += sp->S[i].cap * 4 + sp->S[i].cap / WORD * 12 + 4;
    return PyLong_FromLongLong((long long)b);
}

static PyMethodDef StackPass_methods[] = {
    {"feed", (PyCFunction)StackPass_feed, METH_VARARGS, "feed(p4 int64, es uint8, counts int64): runs in trace order."},
    {"result", (PyCFunction)StackPass_result, METH_NOARGS, "(hist bytes, compulsory, accesses, skipped)."},
    {"state_bytes", (PyCFunction)StackPass_state_bytes, METH_NOARGS, "Bytes of state held."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject StackPassType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "memmodel.analysis._stack.StackPass",
    .tp_basicsize = sizeof(StackPass),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "StackPass(sets, mask): per-set LRU stack distances of a stream of translation runs.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)StackPass_init,
    .tp_dealloc = (destructor)StackPass_dealloc,
    .tp_methods = StackPass_methods,
};

static struct PyModuleDef stackmodule = {PyModuleDef_HEAD_INIT, "_stack",
                                         "One-pass per-set LRU stack distances (miss-ratio curves) in C.", -1, NULL};

PyMODINIT_FUNC PyInit__stack(void) {
    if (PyType_Ready(&StackPassType) < 0) return NULL;
    PyObject *m = PyModule_Create(&stackmodule);
    if (!m) return NULL;
    Py_INCREF(&StackPassType);
    PyModule_AddObject(m, "StackPass", (PyObject *)&StackPassType);
    return m;
}
