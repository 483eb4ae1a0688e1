"""Fuzzing the perf readers (issue 11): mutated real perf lines either reconcile exactly or fail cleanly.

Inputs are the real perf outputs of ``tests/data/perf_*.txt`` with a few mutations each (cut a line,
drop or insert bytes, swap a token for an out-of-range number, drop the last newline, add CRs or
invalid UTF-8). Every ingest must end in one of two ways:

* a summary whose accounting reconciles exactly: ``lines == records + non-records + skipped`` and
  ``lines`` equals the number of lines of the input (LF, CRLF or CR end a line; a last line without
  an end counts);
* a :class:`TraceError` naming the file and the line (``name:N: ...``), never another exception.
"""

from __future__ import annotations

import re
import tempfile
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memmodel.errors import TraceError
from memmodel.trace.store import ingest

DATA = Path(__file__).resolve().parent.parent / "data"
SOURCES = {p.name: p.read_bytes() for p in sorted(DATA.glob("perf_*.txt"))}
FORMAT = {name: "perf-script" if name.startswith("perf_script") else "perf-mem-raw" for name in SOURCES}
NOISE = [b"0", b"f", b"9", b" ", b",", b"|", b":", b"/", b"\r", b"\t", b"0x", b"\xff", b"\xe9", b"-",
         b"18446744073709551616", b"ffffffffffffffffff", b"4294967296", b"99E", b"|OP ", b"#", b"\n"]
OUTCOMES: Counter[str] = Counter()


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(SOURCES)))
    data = bytearray(SOURCES[name])
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["cut_line", "delete", "insert", "replace_token", "truncate", "dup_line"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "cut_line":  # a line cut short at pos (the rest of that line lost)
            end = data.find(b"\n", pos)
            if end >= 0:
                del data[pos:end]
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 8))]
        elif op == "insert":
            data[pos:pos] = draw(st.sampled_from(NOISE))
        elif op == "replace_token":
            m = re.compile(rb"[0-9a-fA-Fx]+").search(bytes(data), pos)
            if m:
                data[m.start() : m.end()] = draw(st.sampled_from(NOISE))
        elif op == "truncate":  # a killed writer: the file ends mid-line
            del data[pos:]
        else:
            start = data.rfind(b"\n", 0, pos) + 1
            end = data.find(b"\n", pos)
            if end >= 0:
                data[end + 1 : end + 1] = data[start : end + 1]
    return name, bytes(data)


def _lines_in(data: bytes) -> int:
    """Lines of the input: LF, CRLF and a lone CR end a line; a last line without an end counts."""
    ends = re.findall(rb"\r\n|\r|\n", data)
    return len(ends) + (1 if data and not data.endswith((b"\n", b"\r")) else 0)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=mutated(), skip_bad=st.booleans())
def test_mutated_perf_lines_reconcile_exactly_or_fail_cleanly_with_file_and_line(
    case: tuple[str, bytes], skip_bad: bool
) -> None:
    name, data = case
    with tempfile.TemporaryDirectory() as d:
        trace = Path(d) / name
        trace.write_bytes(data)
        try:
            s = ingest([trace], Path(d) / "out.parquet", format=FORMAT[name], skip_bad=skip_bad)
        except TraceError as exc:
            msg = str(exc)
            assert re.match(rf"{re.escape(str(trace))}:\d+: ", msg), msg
            assert "accounting mismatch" not in msg
            line = int(msg[len(str(trace)) + 1 :].split(":", 1)[0])
            assert 1 <= line <= _lines_in(data)
            OUTCOMES["error naming file and line"] += 1
            return
        assert s.lines == s.records + sum(s.non_records.values()) + sum(s.skipped.values())
        assert s.lines == _lines_in(data)
        if not skip_bad:
            assert "bad_line" not in s.skipped
        OUTCOMES["reconciled"] += 1
