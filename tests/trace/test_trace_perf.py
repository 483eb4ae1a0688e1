# ruff: noqa: E501  (verbatim perf output lines)
"""perf readers: `perf mem report -D` (with/without -x) and `perf script`; data_src decoding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from memmodel.errors import TraceError
from memmodel.trace import schema
from memmodel.trace.perf import kind_of, tlb_of
from memmodel.trace.store import detect_format, ingest

DATA = Path(__file__).resolve().parent.parent / "data"


def run(paths, tmp_path, **kw):
    """Ingest, check the reconciliation, return (summary, list of row dicts)."""
    out = tmp_path / "out.parquet"
    s = ingest([Path(p) for p in (paths if isinstance(paths, list) else [paths])], out, **kw)
    assert s.lines == s.records + sum(s.non_records.values()) + sum(s.skipped.values())
    return s, pq.read_table(out).to_pylist()


# ---- data_src decoding (trace-formats.md section 3 worked decodes) -------------------------


@pytest.mark.parametrize(
    ("hexval", "kind", "tlb"),
    [
        (0x10668100842, schema.KIND_L, schema.TLB_HIT),  # Intel: TLB "L1 or L2 hit" = hit, level unknown
        (0x10650100842, schema.KIND_L, schema.TLB_MISS),  # Intel: "L2 miss" = STLB miss = walk
        (0x51080242, schema.KIND_L, schema.TLB_MISS),  # AMD IBS "L2 miss"
        (0x49080142, schema.KIND_L, schema.TLB_L2_HIT),  # AMD IBS "L2 hit"
        (0x8688000842, schema.KIND_L, schema.TLB_HIT),  # Arm SPE "Walker hit": NOT a walk
        (0x5080144, schema.KIND_S, schema.TLB_NA),  # x86 store, dtlb N/A
        (0x444000288100144, schema.KIND_S, schema.TLB_HIT),  # SPE SVE store, bits above 46 ignored
        (0x1E05080021, None, schema.TLB_NA),  # mem_op N/A
    ],
)
def test_data_src_is_decoded_from_the_hex_value(hexval, kind, tlb):
    assert kind_of(hexval) == kind
    assert tlb_of(hexval) == tlb


def test_data_src_tlb_vendor_semantics():
    dt = lambda bits: bits << 26  # noqa: E731
    assert tlb_of(dt(0x2 | 0x8)) == schema.TLB_L1_HIT  # AMD "L1 hit"
    assert tlb_of(dt(0x4 | 0x20)) == schema.TLB_MISS  # SPE "Walker miss"
    assert tlb_of(dt(0x4 | 0x8)) == schema.TLB_NA  # L1 miss only: L2 outcome unknown
    assert tlb_of(dt(0x40)) == schema.TLB_FAULT
    assert tlb_of(dt(0x1)) == schema.TLB_NA and tlb_of(0) == schema.TLB_NA


def test_data_src_load_and_store_bits_both_set_is_M():
    assert kind_of(0x2 | 0x4) == schema.KIND_M
    assert kind_of(0x8) is None and kind_of(0x10) is None and kind_of(0) is None


# ---- perf mem report -D ----------------------------------------------------------------------


def test_perf_raw_padded_first_line_0x016_artifact_and_header_columns(tmp_path):
    f = DATA / "perf_mem_report_D_phys_pagesize_intel_unwrapped.txt"
    assert detect_format(f) == "perf-mem-raw"
    s, rows = run(f, tmp_path)
    assert s.columns[-2:] == ["phys_addr", "data_page_size"]  # from the header
    assert [r["gva"] for r in rows] == [0xFFFF9A274E96A308, 0xFFFFFFFFB752B814, 0xFFFFFE00016B8BB0]
    assert [r["kind"] for r in rows] == [schema.KIND_S, schema.KIND_L, schema.KIND_S]
    assert [r["phys_addr"] for r in rows] == [0x44E96A308, 0xCFB52B814, 0]
    assert [r["data_page_size"] for r in rows] == [4096, 2 << 20, 4096]
    assert [r["weight"] for r in rows] == [1168, 225, 0]
    assert rows[0]["pid"] == rows[0]["tid"] == 20134 and rows[0]["size"] == 1
    assert s.non_records == {"comment": 1}


def test_perf_raw_0x016_is_stripped_on_the_first_line_only(tmp_path, write):
    text = (
        "# PID, TID, IP, ADDR, LOCAL WEIGHT, DSRC, SYMBOL\n"
        "14857 14857 0xffffffff817554ea 0x016563036f8d038     0 0x10268100142 [kernel.kallsyms]:elf_load\n"
        "14857 14857 0xffffffff817554ea 0x016abc 0 0x10268100142 [kernel.kallsyms]:elf_load\n"
    )
    _, rows = run(write("d.txt", text), tmp_path)
    assert [r["gva"] for r in rows] == [0x563036F8D038, 0x16ABC]


def test_perf_raw_x_separator_with_symbol_containing_separator_and_colons(tmp_path):
    s, rows = run(DATA / "perf_mem_report_D_x_comma_handmade.txt", tmp_path)
    assert [r["gva"] for r in rows] == [0x7F19939E0110, 0x7F19939E0118]
    assert [r["kind"] for r in rows] == [schema.KIND_L, schema.KIND_S]
    assert s.skipped == {"not_load_or_store": 1, "no_data_address": 1}
    assert "phys_addr" not in s.columns


def test_perf_raw_x86_store_sample(tmp_path):
    s, rows = run(DATA / "perf_mem_report_D_store_x86.txt", tmp_path)
    assert s.by_kind == {"I": 0, "L": 0, "S": 1, "M": 0, "U": 0}
    assert rows[0]["gva"] == 0xFFFF88021F50E2C0 and rows[0]["data_src"] == 0x5080144


def test_perf_raw_mail_wrapped_sample_is_an_error_naming_the_line(tmp_path):
    with pytest.raises(TraceError) as ei:
        run(DATA / "perf_mem_report_D_and_stdio_phys_pagesize_intel.txt", tmp_path)
    msg = str(ei.value)
    assert "perf_mem_report_D_and_stdio_phys_pagesize_intel.txt:3:" in msg
    assert "0x016ffff9a274e96a308" in msg and "expected a `perf mem report -D` sample line" in msg


def test_perf_raw_without_header_infers_optional_columns(tmp_path, write):
    text = "1 2 0x400000 0x7f0000001000 0x0000000012345000 2M 7 0x26a100142 a.out:main\n"
    _, rows = run(write("d.txt", text), tmp_path, format="perf-mem-raw")
    assert rows[0]["phys_addr"] == 0x12345000 and rows[0]["data_page_size"] == 2 << 20


# ---- perf script -----------------------------------------------------------------------------


def test_perf_script_intel_pebs_addr_tid_time_period(tmp_path):
    f = DATA / "perf_script_intel_adl_mem_loads_ldlat.txt"
    assert detect_format(f) == "perf-script"
    s, rows = run(f, tmp_path)
    assert s.by_kind["L"] == 10 and s.records == 10
    assert rows[0]["gva"] == 0xFFFFB33A850078A0 and rows[0]["tid"] == 182628
    assert rows[0]["time"] == 247517_778385000 and rows[0]["period"] == 1
    assert rows[3]["data_src"] == 0x10668100842 and rows[3]["tlb"] == schema.TLB_HIT
    assert "pid" not in s.columns  # perf printed tid only


def test_perf_script_samples_without_an_address_field_are_skipped(tmp_path):
    # AMD IBS / Arm SPE / `-F data_src,weight` outputs carry no ADDR: nothing to replay
    for name, n in (
        ("perf_script_amd_ibs_data_src.txt", 10),
        ("perf_script_arm_spe_memstress.txt", 6),
        ("perf_script_arm_spe_sve_aff.txt", 5),
        ("perf_script_intel_data_src_weight.txt", 9),  # has a literal TAB and running-width padding
    ):
        s, _ = run(DATA / name, tmp_path)
        assert s.records == 0 and s.skipped == {"no_data_address": n}, name


def test_perf_script_comm_with_spaces_event_with_punctuation_and_padding(tmp_path, write):
    text = (
        "# a comment\n"
        "  Web Content  4242/4243 [003]  100.000001:      10000 cpu/mem-loads,ldlat=30/P:     7ffd5010a000     10268100142 |OP LOAD|LVL L1 hit|SNP None|TLB L1 or L2 hit|LCK No|BLK  N/A   5\n"
        "  Web Content  4242/4243 [003]  100.000002:      10000 cpu/mem-stores/P:     7ffd5010a008         5080144 |OP STORE|LVL L1 hit|SNP N/A|TLB N/A|LCK No|BLK  N/A                 0\n"
        "\n"
    )
    s, rows = run(write("s.txt", text), tmp_path)
    assert [r["kind"] for r in rows] == [schema.KIND_L, schema.KIND_S]
    assert [r["pid"] for r in rows] == [4242, 4242] and rows[0]["tid"] == 4243
    assert [r["time"] for r in rows] == [100_000001000, 100_000002000]
    assert s.non_records == {"comment": 1, "blank": 1}


def test_perf_script_ibs_non_memory_uops_and_zero_address_are_skipped_by_reason(tmp_path, write):
    text = (
        "  cc1  10 [000]  5.000001:  1 ibs_op//:  7f0000001000  51080242 |OP LOAD|LVL LFB/MAB hit|SNP N/A|TLB L2 miss|LCK N/A|BLK  N/A\n"
        "  cc1  10 [000]  5.000002:  1 ibs_op//:             0         1 |OP N/A|LVL N/A|SNP N/A|TLB N/A|LCK N/A|BLK  N/A\n"
        "  cc1  10 [000]  5.000003:  1 ibs_op//:  7f0000002000         1 |OP N/A|LVL N/A|SNP N/A|TLB N/A|LCK N/A|BLK  N/A\n"
    )
    s, rows = run(write("s.txt", text), tmp_path)
    assert s.records == 1 and rows[0]["tlb"] == schema.TLB_MISS
    assert s.skipped == {"no_data_address": 1, "not_load_or_store": 1}


def test_perf_script_line_without_data_src_is_skipped_and_wrapped_line_is_an_error(tmp_path):
    f = DATA / "perf_script_intel_hybrid_load_latency.txt"
    with pytest.raises(TraceError, match=r":2: ' \|OP LOAD"):
        run(f, tmp_path, format="perf-script")
    s, _ = run(f, tmp_path, format="perf-script", skip_bad=True)
    assert s.skipped == {"no_data_src": 2, "bad_line": 1}


def test_perf_script_records_are_numpy_dtypes_of_the_schema(tmp_path):
    from memmodel.trace.store import iter_batches

    b = next(iter_batches(DATA / "perf_script_intel_adl_mem_loads_ldlat.txt", ("kind", "gva", "size", "tlb", "time")))
    assert b["kind"].dtype == np.uint8 and b["gva"].dtype == np.uint64 and b["size"].dtype == np.uint64
    assert b["tlb"].dtype == np.uint8 and b["time"].dtype == np.uint64
