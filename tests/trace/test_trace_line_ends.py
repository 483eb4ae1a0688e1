"""Line ends of lackey traces (issue 11): LF, CRLF and a lone CR all end a line; 0 translations warn.

Before, a file saved with CR-only line ends was read as one ``==1==`` message line: 0 records and
exit code 0. Now every line end style gives the records of the LF file, across blocks of any size.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from memmodel.cli import app
from memmodel.trace import ingest, read_metadata
from memmodel.trace.accounting import Accounting
from memmodel.trace.lackey import read_lackey
from memmodel.trace.source import Source

CONF = Path(__file__).resolve().parent.parent / "data" / "conformance"
TINY = (CONF / "tiny_lifecycle.lackey").read_bytes()  # LF; has syscall lines and a glued message


def read(path: Path, block_bytes: int = 16 << 20):
    src = Source(path)
    acct = Accounting(name=str(path))
    recs = []
    for b in read_lackey(src, acct, block_bytes=block_bytes):
        recs += zip(b["kind"].tolist(), b["gva"].tolist(), b["size"].tolist(), strict=True)
    src.finish()
    acct.check()
    return recs, acct


@pytest.mark.parametrize("eol", [b"\r", b"\r\n"])
def test_cr_only_and_crlf_line_ends_read_exactly_like_lf(write, eol):
    want, lf = read(write("lf.lackey", TINY))
    got, acct = read(write("x.lackey", TINY.replace(b"\n", eol)))
    assert got == want and len(got) == 34
    assert acct.lines == lf.lines == 47 and acct.non_records == lf.non_records and not acct.warnings


@pytest.mark.parametrize("block_bytes", [16, 33, 64, 100, 257])
def test_cr_only_file_in_small_blocks_keeps_every_line(write, block_bytes):
    # blocks are cut after a CR when a block holds no LF: no line is split or merged
    want, _ = read(write("lf.lackey", TINY))
    got, acct = read(write("cr.lackey", TINY.replace(b"\n", b"\r")), block_bytes=block_bytes)
    assert got == want and acct.lines == 47


@pytest.mark.parametrize("block_bytes", [16, 17, 40, 4096])
def test_mixed_line_ends_in_one_file(write, block_bytes):
    text = b"==1== x\r L 1000,4\n S 2000,8\r\n\r L 3000,8\r\rSB 4000\n M 5000,4"
    got, acct = read(write("m.lackey", text), block_bytes=block_bytes)
    assert got == [(1, 0x1000, 4), (2, 0x2000, 8), (1, 0x3000, 8), (3, 0x5000, 4)]
    assert acct.lines == 8 and acct.non_records == {"valgrind_message": 1, "blank": 2, "superblock": 1}


def test_cr_only_trace_ingests_with_records_not_as_one_message_line(tmp_path, write):
    p = write("cr.lackey", b"==1== Lackey, an example Valgrind tool\r==1== \rI  0401ab70,3\r S 1fff000758,8\r")
    s = ingest([p], tmp_path / "t.parquet")
    assert s.records == 2 and s.lines == 4 and s.by_kind["S"] == 1 and not s.warnings


def test_ingest_with_zero_translations_warns_and_the_store_metadata_keeps_the_warning(tmp_path, write):
    p = write("i.lackey", "==1== Lackey, an example Valgrind tool\nI  0401ab70,3\nI  0401ab73,5\n")
    out = tmp_path / "t.parquet"
    s = ingest([p], out)
    assert s.records == 2 and s.by_kind["L"] + s.by_kind["S"] + s.by_kind["M"] == 0
    assert len(s.warnings) == 1 and "0 translations" in s.warnings[0] and str(p) in s.warnings[0]
    md = read_metadata(out)
    assert md["accounting"]["warnings"] == s.warnings
    assert md["inputs"][0]["accounting"]["warnings"] == s.warnings


def test_cli_ingest_prints_the_zero_translations_warning(tmp_path, write):
    p = write("i.lackey", "==1== Lackey, an example Valgrind tool\n==1== \nI  0401ab70,3\n")
    r = CliRunner().invoke(app, ["ingest", str(p), "-o", str(tmp_path / "t.parquet")])
    assert r.exit_code == 0 and "warning" in r.output and "0 translations" in r.output
