"""Readers for Linux ``perf mem`` text: ``perf mem report -D`` (raw samples) and ``perf script``.

Both keep only samples that are a load or a store with a data address; the kind and the TLB
outcome are decoded from the **hex** ``data_src`` value (the printed text changed between perf
versions), following ``union perf_mem_data_src`` (trace-formats.md section 3).

Kind, from ``mem_op`` (bits 0-4): LOAD (0x2) -> ``L``; STORE (0x4) -> ``S``; **both bits set ->
``M``** (a load and a store of the same bytes, as lackey's modify; no producer seen, but the
record then really is both); neither (N/A, PFETCH, EXEC, 0: AMD IBS tags many non-memory
micro-ops) -> skipped as ``not_load_or_store``. A data address of 0 -> skipped as
``no_data_address``. ``size`` is 1 (perf does not report the access size; see the schema).

``tlb`` column, from ``mem_dtlb`` (bits 26-32: NA 0x1, HIT 0x2, MISS 0x4, L1 0x8, L2 0x10,
WK 0x20, OS 0x40), with the vendor meanings of section 3:

=================================  ===============================  ==========================
bits                                who prints it                    code (schema ``TLB_*``)
=================================  ===============================  ==========================
OS                                  (ABI only)                       ``TLB_FAULT``
HIT|L1 (no L2, no WK)               AMD IBS "L1 hit"                 ``TLB_L1_HIT``
HIT|L2 (no L1, no WK)               AMD IBS "L2 hit" (L1 TLB miss)   ``TLB_L2_HIT``
HIT|L1|L2                           Intel PEBS "L1 or L2 hit"        ``TLB_HIT`` (level unknown:
                                                                     hit in DTLB *or* STLB)
HIT|WK                              Arm SPE "Walker hit"             ``TLB_HIT`` (a TLB access
                                                                     that did NOT miss: no walk)
MISS|L2 or MISS|WK                  Intel/AMD "L2 miss", SPE          ``TLB_MISS`` (page walk)
                                    "Walker miss"
MISS|L1 only, NA, 0, anything else  --                               ``TLB_NA``
=================================  ===============================  ==========================

``perf mem report -D`` (``perf-mem-raw``): columns ``PID TID IP ADDR [PHYS ADDR] [DATA PAGE SIZE]
LOCAL_WEIGHT DSRC SYMBOL``, taken from the ``# PID, TID, IP, ADDR, ...`` header (or, without a
header, from the first data line: a ``0x`` token after ADDR is PHYS ADDR, a ``4K``/``2M``/``N/A``
token is DATA PAGE SIZE). The separator is whatever follows the PID (``-x SEP``) or blanks.
Without ``-x`` perf prints the FIRST data line with ADDR as ``0x016<hex>`` (format typo): on that
line only, a leading ``0x016`` is removed. Stored columns: pid, tid, ip, weight, data_src, tlb
(+ phys_addr, data_page_size in bytes, 0 = N/A).

``perf script`` (``perf-script``): the data address is the hex field printed right after the
``event:`` field (so the default field list, which includes ``event``, is needed: without it a
lone hex token cannot be told from the period and the sample counts as ``no_data_address``);
``data_src`` is the hex token before `` |OP ``. Start fields (comm, which may contain blanks,
``tid`` or ``pid/tid``, ``[cpu]``, ``secs.frac:`` time) and ``period`` are read when present;
the set of columns is fixed by the first sample line, and a later sample line lacking one of
them is a bad line. Trailing fields (weight, ins_lat, retire_lat, ip, phys_addr, page size) are
not stored: their order depends on ``-F`` and cannot be told apart reliably. A sample line
without `` |OP `` is skipped as ``no_data_src``. ``#`` lines are ``comment``, empty lines
``blank``.

Bad lines (issue 11): a field that cannot be what the header says it is makes the line bad (a
:class:`~memmodel.errors.TraceError` naming file, line, text and what was expected; with
``skip_bad`` a skip counted as ``bad_line``), never a different record:

* every number must fit its store column: PID and TID 32 bits; IP, ADDR, PHYS ADDR, DSRC, WEIGHT,
  period, time (ns) and the page size in bytes 64 bits (``99E`` does not);
* a ``-D`` line must end with its ``DSO:SYMBOL`` field (perf always prints it, ``???:???`` when
  unknown), so a line cut inside DSRC (``0x1026`` of ``0x10268100142`` would decode as a modify)
  is bad, not a record;
* in a ``perf script`` stream whose samples carry ``|OP``, a sample line that ends after its
  ``event:`` field or after bare hex numbers was cut before its ``DATA_SRC |OP`` field: bad (a
  line with more text, e.g. a hybrid CPU's event without data_src, stays ``no_data_src``);
* LF, CRLF and a lone CR end a line (as in the lackey reader); a last line without a line end
  that is not a complete sample line is skipped as ``truncated_last_line`` with a warning (a killed
  writer); one that parses is kept with a warning that it may be cut short.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import numpy as np

from memmodel.errors import TraceError, shorten
from memmodel.trace.accounting import MAX_QUOTED_SKIPS, Accounting
from memmodel.trace.schema import (
    FIELD_BY_NAME,
    KIND_L,
    KIND_M,
    KIND_S,
    TLB_FAULT,
    TLB_HIT,
    TLB_L1_HIT,
    TLB_L2_HIT,
    TLB_MISS,
    TLB_NA,
)
from memmodel.trace.source import Source

READER_NAME = "perf"
READER_VERSION = "1"

_NA, _HIT, _MISS, _L1, _L2, _WK, _OS = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40


def kind_of(data_src: int) -> int | None:
    """The record kind code of a sample from ``mem_op``; ``None`` if neither LOAD nor STORE."""
    op = data_src & 0x1F
    load, store = bool(op & 0x2), bool(op & 0x4)
    if load and store:
        return KIND_M
    if load:
        return KIND_L
    if store:
        return KIND_S
    return None


def tlb_of(data_src: int) -> int:
    """The ``TLB_*`` code of a sample from ``mem_dtlb`` (mapping table in the module doc)."""
    d = (data_src >> 26) & 0x7F
    if d & _OS:
        return TLB_FAULT
    if d & _HIT and not d & _MISS:
        if d & _WK or (d & _L1 and d & _L2):
            return TLB_HIT
        if d & _L1:
            return TLB_L1_HIT
        if d & _L2:
            return TLB_L2_HIT
        return TLB_HIT
    if d & _MISS and not d & _HIT and (d & _L2 or d & _WK):
        return TLB_MISS
    return TLB_NA


class _Bad(Exception):
    """A line that is not what the reader expects (message = what was expected)."""


# ---------------------------------------------------------------------------------------------
# numbers: every value must fit its store column (schema.py), else the line is bad

_U32, _U64 = 32, 64
_DEC = re.compile(r"[0-9]+")
_HEX = re.compile(r"[0-9a-fA-F]+")


def _tok(tok: str) -> str:
    return repr(shorten(tok, 60))


def _fits(value: int, bits: int, what: str, tok: str) -> int:
    if value >= 1 << bits:
        raise _Bad(f"{what} {_tok(tok)} does not fit in {bits} bits (the largest is {(1 << bits) - 1:#x})")
    return value


def _dec(tok: str, what: str, bits: int) -> int:
    """A decimal field that must fit an unsigned ``bits``-bit column."""
    if not _DEC.fullmatch(tok):
        raise _Bad(f"{what} {_tok(tok)} is not a decimal number")
    if len(tok.lstrip("0")) > 20:  # more digits than 2^64 has: too large (and int() would refuse 4300+)
        raise _Bad(f"{what} {_tok(tok)} does not fit in {bits} bits")
    return _fits(int(tok), bits, what, tok)


def _hex(digits: str, what: str, tok: str, bits: int = _U64) -> int:
    if not _HEX.fullmatch(digits):
        raise _Bad(f"{what} {_tok(tok)} is not a hex number")
    if len(digits.lstrip("0")) > bits // 4:
        raise _Bad(f"{what} {_tok(tok)} does not fit in {bits} bits")
    return int(digits, 16)


# ---------------------------------------------------------------------------------------------
# perf mem report -D

_RAW_START = re.compile(r"^\s*[0-9]+(\s+|[^\s0-9])[0-9]+\1?\s*0x[0-9a-fA-F]+")
_PAGE = re.compile(r"^(?:N/A|[0-9]+[BKMGTPE]?)$")
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50, "E": 1 << 60}
_RAW_EXPECTED = (
    "expected a `perf mem report -D` sample line 'PID TID 0xIP 0xADDR [0xPHYS] [PAGE SIZE] WEIGHT 0xDSRC "
    "DSO:SYMBOL' (blank- or -x separated), a '#' comment or a blank line"
)


def looks_like_raw(line: bytes) -> bool:
    """Whether a line looks like a ``perf mem report -D`` sample line (for format detection)."""
    return bool(_RAW_START.match(line.decode("utf-8", "replace")))


def _page_bytes(tok: str) -> int:
    if tok == "N/A":
        return 0
    m = re.fullmatch(r"([0-9]{1,20})([BKMGTPE]?)", tok)
    if not m:
        raise _Bad(f"page size {_tok(tok)} is not N/A or a number with a unit (4K, 2M, 1G)")
    return _fits(int(m.group(1)) * _UNITS[m.group(2)], _U64, "page size", tok)


def _hex0x(tok: str, what: str) -> int:
    if not tok.startswith(("0x", "0X")):
        raise _Bad(f"{what} {_tok(tok)} is not a 0x-prefixed hex number")
    return _hex(tok[2:], what, tok)


class _RawParser:
    def __init__(self) -> None:
        self.has_phys: bool | None = None
        self.has_page: bool | None = None
        self.seen_data = False

    def header(self, text: str) -> None:
        names = [n.strip().upper() for n in text.lstrip().lstrip("#").split(",")]
        self.has_phys = "PHYS ADDR" in names
        self.has_page = "DATA PAGE SIZE" in names

    def columns(self) -> tuple[str, ...]:
        cols = ["kind", "gva", "size", "pid", "tid", "ip", "weight", "data_src", "tlb"]
        if self.has_phys:
            cols.append("phys_addr")
        if self.has_page:
            cols.append("data_page_size")
        return tuple(cols)

    def infer(self, text: str) -> None:
        toks = self._tokens(text)
        if len(toks) < 6:
            raise _Bad("too few fields")
        self.has_phys = toks[4].startswith("0x")
        i = 5 if self.has_phys else 4
        self.has_page = bool(_PAGE.match(toks[i])) and not toks[i].isdigit()

    @staticmethod
    def _tokens(text: str) -> list[str]:
        s = text.strip()
        m = re.match(r"[0-9]+([^0-9])", s)
        if not m:
            raise _Bad("the line does not start with a PID")
        sep = m.group(1)
        return s.split() if sep.isspace() else s.split(sep)

    def parse(self, text: str) -> dict[str, int]:
        first = not self.seen_data
        self.seen_data = True
        s = text.strip()
        m = re.match(r"[0-9]+([^0-9])", s)
        if not m:
            raise _Bad("the line does not start with a PID")
        spaced = m.group(1).isspace()
        toks = self._tokens(text)
        # perf prints 'DSO:SYMBOL' last on every line ('???:???' when unknown): a line without it was cut
        need = 7 + bool(self.has_phys) + bool(self.has_page)
        if len(toks) < need:
            raise _Bad(f"{len(toks)} fields, need {need} (the line ends before its DSO:SYMBOL field: cut short?)")
        pid = _dec(toks[0], "PID", _U32)
        tid = _dec(toks[1], "TID", _U32)
        ip = _hex0x(toks[2], "IP")
        addr_tok = toks[3]
        if first and spaced and addr_tok.startswith("0x016"):
            addr_tok = "0x" + addr_tok[5:]  # perf's '0x016%PRIx64' typo on the first padded line
        rec = {"pid": pid, "tid": tid, "ip": ip, "gva": _hex0x(addr_tok, "ADDR")}
        i = 4
        if self.has_phys:
            rec["phys_addr"] = _hex0x(toks[i], "PHYS ADDR")
            i += 1
        if self.has_page:
            rec["data_page_size"] = _page_bytes(toks[i])
            i += 1
        rec["weight"] = _dec(toks[i], "LOCAL WEIGHT", _U64)
        rec["data_src"] = _hex0x(toks[i + 1], "DSRC")
        if ":" not in " ".join(toks[i + 2 :]):
            raise _Bad(f"SYMBOL {_tok(' '.join(toks[i + 2:]))} is not 'DSO:SYMBOL' (cut short?)")
        return rec


# ---------------------------------------------------------------------------------------------
# perf script

_DSRC = re.compile(r"(?:^|\s)([0-9a-fA-F]{1,16}) \|OP ")
_OP = re.compile(r"(?:^|(?<=\s))(\S*) \|OP ")
_TIME = re.compile(r"(?:^|\s)([0-9]+)\.([0-9]+):(?=\s|$)")
_BEFORE_TIME = re.compile(
    r"^(?P<comm>.*?)\s*(?:(?:(?P<pid>[0-9]+)/)?(?P<tid>[0-9]+))?\s*(?:\[(?P<cpu>[0-9]+)\])?\s*$"
)
_AFTER_TIME = re.compile(r"^\s*(?:(?P<period>[0-9]+)\s+)?(?:(?P<event>\S+?):\s+(?P<addr>[0-9a-fA-F]+)?)?\s*$")
_SCRIPT_EXPECTED = (
    "expected a `perf script` sample line ('comm tid [cpu] secs.frac: period event: ADDR DATA_SRC |OP ...'), "
    "a '#' comment or a blank line"
)


def looks_like_script(line: bytes) -> bool:
    """Whether a line looks like a ``perf script`` sample with data_src (for format detection)."""
    return bool(_DSRC.search(line.decode("utf-8", "replace")))


class _ScriptParser:
    def __init__(self) -> None:
        self.cols: tuple[str, ...] | None = None
        # whether this stream's samples carry 'DATA_SRC |OP' (then a sample line that ends before it was
        # cut short, not a sample without data_src)
        self.has_dsrc = False

    def fields(self, text: str) -> dict[str, int] | str:
        """The sample's fields, or a skip reason string."""
        m = _OP.search(text)
        if not m:
            t = _TIME.search(text)
            if not t:
                raise _Bad("no 'DATA_SRC |OP' field and no 'secs.frac:' time")
            if self.has_dsrc:
                self._check_not_cut(text[t.end() :])
            return "no_data_src"
        dsrc_tok = m.group(1)
        if not dsrc_tok:
            raise _Bad("no DATA_SRC hex number before '|OP'")
        rec: dict[str, int] = {"data_src": _hex(dsrc_tok, "DATA_SRC", dsrc_tok)}
        prefix = text[: m.start(1)]
        t = _TIME.search(prefix)
        after = prefix
        if t:
            secs = _dec(t.group(1), "time (seconds)", _U64)
            ns = secs * 1_000_000_000 + int(t.group(2).ljust(9, "0")[:9])
            rec["time"] = _fits(ns, _U64, "time (ns)", f"{t.group(1)}.{t.group(2)}")
            b = _BEFORE_TIME.match(prefix[: t.start(1)])
            if b and b.group("tid"):
                rec["tid"] = _dec(b.group("tid"), "TID", _U32)
                if b.group("pid"):
                    rec["pid"] = _dec(b.group("pid"), "PID", _U32)
            after = prefix[t.end() :]
        a = _AFTER_TIME.match(after)
        if not a:
            raise _Bad(f"cannot read the fields {_tok(after.strip())} between the time and DATA_SRC")
        if a.group("period"):
            rec["period"] = _dec(a.group("period"), "period", _U64)
        if a.group("addr") and a.group("event"):
            rec["gva"] = _hex(a.group("addr"), "ADDR", a.group("addr"))
        return rec

    @staticmethod
    def _check_not_cut(after: str) -> None:
        """A sample line without '|OP' in a stream whose samples have it: bad if it ends too early.

        perf prints something after every field it prints (``|OP ...`` after DATA_SRC, the symbol after
        the IP): a line that ends right after ``event:`` or after bare hex numbers was cut short (the
        last hex number may be a cut DATA_SRC). A line with more text (e.g. a hybrid CPU's event that
        does not sample data_src) is a sample without data_src.
        """
        toks = after.split()
        if toks and _DEC.fullmatch(toks[0]):
            toks = toks[1:]  # period
        if not toks or not toks[0].endswith(":"):
            raise _Bad("the line ends before its 'event:' field (cut short?)")
        if all(_HEX.fullmatch(x) for x in toks[1:]):
            raise _Bad("the line ends before its 'DATA_SRC |OP' field (cut short?)")


# ---------------------------------------------------------------------------------------------


def _quote(text: str) -> str:
    return repr(shorten(text))


#: A line end: LF, CRLF or a lone CR (as the lackey reader and :meth:`Source.blocks`).
_EOL = re.compile(r"\r\n|\r|\n")


def _lines(src: Source) -> Iterator[tuple[str, bool]]:
    """(line without its end, whether it had a line end); only the very last line can lack one."""
    for block in src.blocks(4 << 20):
        parts = _EOL.split(bytes(block).decode("utf-8", errors="replace"))
        last = parts.pop()  # "" when the block ends with a line end
        for p in parts:
            yield p, True
        if last:
            yield last, False


def _peek_columns(src: Source, fmt: str) -> tuple[tuple[str, ...], Any]:
    """Determine the stored columns from the first lines (header or first sample), without consuming."""
    head = src.read(1 << 20)
    src.unread(head)
    lines = _EOL.split(head.decode("utf-8", "replace"))
    if fmt == "perf-mem-raw":
        rp = _RawParser()
        for ln in lines:
            s = ln.strip()
            if s.startswith("# PID, TID, IP, ADDR"):
                rp.header(s)
                break
            if not s or s.startswith("#"):
                continue
            try:
                rp.infer(ln)
                break
            except _Bad:
                continue
        if rp.has_phys is None:
            rp.has_phys = rp.has_page = False
        return rp.columns(), rp
    sp = _ScriptParser()
    cols = ["kind", "gva", "size"]
    for ln in lines:
        s = ln.strip()
        if not s or s.startswith("#"):
            continue
        try:
            r = sp.fields(ln)
        except _Bad:
            continue
        if isinstance(r, dict) and "gva" in r:
            cols += [c for c in ("pid", "tid", "time", "period") if c in r]
            break
    sp.has_dsrc = any(_DSRC.search(ln) for ln in lines)
    cols += ["data_src", "tlb"]
    sp.cols = tuple(cols)
    return sp.cols, sp


def read_perf(
    src: Source, fmt: str, acct: Accounting, skip_bad: bool = False, batch_rows: int = 1 << 20
) -> tuple[Iterator[dict[str, np.ndarray]], tuple[str, ...]]:
    """Open a perf text stream: returns (batches, columns) -- see the module doc for the rules.

    Args:
        src: the opened input.
        fmt: ``"perf-mem-raw"`` or ``"perf-script"``.
        acct: accounting to fill.
        skip_bad: count bad lines as ``skipped["bad_line"]`` instead of raising ``TraceError``.
        batch_rows: records per yielded batch.
    """
    cols, parser = _peek_columns(src, fmt)
    return _iter_perf(src, fmt, parser, cols, acct, skip_bad, batch_rows), cols


def _iter_perf(
    src: Source,
    fmt: str,
    parser: Any,
    cols: tuple[str, ...],
    acct: Accounting,
    skip_bad: bool,
    batch_rows: int,
) -> Iterator[dict[str, np.ndarray]]:
    name = src.name
    extra = [c for c in cols if c not in ("kind", "gva", "size", "tlb")]
    buf: dict[str, list[int]] = {c: [] for c in cols}
    quoted = 0
    line_no = 0
    expected = _RAW_EXPECTED if fmt == "perf-mem-raw" else _SCRIPT_EXPECTED

    def flush() -> dict[str, np.ndarray]:
        out = {c: np.asarray(buf[c], dtype=FIELD_BY_NAME[c].type.to_pandas_dtype()) for c in cols}
        for c in cols:
            buf[c] = []
        return out

    for text, terminated in _lines(src):
        line_no += 1
        acct.lines += 1
        s = text.strip()
        if not s:
            acct.non_record("blank")
            continue
        if s.startswith("#"):
            acct.non_record("comment")
            if fmt == "perf-mem-raw" and s.startswith("# PID, TID, IP, ADDR"):
                parser.header(s)
                if parser.columns() != cols:
                    raise TraceError(f"{name}:{line_no}: a second header with different columns: {_quote(text)}")
            continue
        try:
            if fmt == "perf-mem-raw":
                rec: dict[str, int] | str = parser.parse(text)
            else:
                rec = parser.fields(text)
                if isinstance(rec, dict) and "gva" in rec:
                    missing = [c for c in extra if c not in rec]
                    if missing:
                        raise _Bad(f"fields {missing} present on the first sample line are missing here")
        except _Bad as exc:
            if not terminated:  # the writer was killed mid-line: say so, keep everything before it
                acct.skip("truncated_last_line")
                acct.warnings.append(
                    f"{name}:{line_no}: last line has no line end and is not a complete sample line "
                    f"(truncated trace?): {_quote(text)} skipped ({exc})"
                )
                continue
            if skip_bad:
                acct.skip("bad_line")
                if quoted < MAX_QUOTED_SKIPS:
                    acct.warnings.append(f"{name}:{line_no}: skipped {_quote(text)} ({exc})")
                quoted += 1
                continue
            raise TraceError(f"{name}:{line_no}: {_quote(text)}: {exc}; {expected}") from None
        if not terminated:
            acct.warnings.append(
                f"{name}:{line_no}: last line has no line end (kept, but it may be cut short): {_quote(text)}"
            )
        if isinstance(rec, str):
            acct.skip(rec)
            continue
        if not rec.get("gva"):
            acct.skip("no_data_address")
            continue
        kind = kind_of(rec["data_src"])
        if kind is None:
            acct.skip("not_load_or_store")
            continue
        acct.by_kind["ILSM"[kind]] += 1
        buf["kind"].append(kind)
        buf["gva"].append(rec["gva"])
        buf["size"].append(1)
        buf["tlb"].append(tlb_of(rec["data_src"]))
        for c in extra:
            buf[c].append(rec[c])
        if len(buf["kind"]) >= batch_rows:
            yield flush()
    if quoted > MAX_QUOTED_SKIPS:
        acct.warnings.append(f"{name}: {quoted - MAX_QUOTED_SKIPS} more bad lines skipped (not quoted)")
    if buf["kind"]:
        yield flush()
