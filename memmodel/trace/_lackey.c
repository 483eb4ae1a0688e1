/* memmodel's lackey byte scanner in C (the fast path of memmodel.trace.lackey.read_lackey).
 *
 * scan(buf, pos, end, kinds, gvas, sizes, nout, counts, msgpos, nmsg) -> (pos, nout, nmsg, lines, status)
 *
 * Parses the lines of buf[pos:end] (bytes) into kinds/gvas/sizes[nout:] and stops at the first line it
 * does not know, leaving that line to Python (syscall lines, the client's stdout, bad lines). The grammar
 * and every status, count and position are those stated in memmodel/trace/lackey.py (module docstring and
 * `_scan`'s); tests/trace/test_lackey_c.py checks this file against a literal Python transcription.
 *
 * Arguments (any object with the buffer protocol; numpy arrays in practice):
 *   buf     uint8 text; `end` <= len(buf) is just after a line end (LF, or a lone CR) or the end of the
 *           final block.
 *   kinds   uint8 output (codes I=0 L=1 S=2 M=3); its length is the capacity `cap`.
 *   gvas    8-byte integer output (addresses, bytes), length >= cap.
 *   sizes   8-byte integer output (access sizes, bytes), length >= cap.
 *   counts  int64, >= 9 slots, incremented in place: 0 ==PID== messages, 1 --PID-- debug messages,
 *           2 SB superblock lines, 3 blank lines, 4 records with a 3rd column, 5..8 records of kind 0..3.
 *   msgpos  int64 output: the start offset of every ==PID== message line (for the footer), capacity
 *           len(msgpos).
 *   nout, nmsg  entries already filled in kinds/gvas/sizes and msgpos.
 *
 * Returns pos (where parsing stopped: the start of the bad line for status 2), nout, nmsg, lines
 * (lines consumed before pos) and status: 0 = buf[pos:end] consumed, 1 = outputs or msgpos full,
 * 2 = the line at pos is not a lackey line. Counts are updated as in the Python rules, including the
 * 3rd-column count of a line that then turns out bad (slot 4 is bumped before the line end is checked).
 *
 * The GIL is released while scanning; the buffers stay held (and so cannot be resized) until the end.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define N_COUNTS 9

enum { ST_END = 0, ST_FULL = 1, ST_BAD = 2 };

/* hex digit value of a byte, -1 if it is not one (either case) */
static int8_t HEX[256];

static void hex_init(void) {
    memset(HEX, -1, sizeof(HEX));
    for (int c = 0; c < 10; c++) HEX['0' + c] = (int8_t)c;
    for (int c = 0; c < 6; c++) {
        HEX['a' + c] = (int8_t)(10 + c);
        HEX['A' + c] = (int8_t)(10 + c);
    }
}

/* Offset after the line end at j (LF, CRLF or a lone CR); end when the text ends at j. */
static inline Py_ssize_t after_eol(const uint8_t *buf, Py_ssize_t j, Py_ssize_t end) {
    if (j < end && buf[j] == '\r') j++;
    if (j < end && buf[j] == '\n')
        j++;
    else if (j >= end)
        return end;
    return j;
}

typedef struct {
    Py_ssize_t pos, nout, nmsg, lines;
    int status;
} ScanState;

/* One record out (kind k, address v, size sz) and its line counted: both paths of scan_block. */
#define EMIT_RECORD(k, v, sz)            \
    do {                                 \
        kinds[nout] = (uint8_t)(k);      \
        gvas[nout] = (v);                \
        sizes[nout] = (sz);              \
        nout++;                          \
        counts[5 + (k)]++;               \
        lines++;                         \
    } while (0)

static void scan_block(const uint8_t *buf, Py_ssize_t end, uint8_t *kinds, uint64_t *gvas, uint64_t *sizes,
                       Py_ssize_t cap, int64_t *counts, int64_t *msgpos, Py_ssize_t msgcap, ScanState *st) {
    Py_ssize_t pos = st->pos, nout = st->nout, nmsg = st->nmsg, lines = 0;
    int status = ST_END;
    while (pos < end) {
        if (nout >= cap || nmsg >= msgcap) {
            status = ST_FULL;
            break;
        }
        int k = -1;
        if (pos + 3 < end) { /* fast path: lackey's own 'I  ' and ' X ' prefixes */
            uint8_t c0 = buf[pos], c1 = buf[pos + 1];
            if (c0 == 'I' && c1 == ' ' && buf[pos + 2] == ' ')
                k = 0;
            else if (c0 == ' ' && buf[pos + 2] == ' ') {
                if (c1 == 'L')
                    k = 1;
                else if (c1 == 'S')
                    k = 2;
                else if (c1 == 'M')
                    k = 3;
            }
        }
        if (k >= 0) {
            Py_ssize_t j = pos + 3;
            uint64_t v = 0;
            while (j < end) {
                int h = HEX[buf[j]];
                if (h < 0) break;
                v = (v << 4) | (uint64_t)h;
                j++;
            }
            Py_ssize_t nd = j - pos - 3;
            /* (j < end: the Python rule reads one byte past the text here; every outcome of that read
             * falls through to the general path below, so testing j first changes nothing) */
            if (nd > 0 && nd <= 16 && j < end && buf[j] == ',') {
                j++;
                uint64_t sz = 0;
                Py_ssize_t j0 = j;
                while (j < end && buf[j] >= '0' && buf[j] <= '9' && j - j0 < 6) {
                    sz = sz * 10 + (uint64_t)(buf[j] - '0');
                    j++;
                }
                if (j < end && buf[j] == '\n' && j > j0 && sz > 0 && sz <= 65535) {
                    EMIT_RECORD(k, v, sz);
                    pos = j + 1;
                    continue;
                }
            }
            k = -1;
        }
        Py_ssize_t i = pos;
        while (i < end && (buf[i] == ' ' || buf[i] == '\t')) i++;
        int c = i < end ? buf[i] : '\n';
        if (c == 'I')
            k = 0;
        else if (c == 'L')
            k = 1;
        else if (c == 'S')
            k = (i + 1 < end && buf[i + 1] == ' ') ? 2 : -1;
        else if (c == 'M')
            k = 3;
        if (k >= 0 && i + 1 < end && buf[i + 1] == ' ') {
            Py_ssize_t j = i + 1;
            while (j < end && buf[j] == ' ') j++;
            uint64_t v = 0;
            Py_ssize_t j0 = j;
            while (j < end) {
                int h = HEX[buf[j]];
                if (h < 0) break;
                v = (v << 4) | (uint64_t)h;
                j++;
            }
            Py_ssize_t nd = j - j0;
            if (nd == 0 || nd > 16 || j >= end || buf[j] != ',') {
                status = ST_BAD;
                break;
            }
            j++;
            uint64_t sz = 0;
            nd = 0;
            int bad = 0;
            while (j < end && buf[j] >= '0' && buf[j] <= '9') {
                sz = sz * 10 + (uint64_t)(buf[j] - '0');
                nd++;
                j++;
                if (nd > 5) {
                    bad = 1;
                    break;
                }
            }
            if (bad || nd == 0 || sz == 0 || sz > 65535) {
                status = ST_BAD;
                break;
            }
            if (j < end && buf[j] == ' ') { /* 3-column course variant: ' S addr,size N' */
                while (j < end && buf[j] == ' ') j++;
                nd = 0;
                while (j < end && buf[j] >= '0' && buf[j] <= '9') {
                    nd++;
                    j++;
                }
                if (nd == 0) {
                    status = ST_BAD;
                    break;
                }
                counts[4]++;
            }
            if (j < end && buf[j] != '\n' && buf[j] != '\r') {
                status = ST_BAD;
                break;
            }
            EMIT_RECORD(k, v, sz);
            pos = after_eol(buf, j, end);
            continue;
        }
        /* non-record lines */
        int slot = -1;
        Py_ssize_t j = i;
        if (c == '\n' || c == '\r') {
            slot = 3;
        } else if ((c == '=' || c == '-') && i + 1 < end && buf[i + 1] == c) { /* '==PID==' or '--PID--' */
            j = i + 2;
            Py_ssize_t nd = 0;
            while (j < end && buf[j] >= '0' && buf[j] <= '9') {
                nd++;
                j++;
            }
            if (nd > 0 && j + 1 < end && buf[j] == c && buf[j + 1] == c) {
                j += 2;
                if (j >= end || buf[j] == ' ' || buf[j] == '\n' || buf[j] == '\r') slot = c == '=' ? 0 : 1;
            }
        } else if (c == 'S' && i + 1 < end && buf[i + 1] == 'B') { /* 'SB addr' */
            j = i + 2;
            if (j < end && buf[j] == ' ') {
                while (j < end && buf[j] == ' ') j++;
                Py_ssize_t nd = 0;
                while (j < end && HEX[buf[j]] >= 0) {
                    nd++;
                    j++;
                }
                if (nd > 0 && nd <= 16 && (j >= end || buf[j] == '\n' || buf[j] == '\r')) slot = 2;
            }
        }
        if (slot < 0) {
            status = ST_BAD;
            break;
        }
        if (slot == 0) msgpos[nmsg++] = (int64_t)pos;
        counts[slot]++;
        while (j < end && buf[j] != '\n' && buf[j] != '\r') j++;
        lines++;
        pos = after_eol(buf, j, end);
    }
    st->pos = pos;
    st->nout = nout;
    st->nmsg = nmsg;
    st->lines = lines;
    st->status = status;
}

/* Is a buffer format a single native integer code (numpy's, possibly with a '@' or '=' prefix)? */
static int int_format(const char *f) {
    if (!f) return 1; /* no format given: plain bytes */
    if (*f == '@' || *f == '=') f++;
    return f[0] && !f[1] && strchr("bBhHiIlLqQnN", f[0]) != NULL;
}

static int get_buffer(PyObject *obj, Py_buffer *view, Py_ssize_t itemsize, int writable, const char *what) {
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) return -1;
    if (view->itemsize != itemsize || !int_format(view->format)) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_TypeError, "%s must be a contiguous %d-byte integer array", what, (int)itemsize);
        return -1;
    }
    return 0;
}

static PyObject *lackey_scan(PyObject *self, PyObject *args) {
    PyObject *bo, *ko, *go, *so, *co, *mo;
    Py_ssize_t pos, end, nout, nmsg;
    if (!PyArg_ParseTuple(args, "OnnOOOnOOn", &bo, &pos, &end, &ko, &go, &so, &nout, &co, &mo, &nmsg)) return NULL;
    Py_buffer b[6];
    PyObject *objs[6] = {bo, ko, go, so, co, mo};
    static const Py_ssize_t isz[6] = {1, 1, 8, 8, 8, 8};
    static const int wr[6] = {0, 1, 1, 1, 1, 1};
    static const char *names[6] = {"buf", "kinds", "gvas", "sizes", "counts", "msgpos"};
    int got = 0;
    PyObject *ret = NULL;
    for (; got < 6; got++)
        if (get_buffer(objs[got], &b[got], isz[got], wr[got], names[got])) goto done;
    Py_ssize_t cap = b[1].len, msgcap = b[5].len / 8;
    if (pos < 0 || end < 0 || end > b[0].len) {
        PyErr_Format(PyExc_ValueError, "scan: need 0 <= pos and 0 <= end <= len(buf) = %zd (pos %zd, end %zd)",
                     b[0].len, pos, end);
        goto done;
    }
    if (b[2].len / 8 < cap || b[3].len / 8 < cap) {
        PyErr_SetString(PyExc_ValueError, "scan: gvas and sizes must hold at least len(kinds) entries");
        goto done;
    }
    if (b[4].len / 8 < N_COUNTS) {
        PyErr_Format(PyExc_ValueError, "scan: counts must have at least %d slots", N_COUNTS);
        goto done;
    }
    if (nout < 0 || nmsg < 0) {
        PyErr_SetString(PyExc_ValueError, "scan: nout and nmsg must be >= 0");
        goto done;
    }
    ScanState st = {pos, nout, nmsg, 0, ST_END};
    Py_BEGIN_ALLOW_THREADS
    scan_block((const uint8_t *)b[0].buf, end, (uint8_t *)b[1].buf, (uint64_t *)b[2].buf, (uint64_t *)b[3].buf,
               cap, (int64_t *)b[4].buf, (int64_t *)b[5].buf, msgcap, &st);
    Py_END_ALLOW_THREADS
    ret = Py_BuildValue("(nnnni)", st.pos, st.nout, st.nmsg, st.lines, st.status);
done:
    for (int i = 0; i < got; i++) PyBuffer_Release(&b[i]);
    return ret;
}

static PyMethodDef lackey_methods[] = {
    {"scan", lackey_scan, METH_VARARGS,
     "scan(buf, pos, end, kinds, gvas, sizes, nout, counts, msgpos, nmsg) -> (pos, nout, nmsg, lines, status)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef lackeymodule = {PyModuleDef_HEAD_INIT, "_lackey",
                                          "The lackey byte scanner (memmodel.trace.lackey's fast path) in C.", -1,
                                          lackey_methods};

PyMODINIT_FUNC PyInit__lackey(void) {
    hex_init();
    return PyModule_Create(&lackeymodule);
}
