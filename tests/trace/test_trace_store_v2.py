"""Store schema v2: kind U = 4, size uint64 for every record; v1 stores (uint16 size) still read."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from memmodel.trace import ingest, iter_batches, read_metadata, trace_info, write_store
from memmodel.trace.schema import KIND_NAMES, KIND_U, SCHEMA_VERSION

CONF = Path(__file__).resolve().parent.parent / "data" / "conformance"


def test_schema_v2_has_kind_U_4_and_uint64_size():
    assert KIND_U == 4 and KIND_NAMES == ("I", "L", "S", "M", "U")
    assert SCHEMA_VERSION.endswith("v2")


def test_unmap_lengths_up_to_2_64_minus_1_round_trip_through_the_store(tmp_path):
    recs = {"kind": np.array([1, 4, 4, 2], np.uint8),
            "gva": np.array([0x1000, 0x40000000, 0, 0x2000], np.uint64),
            "size": np.array([8, 0, (1 << 64) - 1, 4], np.uint64)}
    doc = write_store(tmp_path / "u.parquet", recs, source="unit test")
    b = next(iter_batches(tmp_path / "u.parquet"))
    assert b["size"].dtype == np.uint64 and b["size"].tolist() == [8, 0, (1 << 64) - 1, 4]
    assert b["kind"].tolist() == [1, 4, 4, 2]
    acct = doc["inputs"][0]["accounting"]
    assert doc["schema"] == SCHEMA_VERSION and acct["unmaps"] == 2
    assert acct["unmapped_bytes"] == 1 << 64  # [0, 2^64): the end rounds up and is capped at 2^64


def test_a_v1_store_with_uint16_size_is_read_with_size_cast_to_uint64(tmp_path):
    out = tmp_path / "v1.parquet"
    schema = pa.schema([pa.field("kind", pa.uint8(), False), pa.field("gva", pa.uint64(), False),
                        pa.field("size", pa.uint16(), False)])
    table = pa.table({"kind": pa.array([0, 1, 2], pa.uint8()), "gva": pa.array([0x400000, 0x1000, 0x2ffe], pa.uint64()),
                      "size": pa.array([3, 8, 4], pa.uint16())}, schema=schema)
    doc = {"memmodel_version": "0.1.0", "schema": "memmodel.trace.schema v1", "records": 3, "inputs": []}
    table = table.replace_schema_metadata({b"memmodel": json.dumps(doc).encode()})
    pq.write_table(table, out)
    b = next(iter_batches(out))
    assert b["size"].dtype == np.uint64 and b["size"].tolist() == [3, 8, 4]
    d = trace_info(out)
    assert d["by_kind"] == {"I": 1, "L": 1, "S": 1, "M": 0, "U": 0} and d["pages"]["data"]["4K"] == 3
    assert read_metadata(out)["schema"] == "memmodel.trace.schema v1"


def test_ingest_writes_schema_v2_and_counts_unmaps_in_summary_and_metadata(tmp_path):
    out = tmp_path / "t.parquet"
    s = ingest([CONF / "tiny_lifecycle.lackey"], out)
    assert s.unmaps == 8 and s.unmapped_bytes == 1076121600 and s.to_dict()["unmaps"] == 8
    md = read_metadata(out)
    assert md["schema"] == SCHEMA_VERSION and md["records"] == 34
    assert md["accounting"]["unmaps"] == 8 and md["accounting"]["unmapped_bytes"] == 1076121600
    assert pq.ParquetFile(out).schema_arrow.field("size").type == pa.uint64()


def test_info_reports_unmaps_and_does_not_count_U_ranges_as_touched_pages(tmp_path):
    d = trace_info(CONF / "tiny_lifecycle.lackey")
    assert d["unmaps"] == 8 and d["unmapped_bytes"] == 1076121600
    # distinct 4 KiB pages of the 24 L/S records, by hand from the text: 0x10000-0x10003 (the store at
    # 0x10002ffc straddles into 0x10003), 0x10030, 0x1003f, 0x40000, 0x40001, 0x40200, 0x40400,
    # 0x60000, 0x60003, 0x70000, 0xc0000, 0xc0001; the U ranges (e.g. 1 GiB at 0x70000000) add none
    assert d["pages"]["data"]["4K"] == 15
    assert d["data_span"]["min"] == 0x10000000 and d["data_span"]["max"] == 0xC0001007
    ingest([CONF / "tiny_lifecycle.lackey"], tmp_path / "t.parquet")
    assert trace_info(tmp_path / "t.parquet") | {"path": ""} == d | {"path": ""}
