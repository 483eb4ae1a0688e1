"""write_store: in-memory records become a store file that reads back exactly, with provenance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from memmodel.errors import TraceError
from memmodel.trace import iter_batches, read_metadata, trace_identity, write_store


def test_records_written_from_a_frame_read_back_identically_in_order(tmp_path: Path) -> None:
    frame = pl.DataFrame({"kind": [0, 1, 2, 3, 1], "gva": [0x400000, 2**64 - 8, 0x1000, 0x1FFC, 7],
                          "size": [4, 8, 8, 16, 1]})
    out = tmp_path / "t.parquet"
    write_store(out, frame, source="synthetic", batch_rows=2)
    batches = list(iter_batches(out, batch_rows=2))
    got = {k: np.concatenate([b[k] for b in batches]) for k in ("kind", "gva", "size")}
    assert got["kind"].tolist() == [0, 1, 2, 3, 1]
    assert got["gva"].tolist() == [0x400000, 2**64 - 8, 0x1000, 0x1FFC, 7]
    assert got["gva"].dtype == np.uint64 and got["size"].dtype == np.uint64


def test_store_metadata_names_the_source_and_reconciles(tmp_path: Path) -> None:
    out = tmp_path / "t.parquet"
    write_store(out, {"kind": np.array([0, 1], np.uint8), "gva": np.array([1, 2], np.uint64),
                      "size": np.array([1, 1], np.uint16)}, source="unit test")
    md = read_metadata(out)
    (inp,) = md["inputs"]
    assert inp["identity"]["path"] == "unit test" and md["records"] == 2
    acct = inp["accounting"]
    assert acct["lines"] == acct["records"] == 2 and acct["by_kind"] == {"I": 1, "L": 1, "S": 0, "M": 0, "U": 0}
    assert trace_identity(out)["kind"] == "store"


def test_bad_records_are_rejected_with_the_source_named(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="synthetic: records have no column"):
        write_store(tmp_path / "x.parquet", {"kind": [1], "gva": [2]}, source="synthetic")
    with pytest.raises(TraceError, match=r"codes other than 0\.\.4"):
        write_store(tmp_path / "x.parquet", {"kind": [7], "gva": [2], "size": [1]}, source="synthetic")
    assert not (tmp_path / "x.parquet").exists()
