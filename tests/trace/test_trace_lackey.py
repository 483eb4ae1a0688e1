"""Lackey reader: one test per grammar rule and trap (trace-formats.md sections 1 and 5)."""

from __future__ import annotations

import gzip
import lzma
from pathlib import Path

import numpy as np
import pytest

from memmodel.errors import TraceError
from memmodel.trace.accounting import Accounting
from memmodel.trace.lackey import read_lackey
from memmodel.trace.source import Source
from memmodel.trace.store import ingest, iter_batches

DATA = Path(__file__).resolve().parent.parent / "data"


def parse(path: Path, skip_bad: bool = False, batch_rows: int = 1 << 20, block_bytes: int = 16 << 20):
    """(kind, gva, size arrays, accounting) of a lackey file; checks the reconciliation invariant."""
    src = Source(path)
    acct = Accounting(name=str(path))
    ks, gs, ss = [], [], []
    for b in read_lackey(src, acct, skip_bad=skip_bad, batch_rows=batch_rows, block_bytes=block_bytes):
        ks.append(b["kind"].copy())
        gs.append(b["gva"].copy())
        ss.append(b["size"].copy())
    src.finish()
    acct.check()
    cat = lambda xs, t: np.concatenate(xs) if xs else np.empty(0, t)  # noqa: E731
    return cat(ks, np.uint8), cat(gs, np.uint64), cat(ss, np.uint64), acct


def ref_parse(text: str) -> list[tuple[int, int, int]]:
    """An independent, obviously-correct Python parse of record lines (for comparisons)."""
    out = []
    for line in text.splitlines():
        s = line.strip()
        if s[:1] in ("I", "L", "S", "M") and not s.startswith("SB"):
            k, rest = s.split(None, 1)
            a, z = rest.split(",")
            out.append(("ILSM".index(k), int(a, 16), int(z.split()[0])))
    return out


def test_lackey_two_space_I_and_one_space_data_records(write):
    p = write("t.lackey", "I  0401ab70,3\n S 1fff000758,8\n L 04a4d040,4\n M 00109139,16\n")
    k, g, s, a = parse(p)
    assert k.tolist() == [0, 2, 1, 3]
    assert g.tolist() == [0x0401AB70, 0x1FFF000758, 0x04A4D040, 0x00109139]
    assert s.tolist() == [3, 8, 4, 16]
    assert k.dtype == np.uint8 and g.dtype == np.uint64 and s.dtype == np.uint64
    assert a.by_kind == {"I": 1, "L": 1, "S": 1, "M": 1, "U": 0} and a.lines == 4


def test_lackey_addresses_of_8_or_more_hex_digits_split_on_comma(write):
    p = write("t.lackey", " S 7ff000398,8\n S 1ffeffff78,8\n L fefe058c,4\n L ffffffffff600000,8\n")
    _, g, _, _ = parse(p)
    assert g.tolist() == [0x7FF000398, 0x1FFEFFFF78, 0xFEFE058C, 0xFFFFFFFFFF600000]


def test_lackey_32bit_cachelab_trace_counts():
    # awk '{print $1}' csapp2e_cachelab_long_head1000.trace | sort | uniq -c  ->  851 L, 81 S, 68 M
    _, g, _, a = parse(DATA / "csapp2e_cachelab_long_head1000.trace")
    assert a.by_kind == {"I": 0, "L": 851, "S": 81, "M": 68, "U": 0}
    assert int(g.max()) < 1 << 32


def test_lackey_64bit_cachelab_trace_with_9_digit_addresses():
    # awk '{print $1}' csapp3e_cachelab_long_64bit_head1000.trace | sort | uniq -c  ->  851 L, 149 S
    _, g, _, a = parse(DATA / "csapp3e_cachelab_long_64bit_head1000.trace")
    assert a.by_kind == {"I": 0, "L": 851, "S": 149, "M": 0, "U": 0}
    assert 0x7FEFE05A8 in g.tolist()


def test_lackey_cachelab_trans_trace_keeps_I_lines():
    # awk '/^I/{i++} /^ L/{l++} /^ S/{s++} /^ M/{m++} END{print i,l,s,m}'  ->  378 156 42 20
    _, _, _, a = parse(DATA / "csapp2e_cachelab_trans.trace")
    assert a.by_kind == {"I": 378, "L": 156, "S": 42, "M": 20, "U": 0} and a.lines == 596


def test_lackey_valgrind_message_lines_anywhere_including_trailing_space_only(write):
    text = (
        "==11422== Lackey, an example Valgrind tool\n==11422== \n==11422==\n"
        "I  0401ab70,3\n==11422== Warning: set address range perms: large range, 1, 2\n S 1fff000758,8\n"
    )
    k, _, _, a = parse(write("t.lackey", text))
    assert k.tolist() == [0, 2]
    assert a.non_records == {"valgrind_message": 4} and a.lines == 6


def test_lackey_debug_message_lines_are_non_records(write):
    k, _, _, a = parse(write("t.lackey", "--4257-- Reading syms from /bin/true\nI  0401ab70,3\n--4257-- \n"))
    assert k.tolist() == [0] and a.non_records == {"valgrind_debug": 2}


def test_lackey_superblock_lines_are_non_records():
    # xz -dc F | awk '/^I  /{i++} /^ L /{l++} /^ S /{s++} /^ M /{m++} /^==/{e++} /^SB /{sb++} END{...}'
    #   -> 127785 I, 27901 L, 10266 S, 1504 M, 24 '==', 26441 SB, 193921 lines
    _, _, _, a = parse(DATA / "lackey_true_superblocks.lackey.xz")
    assert a.by_kind == {"I": 127785, "L": 27901, "S": 10266, "M": 1504, "U": 0}
    assert a.non_records == {"valgrind_message": 24, "superblock": 26441}
    assert a.lines == 193921
    assert a.footer_check()["status"] == "ok"


def test_lackey_blank_lines_are_non_records(write):
    k, _, _, a = parse(write("t.lackey", "\nI  0401ab70,3\n   \n\n"))
    assert k.tolist() == [0] and a.non_records == {"blank": 3} and a.lines == 4


def test_lackey_crlf_line_ends(write):
    k, _, s, a = parse(write("t.lackey", "==1== hi\r\nI  0401ab70,3\r\n S 1fff000758,8\r\n\r\n"))
    assert k.tolist() == [0, 2] and s.tolist() == [3, 8]
    assert a.non_records == {"valgrind_message": 1, "blank": 1}


def test_lackey_one_space_I_variant_from_course_material(write):
    k, g, s, _ = parse(write("t.lackey", "I 0400d7d4,8\nL 10,1\n"))
    assert k.tolist() == [0, 1] and g.tolist() == [0x0400D7D4, 0x10] and s.tolist() == [8, 1]


def test_lackey_three_column_course_variant_kept_and_counted(write):
    k, _, s, a = parse(write("t.lackey", " S 7ff000398,8 17\n L 7ff000390,8\n"))
    assert k.tolist() == [2, 1] and s.tolist() == [8, 8]
    assert a.notes == {"records_with_extra_column": 1}


def test_lackey_foreign_line_is_an_error_naming_file_line_text_and_expectation():
    # line 402319 of the --log-fd=1 recording is the client's own stdout
    with pytest.raises(TraceError) as ei:
        parse(DATA / "lackey_echo_logfd1.lackey.xz")
    msg = str(ei.value)
    assert "lackey_echo_logfd1.lackey.xz:402319:" in msg
    assert "'hello-from-client'" in msg
    assert "expected a lackey line" in msg


def test_lackey_skip_bad_turns_foreign_lines_into_counted_skips():
    # xz -dc F | awk ... -> 304667 I, 70103 L, 29994 S, 1728 M, 24 '==', 406517 lines
    _, _, _, a = parse(DATA / "lackey_echo_logfd1.lackey.xz", skip_bad=True)
    assert a.by_kind == {"I": 304667, "L": 70103, "S": 29994, "M": 1728, "U": 0}
    assert a.skipped == {"bad_line": 1} and a.lines == 406517
    assert any("402319" in w and "hello-from-client" in w for w in a.warnings)


def test_lackey_truncated_last_line_is_a_counted_skip_with_warning(write):
    k, _, _, a = parse(write("t.lackey", "I  0401ab70,3\n S 1fff0007"))
    assert k.tolist() == [0]
    assert a.skipped == {"truncated_last_line": 1} and a.lines == 2
    assert any("no newline" in w for w in a.warnings)


def test_lackey_unterminated_last_line_that_parses_is_kept_with_warning(write):
    k, _, _, a = parse(write("t.lackey", "I  0401ab70,3\n S 1fff000758,8"))
    assert k.tolist() == [0, 2] and a.lines == 2 and not a.skipped
    assert any("may be cut short" in w for w in a.warnings)


def test_lackey_bad_line_in_the_middle_is_not_a_truncation(write):
    with pytest.raises(TraceError, match=r"t.lackey:2: ' S 1fff0007'"):
        parse(write("t.lackey", "I  0401ab70,3\n S 1fff0007\nI  0401ab73,5\n"))


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (" L 1fff000758,0", "size '0'"),
        (" L 1fff000758,70000", "size '70000'"),
        (" L 1fff00zz58,8", "address '1fff00zz58'"),
        (" L 11112222333344445,8", "address '11112222333344445'"),
        ("hello world", "expected a lackey line"),
        ("==12 oops", "expected a lackey line"),
    ],
)
def test_lackey_bad_records_name_what_is_wrong(write, line, reason):
    with pytest.raises(TraceError) as ei:
        parse(write("t.lackey", f"I  0401ab70,3\n{line}\n"))
    assert ":2: " in str(ei.value) and reason in str(ei.value)


def test_lackey_large_data_sizes_up_to_512_and_beyond(write):
    _, _, s, _ = parse(write("t.lackey", " M 1fff000758,16\n S 1fff000758,512\n L 10,65535\n"))
    assert s.tolist() == [16, 512, 65535]


def test_lackey_footer_guest_instrs_with_thousands_separators_is_checked(write):
    text = (
        "I  0401ab70,3\n" * 1234
        + "==9== Executed:\n==9==   guest instrs:  1,234\n==9==   guest instrs : SB entered  = 168 : 10\n"
    )
    _, _, _, a = parse(write("t.lackey", text))
    assert a.footer_check() == {"status": "ok", "footer": 1234, "I_records": 1234, "footers": 1}
    assert not a.warnings


def test_lackey_footer_mismatch_is_a_warning_not_an_error(write):
    text = "I  0401ab70,3\n" * 3 + "==9==   guest instrs:  1,000\n"
    _, _, _, a = parse(write("t.lackey", text))
    assert a.footer_check()["status"] == "mismatch"
    assert any("1,000 guest instrs but 3 I records" in w for w in a.warnings)


def test_lackey_two_footers_of_a_forked_child_are_summed():
    # fork.c under lackey, one log: footers 124,528 + 125,125; 126479 I lines (awk '/^I  /')
    _, _, _, a = parse(DATA / "lackey_fork_two_footers.lackey.xz")
    assert a.by_kind == {"I": 126479, "L": 27598, "S": 10419, "M": 1505, "U": 0}
    fc = a.footer_check()
    assert fc["footers"] == 2 and fc["footer"] == 124528 + 125125 and fc["status"] == "mismatch"
    assert any("forked child" in w for w in a.warnings)


def test_lackey_line_numbers_exact_across_blocks(write):
    lines = ["==1== hi"] + [f"I  {0x400000 + i:08x},3" for i in range(5000)] + ["oops"]
    p = write("t.lackey", "\n".join(lines) + "\n")
    for block in (64, 100, 4096):
        with pytest.raises(TraceError, match=r"t.lackey:5002: 'oops'"):
            parse(p, block_bytes=block)


def test_lackey_records_in_order_across_blocks_and_batches(write):
    rng = np.random.default_rng(1)
    lines = []
    for i in range(3000):
        k = "ILSM"[int(rng.integers(4))]
        a = int(rng.integers(1 << 40))
        lines.append(f"I  {a:08x},{i % 15 + 1}" if k == "I" else f" {k} {a:08x},{i % 32 + 1}")
        if i % 500 == 0:
            lines.append("==5== ")
    text = "\n".join(lines) + "\n"
    p = write("t.lackey", text)
    ref = ref_parse(text)
    for batch_rows, block in ((7, 50), (1000, 333), (1 << 20, 1 << 20)):
        k, g, s, a = parse(p, batch_rows=batch_rows, block_bytes=block)
        assert list(zip(k.tolist(), g.tolist(), s.tolist(), strict=True)) == ref
        assert a.lines == len(lines)


def test_lackey_line_longer_than_a_block(write):
    p = write("t.lackey", "I  0401ab70,3\n==1== " + "x" * 10000 + "\n L 10,1\n")
    k, _, _, a = parse(p, block_bytes=64)
    assert k.tolist() == [0, 1] and a.non_records == {"valgrind_message": 1}


def test_lackey_compressed_inputs_gz_xz_zst_read_directly(write):
    import zstandard

    text = ("==1== x\n" + "".join(f"I  {i:08x},3\n L {i * 8:010x},8\n" for i in range(1000))).encode()
    plain = parse(write("t.lackey", text))
    for name, data in (
        ("t.gz", gzip.compress(text)),
        ("t.xz", lzma.compress(text)),
        ("t.zst", zstandard.ZstdCompressor().compress(text)),
        ("t_no_suffix", gzip.compress(text)),  # detected from magic bytes, not the name
    ):
        k, g, _, a = parse(write(name, data))
        assert (k == plain[0]).all() and (g == plain[1]).all() and a.lines == plain[3].lines
    assert Source(write("t2.xz", lzma.compress(text))).compression == "xz"


def test_lackey_ingest_reconciles_and_iter_batches_raw_equals_parquet(tmp_path, write):
    p = write("t.lackey", "==1== \nI  0401ab70,3\nSB 0401ab70\n S 1fff000758,8\n\n")
    s = ingest([p], tmp_path / "t.parquet")
    assert s.lines == s.records + sum(s.non_records.values()) + sum(s.skipped.values()) == 5
    raw = list(iter_batches(p))
    pq = list(iter_batches(tmp_path / "t.parquet"))
    for c in ("kind", "gva", "size"):
        assert np.concatenate([b[c] for b in raw]).tolist() == np.concatenate([b[c] for b in pq]).tolist()
