"""Store files written by ingest and write_store: byte-identical for the same input, readable across versions.

Rules checked here (issue 9, ingest speed):

* the same input gives a byte-identical store, whatever the text block size the reader uses, and the same
  records whatever the row-group size (``batch_rows``); the reader refills the arrays of batches already
  written, which must never change a record;
* ``kind`` and ``size`` are written with BYTE_STREAM_SPLIT (no dictionaries) and keep min/max statistics;
* a store written by the previous version (dictionary pages, ``tests/trace/data/store_v2_dictionary.parquet``,
  ingested from ``tests/data/conformance/tiny_lifecycle.lackey`` with ``batch_rows=16``) still reads;
* a regular file is hashed by a background thread (``FileHash``): the identity is the file's sha256, the
  same as when the bytes come through a pipe, and a file that changes while it is read is an error.
"""

from __future__ import annotations

import hashlib
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from memmodel.errors import TraceError
from memmodel.trace import ingest, iter_batches, read_metadata, trace_info, write_store
from memmodel.trace.schema import SCHEMA_VERSION
from memmodel.trace.source import FileHash, Source

HERE = Path(__file__).resolve().parent
LIFECYCLE = HERE.parent / "data" / "conformance" / "tiny_lifecycle.lackey"
OLD_STORE = HERE / "data" / "store_v2_dictionary.parquet"


def _lackey_text(n: int, seed: int) -> bytes:
    """A lackey text of ``n`` records in lackey's own spelling plus messages, superblocks, blank lines,
    3-column records, CRLF ends and syscall lines (an unmap), so that both scanner paths and the Python
    line handling run; addresses of 1-16 hex digits, sizes 1..65535."""
    rng = random.Random(seed)
    out = [b"==7== Lackey, an example Valgrind tool\n"]
    for i in range(n):
        r = rng.random()
        addr = f"{rng.getrandbits(rng.choice((12, 32, 40, 48, 64))):0{rng.choice((1, 8, 10, 16))}x}"
        size = rng.choice((1, 2, 4, 8, 16, 64, 65535))
        if r < 0.45:
            out.append(f"I  {addr},{size}\n".encode())
        elif r < 0.9:
            out.append(f" {rng.choice('LSM')} {addr},{size}\n".encode())
        elif r < 0.93:
            out.append(f" L {addr},{size}\r\n".encode())
        elif r < 0.95:
            out.append(f" S {addr},{size} {i}\n".encode())
        elif r < 0.97:
            out.append(f"SB {addr}\n".encode())
        elif r < 0.98:
            out.append(b"\n")
        elif r < 0.99:
            out.append(f"==7== message {i}\n".encode())
        else:
            out.append(f"SYSCALL[7,1](11) sys_munmap ( 0x{rng.getrandbits(36) << 12:x}, 8192 )[sync] --> "
                       "Success(0x0) \n".encode())
    return b"".join(out)


def _records(path: Path) -> dict[str, np.ndarray]:
    parts = list(iter_batches(path, batch_rows=1 << 20))
    return {c: np.concatenate([p[c] for p in parts]) for c in ("kind", "gva", "size")}


@pytest.fixture(scope="module")
def text(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("text") / "gen.lackey"
    p.write_bytes(_lackey_text(40_000, seed=9))
    return p


def _ingest_bytes(text: Path, out: Path, **kw: int) -> bytes:
    """The store bytes of one ingest into ``out`` (the metadata names the output, so always the same path)."""
    ingest([text], out, **kw)  # type: ignore[arg-type]
    data = out.read_bytes()
    out.unlink()
    return data


def test_two_ingests_of_the_same_text_give_byte_identical_stores(tmp_path: Path, text: Path) -> None:
    out = tmp_path / "t.parquet"
    assert _ingest_bytes(text, out, batch_rows=4096) == _ingest_bytes(text, out, batch_rows=4096)


@pytest.mark.parametrize("block_bytes", [7, 100, 4096, 1 << 20])
def test_store_bytes_do_not_depend_on_the_text_block_size(tmp_path: Path, text: Path, block_bytes: int) -> None:
    out = tmp_path / "t.parquet"
    ref = _ingest_bytes(text, out, batch_rows=4096)
    assert _ingest_bytes(text, out, batch_rows=4096, block_bytes=block_bytes) == ref


def test_records_do_not_depend_on_batch_rows_and_refilled_arrays_never_change_a_record(
    tmp_path: Path,
) -> None:
    text = tmp_path / "small.lackey"
    text.write_bytes(_lackey_text(4000, seed=5))
    ref = tmp_path / "ref.parquet"
    s = ingest([text], ref, batch_rows=1 << 20)  # one batch: no array is ever refilled
    want = _records(ref)
    assert len(want["kind"]) == s.records and s.unmaps > 0
    for rows in (1, 7, 1000):  # 3,800 / 7 batches: the spare arrays are refilled hundreds of times
        out = tmp_path / f"r{rows}.parquet"
        ingest([text], out, batch_rows=rows)
        got = _records(out)
        assert pq.ParquetFile(out).metadata.num_row_groups == -(-s.records // rows)
        for c in want:
            assert np.array_equal(got[c], want[c]), (rows, c)


def test_write_store_gives_byte_identical_files_for_the_same_records(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    recs = {"kind": rng.integers(0, 5, 5000).astype(np.uint8), "gva": rng.integers(0, 1 << 63, 5000, np.uint64),
            "size": rng.integers(1, 9, 5000).astype(np.uint64)}
    write_store(tmp_path / "a.parquet", recs, source="x", batch_rows=999)
    write_store(tmp_path / "b.parquet", recs, source="x", batch_rows=999)
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    got = _records(tmp_path / "a.parquet")
    assert all(np.array_equal(got[c], recs[c]) for c in recs)


def test_kind_and_size_are_byte_stream_split_with_statistics_and_gva_is_plain(tmp_path: Path, text: Path) -> None:
    out = tmp_path / "t.parquet"
    ingest([text], out, batch_rows=4096)
    md = pq.ParquetFile(out).metadata
    for g in range(md.num_row_groups):
        rg = md.row_group(g)
        cols = {rg.column(i).path_in_schema: rg.column(i) for i in range(rg.num_columns)}
        for name in ("kind", "size"):
            assert "BYTE_STREAM_SPLIT" in cols[name].encodings and not cols[name].has_dictionary_page
            assert cols[name].statistics is not None and cols[name].statistics.has_min_max
        assert "PLAIN" in cols["gva"].encodings and not cols["gva"].has_dictionary_page
        assert cols["gva"].compression == "ZSTD"


def test_a_store_written_by_the_previous_version_with_dictionary_pages_still_reads(tmp_path: Path) -> None:
    enc = pq.ParquetFile(OLD_STORE).metadata.row_group(0).column(2).encodings
    assert "RLE_DICTIONARY" in enc  # the fixture really is the old layout
    new = tmp_path / "new.parquet"
    ingest([LIFECYCLE], new, batch_rows=16)
    old_recs, new_recs = _records(OLD_STORE), _records(new)
    assert all(np.array_equal(old_recs[c], new_recs[c]) for c in old_recs)
    md = read_metadata(OLD_STORE)
    assert md["schema"] == SCHEMA_VERSION and md["records"] == len(old_recs["kind"]) == 34
    assert trace_info(OLD_STORE)["by_kind"] == trace_info(new)["by_kind"]


def test_file_identity_is_the_sha256_of_the_file_and_the_same_as_through_a_pipe(tmp_path: Path, text: Path) -> None:
    data, out = text.read_bytes(), tmp_path / "t.parquet"
    s_file = ingest([text], out)
    from_file = out.read_bytes()
    with open(text, "rb") as stream:  # an open stream is read once and hashed as it is read
        s_pipe = ingest([], out, _streams=[(stream, str(text))])
    want = hashlib.sha256(data).hexdigest()
    assert s_file.inputs[0]["identity"]["sha256"] == s_pipe.inputs[0]["identity"]["sha256"] == want
    assert s_file.inputs[0]["identity"]["bytes"] == len(data)
    assert out.read_bytes() == from_file


def test_a_file_that_changes_while_it_is_read_is_an_error_naming_it(tmp_path: Path) -> None:
    p = tmp_path / "grows.lackey"
    p.write_bytes(b"I  0400d7d4,8\n" * 100)
    with ThreadPoolExecutor(max_workers=1) as pool:
        fh = FileHash(p, pool)
        fh.result(str(p))  # hashed: 1,400 bytes
        with open(p, "ab") as f:  # then the file grows before it is parsed
            f.write(b" L 0400d7d4,8\n")
        src = Source(p, file_hash=fh)
        try:
            for _ in src.blocks(1 << 20):
                pass
            with pytest.raises(TraceError, match=r"grows\.lackey: the file changed while it was being read"):
                src.finish()
        finally:
            src.close()
