"""Store: ingest metadata, identity, iteration order, concatenation, detection, info."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from memmodel import __version__
from memmodel.errors import TraceError
from memmodel.trace import ingest, iter_batches, read_metadata, trace_identity, trace_info
from memmodel.trace.store import detect_format

DATA = Path(__file__).resolve().parent.parent / "data"
LACKEY = "==7== \nI  0401ab70,3\n S 1fff000758,8\n L 04a4d040,4\n M 00109139,16\n==7==   guest instrs:  1\n"


def test_ingest_metadata_records_source_identity_reader_and_line_accounting(tmp_path, write):
    p = write("a.lackey", LACKEY)
    s = ingest([p], tmp_path / "a.parquet")
    assert s.reconciled and s.lines == 6 and s.records == 4
    md = read_metadata(tmp_path / "a.parquet")
    assert md["memmodel_version"] == __version__
    src = md["inputs"][0]
    assert src["identity"]["sha256"] == hashlib.sha256(p.read_bytes()).hexdigest()
    assert src["identity"]["bytes"] == p.stat().st_size and src["identity"]["path"] == str(p)
    assert src["reader"] == "lackey" and src["reader_version"] and src["format"] == "lackey"
    acc = src["accounting"]
    assert acc["lines"] == acc["records"] + sum(acc["non_records"].values()) + sum(acc["skipped"].values())
    assert md["accounting"]["footer_check"]["status"] == "ok"
    json.dumps(s.to_dict())  # JSON-ready


def test_summary_has_speed_and_footer_fields(tmp_path, write):
    s = ingest([write("a.lackey", LACKEY)], tmp_path / "a.parquet").to_dict()
    for k in ("lines", "records", "skipped", "by_kind", "non_records", "footer_check", "seconds", "mb_per_s"):
        assert k in s
    assert set(s["by_kind"]) == {"I", "L", "S", "M", "U"} and s["unmaps"] == 0 and s["unmapped_bytes"] == 0


def test_trace_identity_of_raw_and_store_files(tmp_path, write):
    p = write("a.lackey", LACKEY)
    raw = trace_identity(p)
    assert raw["sha256"] == hashlib.sha256(p.read_bytes()).hexdigest() and raw["bytes"] == p.stat().st_size
    out = tmp_path / "a.parquet"
    ingest([p], out)
    st = trace_identity(out)
    assert st["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert st["sources"][0]["sha256"] == raw["sha256"] and st["records"] == 4


def test_compressed_source_identity_is_the_hash_of_the_compressed_file(tmp_path):
    f = DATA / "lackey_fork_two_footers.lackey.xz"
    s = ingest([f], tmp_path / "f.parquet")
    ident = s.inputs[0]["identity"]
    assert ident["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest() and ident["compression"] == "xz"


def test_several_inputs_are_concatenated_in_order(tmp_path, write):
    a = write("a.lackey", "I  00000001,1\n L 00000002,2\n")
    b = write("b.lackey", " S 00000003,3\n")
    s = ingest([a, b, a], tmp_path / "c.parquet")
    assert s.records == 5 and len(s.inputs) == 3
    g = np.concatenate([x["gva"] for x in iter_batches(tmp_path / "c.parquet")])
    assert g.tolist() == [1, 2, 3, 1, 2]


def test_inputs_with_different_columns_are_rejected(tmp_path, write):
    a = write("a.lackey", "I  00000001,1\n")
    with pytest.raises(TraceError, match="differ from the first input"):
        ingest([a, DATA / "perf_mem_report_D_store_x86.txt"], tmp_path / "c.parquet")
    assert not (tmp_path / "c.parquet").exists()


def test_failed_ingest_leaves_no_output_file(tmp_path, write):
    bad = write("bad.lackey", "I  00000001,1\nnonsense\n")
    with pytest.raises(TraceError):
        ingest([bad], tmp_path / "x.parquet")
    assert list(tmp_path.glob("x.parquet*")) == []


def test_iter_batches_yields_fresh_numpy_arrays_in_record_order(tmp_path, write):
    text = "".join(f"I  {i:08x},{i % 15 + 1}\n" for i in range(1000))
    p = write("a.lackey", text)
    ingest([p], tmp_path / "a.parquet", batch_rows=64)
    for src in (p, tmp_path / "a.parquet"):
        batches = list(iter_batches(src, batch_rows=100))
        assert [len(b["gva"]) for b in batches] == [100] * 10
        g = np.concatenate([b["gva"] for b in batches])
        assert g.tolist() == list(range(1000))
        assert batches[0]["kind"].dtype == np.uint8 and batches[0]["size"].dtype == np.uint64


def test_iter_batches_missing_column_is_an_error(write):
    with pytest.raises(TraceError, match="no column"):
        list(iter_batches(write("a.lackey", LACKEY), ("kind", "tlb")))


def test_format_detection_from_content_and_override(write):
    assert detect_format(write("x.txt", "==1== hi\n# x\nI  0401ab70,3\n")) == "lackey"
    assert detect_format(DATA / "perf_mem_report_D_store_x86.txt") == "perf-mem-raw"
    assert detect_format(DATA / "perf_script_amd_ibs_data_src.txt") == "perf-script"
    assert detect_format(write("h.txt", "==5== Lackey, an example Valgrind tool\n==5== \n")) == "lackey"
    with pytest.raises(TraceError, match="--format"):
        detect_format(write("r.txt", "hello\n"))


def test_info_counts_distinct_pages_including_straddling_accesses(write):
    p = write(
        "a.lackey",
        "I  00400000,4\n L 00000ffe,4\n S 00001000,8\n L 00200000,1\n I 40000000,2\n",
    )
    d = trace_info(p)
    assert d["by_kind"] == {"I": 2, "L": 2, "S": 1, "M": 0, "U": 0}
    # data: 0xffe..0x1001 straddles pages 0 and 1; 0x1000 page 1; 0x200000 page 0x200
    assert d["pages"]["data"] == {"4K": 3, "2M": 2, "1G": 1}
    assert d["pages"]["all"] == {"4K": 5, "2M": 4, "1G": 2}
    assert d["data_span"] == {"min": 0xFFE, "max": 0x200000, "bytes": 0x200000 - 0xFFE + 1}
    assert d["footprint_bytes"]["data"] == 3 * 4096


def test_info_same_on_raw_and_store(tmp_path):
    f = DATA / "lackey_true_superblocks.lackey.xz"
    ingest([f], tmp_path / "t.parquet")
    a, b = trace_info(f), trace_info(tmp_path / "t.parquet")
    a.pop("path")
    b.pop("path")
    assert a == b
