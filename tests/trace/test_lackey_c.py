"""The C lackey byte scanner (``memmodel/trace/_lackey.c``) against a literal Python transcription.

``py_scan`` below is the numba scanner that ``memmodel.trace.lackey`` used before the C port (reader
version 2), transcribed statement by statement into plain Python on ``bytes`` and lists: slow, but
with nothing in common with the C code. Every test runs both on the same input and the same starting
state and requires identical return values (stop position, records written, messages, lines, status)
and identical output arrays, counts and message positions, including the slots neither should touch.

Inputs: lines built from the grammar's pieces and its near misses (hypothesis), random bytes, and
blocks cut from the shipped traces (``traces/*.lackey.xz``) and every lackey file in ``tests/data``,
as they are and with random byte mutations. Small capacities make the "full" stop happen often.
"""

from __future__ import annotations

import lzma
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memmodel.trace._lackey import scan

ROOT = Path(__file__).resolve().parent.parent.parent
LACKEY_FILES = sorted(
    [*ROOT.glob("traces/*.lackey.xz"), *(ROOT / "tests" / "data").rglob("*.lackey"),
     *(ROOT / "tests" / "data").rglob("*.lackey.xz")]
)
SMALL_FILES = [p for p in LACKEY_FILES if "tests" in p.parts]
HEAD_BYTES = 1 << 20  # blocks of the big shipped traces come from their first MiB (decompressing is slow)

# ----------------------------------------------------------------------------------------------------
# the numba scanner, transcribed literally (same names, same order of tests; ints instead of numpy)

_HEX = [-1] * 256
for _c in range(10):
    _HEX[48 + _c] = _c
for _c in range(6):
    _HEX[97 + _c] = 10 + _c
    _HEX[65 + _c] = 10 + _c

_U64 = (1 << 64) - 1


def _hexval(c: int) -> int:
    if 48 <= c <= 57:
        return c - 48
    if 97 <= c <= 102:
        return c - 87
    if 65 <= c <= 70:
        return c - 55
    return -1


def _after_eol(buf: bytes, j: int, end: int) -> int:
    if j < end and buf[j] == 13:
        j += 1
    if j < end and buf[j] == 10:
        j += 1
    elif j >= end:
        return end
    return j


def _at(buf: bytes, j: int) -> int:
    # numba does not check bounds: the fast path reads buf[end] (one past the text, often still inside
    # the array). Any byte there leads to the same outcome, so a missing byte reads as 0.
    return buf[j] if j < len(buf) else 0


def _emit(kinds, gvas, sizes, counts, nout, k, v, sz):  # type: ignore[no-untyped-def]
    # EMIT_RECORD of the C scanner, but the line count, which the caller adds
    kinds[nout] = k
    gvas[nout] = v
    sizes[nout] = sz
    counts[5 + k] += 1
    return nout + 1


def py_scan(buf, pos, end, kinds, gvas, sizes, nout, counts, msgpos, nmsg):  # type: ignore[no-untyped-def]
    cap = len(kinds)
    lines = 0
    while pos < end:
        if nout >= cap or nmsg >= len(msgpos):
            return pos, nout, nmsg, lines, 1
        k = -1
        if pos + 3 < end:
            c0 = buf[pos]
            c1 = buf[pos + 1]
            if c0 == 73 and c1 == 32 and buf[pos + 2] == 32:
                k = 0
            elif c0 == 32 and buf[pos + 2] == 32:
                if c1 == 76:
                    k = 1
                elif c1 == 83:
                    k = 2
                elif c1 == 77:
                    k = 3
        if k >= 0:
            j = pos + 3
            v = 0
            while j < end:
                h = _HEX[buf[j]]
                if h < 0:
                    break
                v = ((v << 4) | h) & _U64
                j += 1
            nd = j - pos - 3
            if 0 < nd <= 16 and _at(buf, j) == 44:
                j += 1
                sz = 0
                j0 = j
                while j < end and 48 <= buf[j] <= 57 and j - j0 < 6:
                    sz = sz * 10 + (buf[j] - 48)
                    j += 1
                if j < end and buf[j] == 10 and j > j0 and 0 < sz <= 65535:
                    nout = _emit(kinds, gvas, sizes, counts, nout, k, v, sz)
                    lines += 1
                    pos = j + 1
                    continue
            k = -1
        i = pos
        while i < end and (buf[i] == 32 or buf[i] == 9):
            i += 1
        c = buf[i] if i < end else 10
        if c == 73:
            k = 0
        elif c == 76:
            k = 1
        elif c == 83:
            k = 2 if (i + 1 < end and buf[i + 1] == 32) else -1
        elif c == 77:
            k = 3
        if k >= 0 and i + 1 < end and buf[i + 1] == 32:
            j = i + 1
            while j < end and buf[j] == 32:
                j += 1
            v = 0
            j0 = j
            while j < end:
                h = _HEX[buf[j]]
                if h < 0:
                    break
                v = ((v << 4) | h) & _U64
                j += 1
            nd = j - j0
            if nd == 0 or nd > 16 or j >= end or buf[j] != 44:
                return pos, nout, nmsg, lines, 2
            j += 1
            sz = 0
            nd = 0
            while j < end and 48 <= buf[j] <= 57:
                sz = sz * 10 + (buf[j] - 48)
                nd += 1
                j += 1
                if nd > 5:
                    return pos, nout, nmsg, lines, 2
            if nd == 0 or sz == 0 or sz > 65535:
                return pos, nout, nmsg, lines, 2
            if j < end and buf[j] == 32:
                while j < end and buf[j] == 32:
                    j += 1
                nd = 0
                while j < end and 48 <= buf[j] <= 57:
                    nd += 1
                    j += 1
                if nd == 0:
                    return pos, nout, nmsg, lines, 2
                counts[4] += 1
            if j < end and buf[j] != 10 and buf[j] != 13:
                return pos, nout, nmsg, lines, 2
            nout = _emit(kinds, gvas, sizes, counts, nout, k, v, sz)
            lines += 1
            pos = _after_eol(buf, j, end)
            continue
        slot = -1
        j = i
        if c == 10 or c == 13:
            slot = 3
        elif (c == 61 or c == 45) and i + 1 < end and buf[i + 1] == c:
            j = i + 2
            nd = 0
            while j < end and 48 <= buf[j] <= 57:
                nd += 1
                j += 1
            if nd > 0 and j + 1 < end and buf[j] == c and buf[j + 1] == c:
                j += 2
                if j >= end or buf[j] == 32 or buf[j] == 10 or buf[j] == 13:
                    slot = 0 if c == 61 else 1
        elif c == 83 and i + 1 < end and buf[i + 1] == 66:
            j = i + 2
            if j < end and buf[j] == 32:
                while j < end and buf[j] == 32:
                    j += 1
                nd = 0
                while j < end and _hexval(buf[j]) >= 0:
                    nd += 1
                    j += 1
                if 0 < nd <= 16 and (j >= end or buf[j] == 10 or buf[j] == 13):
                    slot = 2
        if slot < 0:
            return pos, nout, nmsg, lines, 2
        if slot == 0:
            msgpos[nmsg] = pos
            nmsg += 1
        counts[slot] += 1
        while j < end and buf[j] != 10 and buf[j] != 13:
            j += 1
        lines += 1
        pos = _after_eol(buf, j, end)
    return pos, nout, nmsg, lines, 0


# ----------------------------------------------------------------------------------------------------
# running both from the same state


def _skip_line(buf: bytes, pos: int, end: int) -> int:
    """Offset after the line at ``pos`` (LF, CRLF or CR), as read_lackey skips a line Python handled."""
    j = pos
    while j < end and buf[j] not in (10, 13):
        j += 1
    return _after_eol(buf, j, end)


def both(data: bytes, pos: int, end: int, cap: int, msgcap: int, nout: int = 0, nmsg: int = 0) -> tuple:
    """One call of each scanner from identical state; asserts identical results and returns them."""
    rng = np.random.default_rng(len(data) * 7919 + pos)  # junk in the outputs: untouched slots must stay
    kinds = rng.integers(0, 256, cap, dtype=np.uint8)
    gvas = rng.integers(0, 2**63, cap, dtype=np.uint64)
    sizes = rng.integers(0, 2**63, cap, dtype=np.uint64)
    counts = rng.integers(0, 1000, 9, dtype=np.int64)
    msgpos = rng.integers(-5, 5, msgcap, dtype=np.int64)
    arrays: dict[str, np.ndarray] = {"kinds": kinds, "gvas": gvas, "sizes": sizes, "counts": counts, "msgpos": msgpos}
    py = {name: a.tolist() for name, a in arrays.items()}
    buf = np.frombuffer(data, np.uint8)
    got_c = scan(buf, pos, end, kinds, gvas, sizes, nout, counts, msgpos, nmsg)
    got_py = py_scan(data, pos, end, py["kinds"], py["gvas"], py["sizes"], nout, py["counts"], py["msgpos"], nmsg)
    assert got_c == got_py
    assert all(type(x) is int for x in got_c)
    for name, a in arrays.items():
        assert a.tolist() == py[name], name
    return got_c


def drive(data: bytes, cap: int = 1 << 16, msgcap: int = 256, start: int = 0) -> int:
    """Scan all of ``data`` the way read_lackey does (bad lines skipped, outputs emptied when full),
    checking every call; returns the number of calls."""
    pos, end, calls = start, len(data), 0
    nout = 0
    while pos < end:
        npos, nout, _, _, status = both(data, pos, end, cap, msgcap, nout)
        calls += 1
        if status == 2:
            npos = _skip_line(data, npos, end)
        if nout >= cap or status == 1:
            nout = 0
        assert npos > pos or status == 1
        pos = npos
    return calls


# ----------------------------------------------------------------------------------------------------
# inputs

_EOL = st.sampled_from([b"\n", b"\n", b"\n", b"\r\n", b"\r", b""])
_PREFIX = st.sampled_from(
    [b"I  ", b" L ", b" S ", b" M ", b"I ", b"L ", b"S ", b"M ", b" I  ", b"\tS ", b"  M   ", b" L  ", b"I\t",
     b"U ", b" U ", b"X ", b"S", b"SB ", b"I  0x"]
)
_ADDR = st.one_of(
    st.text("0123456789abcdefABCDEF", max_size=18).map(str.encode),
    st.text("0123456789abcdefxg -", max_size=6).map(str.encode),
    st.sampled_from([b"0400d7d4", b"7ff000398", b"ffffffffffffffff", b"1ffffffffffffffff", b"0", b""]),
)
_SIZE = st.one_of(
    st.text("0123456789", max_size=7).map(str.encode),
    st.sampled_from([b"1", b"8", b"65535", b"65536", b"0", b"00008", b"000008", b"99999", b"100000", b"-1"]),
)
_THIRD = st.sampled_from([b"", b"", b" 17", b"  3", b" ", b" x", b"\t1", b" 1 2"])
_TAIL = st.sampled_from([b"", b"", b"", b" ", b"x", b"\t"])
_RECORD = st.tuples(_PREFIX, _ADDR, st.sampled_from([b",", b",", b",", b"", b";", b", "]), _SIZE, _THIRD, _TAIL,
                    _EOL).map(b"".join)
_OTHER = st.tuples(
    st.sampled_from(
        [b"==123== hello", b"==1==", b"==1== ", b"== 1==", b"==x==", b"==12==guest", b"==", b"=1=", b"  ==7== x",
         b"==4242==    guest instrs:  1,234", b"--77-- dbg", b"--77--", b"-- 7 --", b"--1-", b"SB 4000",
         b"SB  deadBEEF", b"SB ffffffffffffffff", b"SB", b"SB ", b"SB 12345678901234567", b"SBx 1", b"SB 40g",
         b"", b"   ", b"\t",
         b"SYSCALL[1,1](11) ... [sync] --> Success(0x0)", b"hello-from-client", b" S", b"I", b"M  "]
    ),
    _EOL,
).map(b"".join)
_SUPERBLOCK = st.tuples(st.sampled_from([b"SB ", b"SB  ", b"SB", b"SB\t", b" SB "]), _ADDR, _TAIL, _EOL).map(b"".join)
_LINE = st.one_of(_RECORD, _RECORD, _OTHER, _SUPERBLOCK, st.binary(max_size=12))
_BLOCK = st.lists(_LINE, max_size=12).map(b"".join)


@cache
def _text(path: Path, limit: int | None) -> bytes:
    """The decompressed text of a lackey file (its first ``limit`` bytes if given)."""
    with (lzma.open(path) if path.suffix == ".xz" else path.open("rb")) as f:
        return f.read(limit) if limit else f.read()


def _file_text(path: Path) -> bytes:
    return _text(path, None if path in SMALL_FILES else HEAD_BYTES)


# ----------------------------------------------------------------------------------------------------
# tests


def test_c_scanner_equals_transcription_on_grammar_blocks_from_every_start_and_capacity():
    data = (b"I  0400d7d4,8\n L 7ff000398,8 17\n==12== hi\r\n--3-- x\rSB 4000\n\n S 10,4\n M ffff,65535\n"
            b"U 4000,8\n I  1,1\nSYSCALL[1,1](11)\n==1==")
    for pos in range(len(data) + 1):
        for cap, msgcap in ((1, 1), (2, 1), (100, 1), (100, 256)):
            both(data, pos, len(data), cap, msgcap)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(block=_BLOCK, cut=st.integers(0, 1 << 16), start=st.integers(0, 1 << 16), cap=st.sampled_from([1, 3, 64]),
       msgcap=st.sampled_from([1, 2, 256]), nout=st.integers(0, 2), nmsg=st.integers(0, 1))
def test_c_scanner_equals_transcription_on_random_grammar_blocks(block, cut, start, cap, msgcap, nout, nmsg):
    end = cut % (len(block) + 1)  # end anywhere, also mid-line (the scanner may read up to buf[end])
    pos = start % (end + 1)
    both(block, pos, end, cap, msgcap, min(nout, cap), min(nmsg, msgcap))
    both(block, pos, len(block), cap, msgcap)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(_LINE, max_size=40), cap=st.sampled_from([1, 5, 1 << 10]), msgcap=st.sampled_from([1, 256]))
def test_c_scanner_equals_transcription_driven_like_the_reader(lines, cap, msgcap):
    drive(b"".join(lines), cap, msgcap)


_MUTANT = st.sampled_from([*b"0123456789abcdefABCDEFgxILSMUB ,=-\t\r\n", 0, 255])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(which=st.integers(0, len(LACKEY_FILES) - 1), at=st.integers(0, 1 << 30), length=st.integers(1, 4096),
       edits=st.lists(st.tuples(st.integers(0, 1 << 30), st.sampled_from(["set", "insert", "delete"]), _MUTANT),
                      max_size=6),
       cap=st.sampled_from([2, 16, 1 << 12]), msgcap=st.sampled_from([1, 256]))
def test_c_scanner_equals_transcription_on_mutated_blocks_of_the_shipped_traces(which, at, length, edits, cap,
                                                                                  msgcap):
    text = _file_text(LACKEY_FILES[which])
    start = at % max(1, len(text))
    block = bytearray(text[start : start + length])
    for where, op, byte in edits:
        i = where % (len(block) + 1)
        if op == "insert":
            block.insert(i, byte)
        elif i < len(block):
            if op == "set":
                block[i] = byte
            else:
                del block[i]
    drive(bytes(block), cap, msgcap)


@pytest.mark.parametrize("path", LACKEY_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_c_scanner_equals_transcription_on_the_start_middle_and_end_of_each_trace(path):
    text = _file_text(path)
    n = 1 << 15
    for lo in sorted({0, max(0, len(text) // 2 - n // 2), max(0, len(text) - n)}):
        block = text[lo : lo + n]
        cut = block.find(b"\n") + 1 if lo else 0  # start at a line start, as read_lackey's blocks do
        drive(block[cut:], cap=1 << 12)
        drive(block[cut:], cap=7, msgcap=2)


@pytest.mark.slow
@pytest.mark.parametrize("path", SMALL_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_c_scanner_equals_transcription_on_the_whole_test_data_trace(path):
    text = _text(path, None)
    assert drive(text, cap=1 << 12) >= 1


def test_c_scanner_rejects_wrong_arrays_and_positions_with_an_error_not_a_crash():
    buf = np.frombuffer(b"I  10,8\n", np.uint8)
    k, g, s = np.zeros(4, np.uint8), np.zeros(4, np.uint64), np.zeros(4, np.uint64)
    c, m = np.zeros(9, np.int64), np.zeros(4, np.int64)
    assert scan(buf, 0, 8, k, g, s, 0, c, m, 0) == (8, 1, 0, 1, 0)
    with pytest.raises(ValueError, match="end"):
        scan(buf, 0, 9, k, g, s, 0, c, m, 0)
    with pytest.raises(ValueError, match="pos"):
        scan(buf, -1, 8, k, g, s, 0, c, m, 0)
    with pytest.raises(ValueError, match="gvas and sizes"):
        scan(buf, 0, 8, k, g[:2], s, 0, c, m, 0)
    with pytest.raises(ValueError, match="counts"):
        scan(buf, 0, 8, k, g, s, 0, c[:5], m, 0)
    with pytest.raises(ValueError, match="nout"):
        scan(buf, 0, 8, k, g, s, -1, c, m, 0)
    with pytest.raises(TypeError, match="gvas"):
        scan(buf, 0, 8, k, g.astype(np.uint32), s, 0, c, m, 0)
    with pytest.raises(TypeError, match="sizes"):
        scan(buf, 0, 8, k, g, s.astype(np.float64), 0, c, m, 0)
    with pytest.raises((TypeError, ValueError)):  # read-only output
        scan(buf, 0, 8, k, g, np.frombuffer(bytes(32), np.uint64), 0, c, m, 0)
