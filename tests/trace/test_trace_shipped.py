"""The shipped traces in traces/: exact record counts, computed independently.

Counts from the decompressed text with awk (the command, run in traces/):
    xz -dc NAME.lackey.xz | awk '/^I  /{i++} /^ L /{l++} /^ S /{s++} /^ M /{m++} /^==/{e++} END{print i,l,s,m,e,NR}'
and the footer with: xz -dc NAME.lackey.xz | grep 'guest instrs:'
"""

from __future__ import annotations

from pathlib import Path

import pytest

from memmodel.trace import ingest

TRACES = Path(__file__).resolve().parent.parent.parent / "traces"

EXPECTED = {
    #          I         L       S      M   '==' lines  total lines
    "pchase": (5859455, 952675, 437058, 1492, 24, 7250704),
    "stream": (3410479, 553626, 535861, 1502, 24, 4501492),
    "qsort": (3287357, 860983, 400318, 9483, 24, 4558165),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shipped_trace_exact_record_counts_and_footer(tmp_path, name):
    i, l, s, m, msgs, lines = EXPECTED[name]
    summ = ingest([TRACES / f"{name}.lackey.xz"], tmp_path / "t.parquet")
    assert summ.by_kind == {"I": i, "L": l, "S": s, "M": m}
    assert summ.non_records == {"valgrind_message": msgs} and summ.lines == lines and not summ.skipped
    assert summ.footer_check == {"status": "ok", "footer": i, "I_records": i, "footers": 1}
    assert summ.reconciled and not summ.warnings
