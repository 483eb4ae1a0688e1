"""Reader for Valgrind lackey traces (``valgrind --tool=lackey --trace-mem=yes [--trace-syscalls=yes]``).

Grammar accepted (trace-formats.md section 1.2), one line at a time, after stripping leading
blanks (spaces, tabs). **Line ends**: LF, CRLF and a lone CR all end a line (issue 11: a file saved
with CR-only line ends used to read as one message line and 0 records).

* record: kind letter ``I``/``L``/``S``/``M``, one or more spaces, 1-16 hex digits (either case,
  no ``0x``; lackey pads to at least 8 but hand-made traces do not), ``,``, a decimal size
  1..65535 (bytes). So lackey's two-space ``I  addr,size``, its one-space `` L addr,size``, the
  course material's one-space ``I 0400d7d4,8`` and 32-bit (8-digit) traces all parse.
* 3-column course variant (RUC cachelab2, `` S 7ff000398,8 17``): **decision** -- the record is
  kept and the third column (a decimal, meaning not defined by lackey) is ignored; such records
  are counted in ``notes["records_with_extra_column"]`` so nothing is silent.
* syscall lines (``--trace-syscalls=yes``: ``SYSCALL[pid,tid](nr) ...`` and the ``-->`` /
  ``[sync] -->`` continuation lines) are read by :mod:`memmodel.trace.syscalls` (docs/model.md section 1):
  the line where a munmap, an unmapping madvise, a brk shrink or an mremap move/shrink completes
  with ``Success`` is one ``U`` record (kind 4, ``size`` = the unmap length); every other syscall
  line is a known non-record line (``syscall``). Lackey itself prints no ``U`` lines: `` U 4000,8``
  is an unknown kind, an error like any other.
* known non-record lines: ``==PID==`` messages (``valgrind_message``, including the bare
  ``==PID== `` with only a trailing space, the header and the footer), ``--PID--`` debug
  messages (``valgrind_debug``), ``SB addr`` superblock lines (``superblock``), blank lines
  (``blank``).
* anything else (e.g. the client's stdout interleaved by ``--log-fd=1``) is NOT a record: a
  :class:`~memmodel.errors.TraceError` naming file, line number, text and what was expected,
  or with ``skip_bad`` a skip counted as ``bad_line``.
* a final line without a line end that does not parse is skipped as ``truncated_last_line`` with a
  warning (a killed process); one that parses is kept, with a warning that it may be cut short.

The footer's ``guest instrs:`` (thousands separators) is summed over all footers (one per
process when a forked child logs to the same file) and compared with the ``I`` records.

Speed: a byte scanner in C (``memmodel/trace/_lackey.c``, ``_scan`` here; it releases the GIL)
parses line-aligned blocks straight into preallocated ``kind``/``gva``/``size`` arrays; it stops at
any line it does not know, and Python handles that line (messages' footer text, syscall lines, bad
lines), so the fast path for lackey's own ``I``/``L``/``S``/``M`` lines is the same with or without
syscall tracing. ``_scan(buf, pos, end, kinds, gvas, sizes, nout, counts, msgpos, nmsg)`` returns
``(pos, nout, nmsg, lines, status)``: ``pos`` is where parsing stopped (the start of the line Python
must handle for ``_ST_BAD``), ``lines`` how many lines it consumed; ``counts`` (slots ``_C_*``) and
``msgpos`` (start offsets of ``==PID==`` lines) are filled in place. Its rules, line by line, are in
the C file; ``tests/trace/test_lackey_c.py`` holds them as a literal Python transcription and checks
the two agree.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np

from memmodel.errors import TraceError
from memmodel.trace._lackey import scan as _scan
from memmodel.trace.accounting import MAX_QUOTED_SKIPS, Accounting
from memmodel.trace.schema import KIND_U
from memmodel.trace.source import BLOCK_BYTES, Source
from memmodel.trace.syscalls import SyscallLineError, SyscallTracker

READER_NAME = "lackey"
READER_VERSION = "2"  # 2: syscall lines -> U records, uint64 size, CR / LF / CRLF line ends

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


_GUEST_INSTRS = re.compile(rb"^\s*==\d+==\s+guest instrs:\s+([\d,]+)\s*$")
_LACKEY_LINE = re.compile(rb"^\s*[ILSM] +[0-9a-fA-F]{1,16},[0-9]{1,5}( +[0-9]+)?\r?$")


def diagnose(text: bytes) -> str:
    """What is wrong with a line that almost looks like a lackey record (for the error message)."""
    t = text.strip()
    if re.match(rb"^U +[0-9a-fA-F]", t):
        return (
            "lackey has no 'U' lines (unmaps come from the syscall lines of a trace recorded with "
            "--trace-syscalls=yes); " + _EXPECTED
        )
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
    """The line starting at ``pos`` (without its end) and the offset after its end (LF, CRLF or CR)."""
    end = buf.shape[0]
    raw = buf[pos:].tobytes() if end - pos < 4096 else buf[pos : pos + 4096].tobytes()
    ends = [i for i in (raw.find(b"\n"), raw.find(b"\r")) if i >= 0]
    if ends:
        nl = pos + min(ends)
    else:
        # the line may be longer than 4096 bytes
        idx = np.flatnonzero((buf[pos:] == 10) | (buf[pos:] == 13))
        if idx.size == 0:
            return buf[pos:].tobytes(), end
        nl = pos + int(idx[0])
    after = nl + 1
    if buf[nl] == 13 and after < end and buf[after] == 10:
        after += 1
    return buf[pos:nl].tobytes(), after


def _quote(text: bytes) -> str:
    s = text.decode("utf-8", errors="replace")
    return repr(s if len(s) <= 200 else s[:200] + "...")


def read_lackey(
    source: Source,
    acct: Accounting,
    skip_bad: bool = False,
    batch_rows: int = 1 << 20,
    block_bytes: int = BLOCK_BYTES,
    spare: list[tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    """Parse a lackey text stream into batches of ``{"kind", "gva", "size"}`` numpy arrays.

    Args:
        source: the opened input (see :class:`~memmodel.trace.source.Source`).
        acct: accounting to fill (lines, records by kind, non-records, skips, footer, warnings).
        skip_bad: count lines that are not lackey lines as ``skipped["bad_line"]`` instead of raising.
        batch_rows: records per yielded batch (the last batch may be shorter).
        block_bytes: text block size read at a time (bytes).
        spare: ``(kind, gva, size)`` arrays of earlier full batches that the caller no longer uses;
            the reader refills them instead of allocating new ones. Why: fresh arrays are fresh pages,
            and faulting them in (zeroed by the kernel) took 65 ms of the parser's CPU on the 493.6 MB
            benchmark text (35 batches of 17 MiB); ``ingest`` hands each batch back once it is written.

    Yields:
        Dicts of equal-length arrays: ``kind`` (uint8 codes I=0, L=1, S=2, M=3, U=4), ``gva`` (uint64,
        bytes), ``size`` (uint64, bytes; a ``U``'s unmap length), in file order. ``U`` records come from
        syscall lines (see :mod:`memmodel.trace.syscalls`), placed where the call completes.

    Raises:
        TraceError: on a bad line (unless ``skip_bad``), naming file, line number, text, expectation.
    """
    name = source.name

    def arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if spare:
            return spare.pop()
        return np.empty(batch_rows, np.uint8), np.empty(batch_rows, np.uint64), np.empty(batch_rows, np.uint64)

    kinds, gvas, sizes = arrays()
    counts = np.zeros(_N_COUNTS, np.int64)
    msgpos = np.empty(_MSG_CAP, np.int64)
    nout = 0
    line_no = 0  # lines fully consumed so far
    quoted = 0
    footer_sum: int | None = None
    footers = 0
    calls = SyscallTracker()

    for block in source.blocks(block_bytes):
        buf = np.frombuffer(block, np.uint8)
        end = buf.shape[0]
        # only the final block can lack a line end
        last_unterminated = end > 0 and buf[end - 1] != 10 and buf[end - 1] != 13
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
                # syscall lines are rare: the scanner leaves them to Python (the fast path stays as it was)
                why = None
                try:
                    is_syscall, unmap = calls.feed(text, line_no + 1)
                except SyscallLineError as exc:
                    is_syscall, unmap, why = False, None, str(exc)
                if is_syscall:
                    if unmap is None:
                        acct.non_record("syscall")
                    else:
                        kinds[nout] = KIND_U
                        gvas[nout] = unmap[0]
                        sizes[nout] = unmap[1]
                        nout += 1
                        acct.unmap(*unmap)
                elif last_unterminated and after >= end:
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
                    raise TraceError(f"{name}:{line_no + 1}: {_quote(text)}: {why or diagnose(text)}")
                line_no += 1
                pos = after
            if nout == batch_rows:
                yield {"kind": kinds, "gva": gvas, "size": sizes}
                kinds, gvas, sizes = arrays()
                nout = 0
        if last_unterminated and not (acct.skipped.get("truncated_last_line")):
            tail = bytes(block)
            tail = tail[max(tail.rfind(b"\n"), tail.rfind(b"\r")) + 1 :]
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
    if calls.unmatched:
        acct.note("unmatched_syscall_completions", calls.unmatched)
        acct.warnings.append(
            f"{name}: {calls.unmatched} syscall completion line(s) matched no open call (trace cut at its "
            "start?); they gave no unmap"
        )
    left = calls.open_calls()
    if left:
        acct.note("uncompleted_syscalls", len(left))
        shown = ", ".join(f"line {ln} ({nm or 'nr ' + str(nr)}, pid {pid})" for pid, _, nr, nm, ln in left[:5])
        acct.warnings.append(
            f"{name}: {len(left)} syscall(s) began but never completed (process killed in a blocking call?), "
            f"so they gave no unmap: {shown}" + (" ..." if len(left) > 5 else "")
        )
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
