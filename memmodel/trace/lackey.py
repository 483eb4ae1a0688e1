"""Reader for Valgrind lackey traces (``valgrind --tool=lackey --trace-mem=yes``).

Grammar accepted (trace-formats.md section 1.2), one line at a time, after stripping leading
blanks (spaces, tabs) and a trailing ``\\r`` (CRLF files):

* record: kind letter ``I``/``L``/``S``/``M``, one or more spaces, 1-16 hex digits (either case,
  no ``0x``; lackey pads to at least 8 but hand-made traces do not), ``,``, a decimal size
  1..65535 (bytes). So lackey's two-space ``I  addr,size``, its one-space `` L addr,size``, the
  course material's one-space ``I 0400d7d4,8`` and 32-bit (8-digit) traces all parse.
* 3-column course variant (RUC cachelab2, `` S 7ff000398,8 17``): **decision** -- the record is
  kept and the third column (a decimal, meaning not defined by lackey) is ignored; such records
  are counted in ``notes["records_with_extra_column"]`` so nothing is silent.
* known non-record lines: ``==PID==`` messages (``valgrind_message``, including the bare
  ``==PID== `` with only a trailing space, the header and the footer), ``--PID--`` debug
  messages (``valgrind_debug``), ``SB addr`` superblock lines (``superblock``), blank lines
  (``blank``).
* anything else (e.g. the client's stdout interleaved by ``--log-fd=1``) is NOT a record: a
  :class:`~memmodel.errors.TraceError` naming file, line number, text and what was expected,
  or with ``skip_bad`` a skip counted as ``bad_line``.
* a final line without newline that does not parse is skipped as ``truncated_last_line`` with a
  warning (a killed process); one that parses is kept, with a warning that it may be cut short.

The footer's ``guest instrs:`` (thousands separators) is summed over all footers (one per
process when a forked child logs to the same file) and compared with the ``I`` records.

Speed: a numba byte scanner (:func:`_scan`, ``nogil``) parses newline-aligned blocks straight
into preallocated ``kind``/``gva``/``size`` arrays; Python only handles messages and bad lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np
from numba import njit

from memmodel.errors import TraceError
from memmodel.trace.accounting import MAX_QUOTED_SKIPS, Accounting
from memmodel.trace.source import BLOCK_BYTES, Source

READER_NAME = "lackey"
READER_VERSION = "1"

_ST_END = 0  # block consumed
_ST_FULL = 1  # output arrays or message buffer full
_ST_BAD = 2  # line at pos is not a lackey line

# counts[] slots filled by the scanner
_C_MSG, _C_DBG, _C_SB, _C_BLANK, _C_EXTRA = 0, 1, 2, 3, 4
_C_KIND0 = 5  # 5..8: records of kind 0..3
_N_COUNTS = 9
_MSG_CAP = 256

_EXPECTED = (
    "expected a lackey line: a record 'I  <hex address>,<size>' or ' L|S|M <hex address>,<size>' "
    "(address 1-16 hex digits, size 1..65535), a '==PID==' or '--PID--' message, 'SB <hex address>' "
    "or a blank line"
)


_HEX = np.full(256, -1, np.int8)
for _c in range(10):
    _HEX[48 + _c] = _c
for _c in range(6):
    _HEX[97 + _c] = 10 + _c
    _HEX[65 + _c] = 10 + _c


@njit(cache=True, nogil=True)
def _hexval(c: int) -> int:
    if 48 <= c <= 57:
        return c - 48
    if 97 <= c <= 102:
        return c - 87
    if 65 <= c <= 70:
        return c - 55
    return -1


@njit(cache=True, nogil=True)
def _scan(buf, pos, end, kinds, gvas, sizes, nout, counts, msgpos, nmsg):  # type: ignore[no-untyped-def]
    """Parse lines of ``buf[pos:end]`` into ``kinds/gvas/sizes[nout:]``.

    ``end`` is a line end (just after ``\\n``) or the end of the final block. Returns
    ``(pos, nout, nmsg, lines, status)``: ``pos`` is where parsing stopped (start of the bad line
    for ``_ST_BAD``), ``lines`` how many lines were consumed before ``pos``.
    """
    cap = kinds.shape[0]
    lines = 0
    while pos < end:
        if nout >= cap or nmsg >= msgpos.shape[0]:
            return pos, nout, nmsg, lines, 1
        k = -1
        if pos + 3 < end:  # fast path: lackey's own 'I  ' and ' X ' prefixes
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
            v = np.uint64(0)
            while j < end:
                h = _HEX[buf[j]]
                if h < 0:
                    break
                v = (v << np.uint64(4)) | np.uint64(h)
                j += 1
            nd = j - pos - 3
            if 0 < nd <= 16 and buf[j] == 44:
                j += 1
                sz = 0
                j0 = j
                while j < end and 48 <= buf[j] <= 57 and j - j0 < 6:
                    sz = sz * 10 + (buf[j] - 48)
                    j += 1
                if j < end and buf[j] == 10 and j > j0 and 0 < sz <= 65535:
                    kinds[nout] = k
                    gvas[nout] = v
                    sizes[nout] = sz
                    nout += 1
                    counts[5 + k] += 1
                    lines += 1
                    pos = j + 1
                    continue
            k = -1
        i = pos
        while i < end and (buf[i] == 32 or buf[i] == 9):
            i += 1
        c = buf[i] if i < end else 10
        if c == 73:  # I
            k = 0
        elif c == 76:  # L
            k = 1
        elif c == 83:  # S
            k = 2 if (i + 1 < end and buf[i + 1] == 32) else -1
        elif c == 77:  # M
            k = 3
        if k >= 0 and i + 1 < end and buf[i + 1] == 32:
            j = i + 1
            while j < end and buf[j] == 32:
                j += 1
            v = np.uint64(0)
            j0 = j
            while j < end:
                h = _HEX[buf[j]]
                if h < 0:
                    break
                v = (v << np.uint64(4)) | np.uint64(h)
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
            if j < end and buf[j] == 32:  # 3-column course variant: ' S addr,size N'
                while j < end and buf[j] == 32:
                    j += 1
                nd = 0
                while j < end and 48 <= buf[j] <= 57:
                    nd += 1
                    j += 1
                if nd == 0:
                    return pos, nout, nmsg, lines, 2
                counts[4] += 1
            if j < end and buf[j] == 13:
                j += 1
            if j < end and buf[j] != 10:
                return pos, nout, nmsg, lines, 2
            kinds[nout] = k
            gvas[nout] = v
            sizes[nout] = sz
            nout += 1
            counts[5 + k] += 1
            lines += 1
            pos = j + 1
            continue
        # non-record lines
        slot = -1
        if c == 10 or c == 13:
            j = i
            if c == 13:
                j += 1
            if j >= end or buf[j] == 10:
                slot = 3
        elif (c == 61 or c == 45) and i + 1 < end and buf[i + 1] == c:  # '==' or '--'
            j = i + 2
            nd = 0
            while j < end and 48 <= buf[j] <= 57:
                nd += 1
                j += 1
            if nd > 0 and j + 1 < end and buf[j] == c and buf[j + 1] == c:
                j += 2
                if j >= end or buf[j] == 32 or buf[j] == 10 or buf[j] == 13:
                    slot = 0 if c == 61 else 1
        elif c == 83 and i + 1 < end and buf[i + 1] == 66:  # 'SB addr'
            j = i + 2
            if j < end and buf[j] == 32:
                while j < end and buf[j] == 32:
                    j += 1
                nd = 0
                while j < end and _hexval(buf[j]) >= 0:
                    nd += 1
                    j += 1
                if j < end and buf[j] == 13:
                    j += 1
                if 0 < nd <= 16 and (j >= end or buf[j] == 10):
                    slot = 2
        if slot < 0:
            return pos, nout, nmsg, lines, 2
        if slot == 0:
            msgpos[nmsg] = pos
            nmsg += 1
        counts[slot] += 1
        while j < end and buf[j] != 10:
            j += 1
        lines += 1
        pos = j + 1
    return pos, nout, nmsg, lines, 0


_GUEST_INSTRS = re.compile(rb"^\s*==\d+==\s+guest instrs:\s+([\d,]+)\s*$")
_LACKEY_LINE = re.compile(rb"^\s*[ILSM] +[0-9a-fA-F]{1,16},[0-9]{1,5}( +[0-9]+)?\r?$")


def diagnose(text: bytes) -> str:
    """What is wrong with a line that almost looks like a lackey record (for the error message)."""
    t = text.strip()
    m = re.match(rb"^([ILSM]) +(\S*?),(\S*)", t)
    if m:
        addr, size = m.group(2), m.group(3).split(b" ")[0]
        if not re.fullmatch(rb"[0-9a-fA-F]{1,16}", addr):
            return f"address {addr.decode(errors='replace')!r} is not 1-16 hex digits; " + _EXPECTED
        if not size.isdigit() or not 1 <= int(size) <= 65535:
            return f"size {size.decode(errors='replace')!r} is not a decimal 1..65535; " + _EXPECTED
    return _EXPECTED


def looks_like_lackey(line: bytes) -> bool:
    """Whether one line is a lackey record (used for format detection)."""
    return bool(_LACKEY_LINE.match(line))


def _line_text(buf: np.ndarray, pos: int) -> tuple[bytes, int]:
    """The line starting at ``pos`` (without its end) and the offset after its newline."""
    raw = buf[pos:].tobytes() if buf.shape[0] - pos < 4096 else buf[pos : pos + 4096].tobytes()
    nl = raw.find(b"\n")
    if nl < 0:
        # the line may be longer than 4096 bytes
        rest = buf[pos:]
        idx = np.flatnonzero(rest == 10)
        if idx.size == 0:
            return rest.tobytes().rstrip(b"\r"), buf.shape[0]
        nl = int(idx[0])
        return rest[:nl].tobytes().rstrip(b"\r"), pos + nl + 1
    return raw[:nl].rstrip(b"\r"), pos + nl + 1


def _quote(text: bytes) -> str:
    s = text.decode("utf-8", errors="replace")
    return repr(s if len(s) <= 200 else s[:200] + "...")


def read_lackey(
    source: Source,
    acct: Accounting,
    skip_bad: bool = False,
    batch_rows: int = 1 << 20,
    block_bytes: int = BLOCK_BYTES,
) -> Iterator[dict[str, np.ndarray]]:
    """Parse a lackey text stream into batches of ``{"kind", "gva", "size"}`` numpy arrays.

    Args:
        source: the opened input (see :class:`~memmodel.trace.source.Source`).
        acct: accounting to fill (lines, records by kind, non-records, skips, footer, warnings).
        skip_bad: count lines that are not lackey lines as ``skipped["bad_line"]`` instead of raising.
        batch_rows: records per yielded batch (the last batch may be shorter).
        block_bytes: text block size read at a time (bytes).

    Yields:
        Dicts of equal-length arrays: ``kind`` (uint8 codes I=0,L=1,S=2,M=3), ``gva`` (uint64, bytes),
        ``size`` (uint16, bytes), in file order.

    Raises:
        TraceError: on a bad line (unless ``skip_bad``), naming file, line number, text, expectation.
    """
    name = source.name
    kinds = np.empty(batch_rows, np.uint8)
    gvas = np.empty(batch_rows, np.uint64)
    sizes = np.empty(batch_rows, np.uint16)
    counts = np.zeros(_N_COUNTS, np.int64)
    msgpos = np.empty(_MSG_CAP, np.int64)
    nout = 0
    line_no = 0  # lines fully consumed so far
    quoted = 0
    footer_sum: int | None = None
    footers = 0

    for block in source.blocks(block_bytes):
        buf = np.frombuffer(block, np.uint8)
        end = buf.shape[0]
        last_unterminated = end > 0 and buf[end - 1] != 10  # only the final block can lack a newline
        pos = 0
        while pos < end:
            pos, nout, nmsg, lines, status = _scan(buf, pos, end, kinds, gvas, sizes, nout, counts, msgpos, 0)
            line_no += lines
            for m in range(nmsg):
                text, _ = _line_text(buf, int(msgpos[m]))
                g = _GUEST_INSTRS.match(text)
                if g:
                    footer_sum = (footer_sum or 0) + int(g.group(1).replace(b",", b""))
                    footers += 1
            if status == _ST_BAD:
                text, after = _line_text(buf, pos)
                if last_unterminated and after >= end:
                    acct.skip("truncated_last_line")
                    acct.warnings.append(
                        f"{name}:{line_no + 1}: last line has no newline and is not a lackey line "
                        f"(truncated trace?): {_quote(text)} skipped"
                    )
                elif skip_bad:
                    acct.skip("bad_line")
                    if quoted < MAX_QUOTED_SKIPS:
                        acct.warnings.append(f"{name}:{line_no + 1}: skipped {_quote(text)}")
                    quoted += 1
                else:
                    raise TraceError(f"{name}:{line_no + 1}: {_quote(text)}: {diagnose(text)}")
                line_no += 1
                pos = after
            if nout == batch_rows:
                yield {"kind": kinds, "gva": gvas, "size": sizes}
                kinds = np.empty(batch_rows, np.uint8)
                gvas = np.empty(batch_rows, np.uint64)
                sizes = np.empty(batch_rows, np.uint16)
                nout = 0
        if last_unterminated and not (acct.skipped.get("truncated_last_line")):
            tail = bytes(block)
            tail = tail[tail.rfind(b"\n") + 1 :]
            if tail.strip():
                acct.warnings.append(
                    f"{name}:{line_no}: last line has no newline (kept, but it may be cut short): {_quote(tail)}"
                )
        del buf
    if nout:
        yield {"kind": kinds[:nout], "gva": gvas[:nout], "size": sizes[:nout]}

    acct.lines += line_no
    for k, letter in enumerate("ILSM"):
        acct.by_kind[letter] += int(counts[_C_KIND0 + k])
    acct.non_record("valgrind_message", int(counts[_C_MSG]))
    acct.non_record("valgrind_debug", int(counts[_C_DBG]))
    acct.non_record("superblock", int(counts[_C_SB]))
    acct.non_record("blank", int(counts[_C_BLANK]))
    acct.note("records_with_extra_column", int(counts[_C_EXTRA]))
    if quoted > MAX_QUOTED_SKIPS:
        acct.warnings.append(f"{name}: {quoted - MAX_QUOTED_SKIPS} more bad lines skipped (not quoted)")
    if footer_sum is not None:
        acct.footer_guest_instrs = (acct.footer_guest_instrs or 0) + footer_sum
        acct.footers += footers
        if footer_sum != int(counts[_C_KIND0]):
            acct.warnings.append(
                f"{name}: footer says {footer_sum:,} guest instrs but {int(counts[_C_KIND0]):,} I records "
                "were read (trace cut short or post-processed?"
                + (
                    f" With {footers} footers (several processes in one log), a forked child's count "
                    "also includes its parent's instructions before the fork.)"
                    if footers > 1
                    else ")"
                )
            )
