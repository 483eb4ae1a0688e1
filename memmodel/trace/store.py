"""The Parquet trace store: streaming ingest, batch iteration, identity and metadata.

A store file is Parquet (zstd; encodings in :func:`_writer_options`, and stores of earlier versions,
with dictionary pages or schema v1, read the same) with the columns of :mod:`memmodel.trace.schema`,
written one row group per batch while the text is read, so memory stays bounded (two text blocks, the
hashing thread's 8 MiB and at most four batches of ``batch_rows`` records: 150 MB peak RSS for the
whole 493.6 MB benchmark command, whatever the input size). Its key-value metadata holds, under the key
``memmodel``, a JSON document with the memmodel version, every source's identity (path, bytes,
sha256, compression), reader name and version, format, and line accounting.

Invariant checked on every ingest (per input and in total)::

    lines == records + known non-record lines + skipped lines
"""

from __future__ import annotations

import json
import os
import re
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeGuard

from memmodel.errors import TraceError
from memmodel.trace.source import BLOCK_BYTES, FILE_BLOCK_BYTES, FileHash, Source, file_sha256

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from memmodel.trace.accounting import Accounting

# numpy, pyarrow and the readers are imported inside the functions: `memmodel ingest` starts hashing
# its inputs (FileHash) before paying for them (0.3 s of its start-up on the benchmark machine).

METADATA_KEY = b"memmodel"
FORMATS = ("lackey", "perf-mem-raw", "perf-script")
DEFAULT_COLUMNS = ("kind", "gva", "size")
PARQUET_SUFFIXES = (".parquet", ".pq")


@dataclass
class IngestSummary:
    """What one ingest did.

    Attributes:
        inputs: per input: identity (path, bytes, sha256, compression), format, reader, accounting.
        out: the Parquet file written.
        lines: lines read over all inputs.
        records: records written (= sum of ``by_kind``, unmaps included).
        by_kind: records per kind ``I``/``L``/``S``/``M``/``U``.
        skipped: skipped lines by reason.
        non_records: known non-record lines by kind.
        footer_check: lackey footer check (``status`` ok / mismatch / absent, ``footer``, ``I_records``).
        warnings: human-readable warnings.
        seconds: wall time of the ingest (s).
        mb_per_s: raw input megabytes (10^6 bytes, as stored on disk) per second.
        records_per_s: records written per second.
        input_bytes: raw input bytes over all inputs.
        columns: the columns written.
    """

    inputs: list[dict[str, Any]]
    out: str
    lines: int
    records: int
    by_kind: dict[str, int]
    skipped: dict[str, int]
    non_records: dict[str, int]
    footer_check: dict[str, Any]
    warnings: list[str]
    seconds: float
    mb_per_s: float
    records_per_s: float
    input_bytes: int
    columns: list[str] = field(default_factory=list)
    notes: dict[str, int] = field(default_factory=dict)
    unmapped_bytes: int = 0

    @property
    def unmaps(self) -> int:
        """``U`` records written (from syscall lines)."""
        return self.by_kind.get("U", 0)

    @property
    def reconciled(self) -> bool:
        """Whether lines == records + non-records + skipped (always true for a returned summary)."""
        return self.lines == self.records + sum(self.non_records.values()) + sum(self.skipped.values())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (all fields plus ``reconciled``)."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["unmaps"] = self.unmaps
        d["reconciled"] = self.reconciled
        return d


# --------------------------------------------------------------------------------------------------
# format detection and readers


def detect_format(path: str | os.PathLike[str]) -> str:
    """The text format of a trace from its first non-comment lines: one of :data:`FORMATS`.

    Raises:
        TraceError: when no line in the first 200 looks like any known format.
    """
    from memmodel.trace.source import head_lines

    return detect_format_lines(head_lines(path), str(path))


def detect_format_lines(lines: list[bytes], name: str) -> str:
    """:func:`detect_format` on already-read lines."""
    from memmodel.trace import perf
    from memmodel.trace.lackey import looks_like_lackey

    for raw in lines:
        line = raw.rstrip(b"\r")
        s = line.strip()
        if not s:
            continue
        if s.startswith(b"# PID, TID, IP, ADDR"):
            return "perf-mem-raw"
        if re.match(rb"^==\d+== Lackey, an example Valgrind tool", s):
            return "lackey"
        if s.startswith(b"#") or s.startswith(b"==") or s.startswith(b"--") or s.startswith(b"SB "):
            continue
        if looks_like_lackey(line):
            return "lackey"
        if perf.looks_like_script(line):
            return "perf-script"
        if perf.looks_like_raw(line):
            return "perf-mem-raw"
    raise TraceError(
        f"{name}: cannot tell the trace format from its first lines (expected lackey records such as "
        "'I  0401ab70,3', `perf mem report -D` lines or `perf script` lines with a data_src field); "
        "pass --format lackey|perf-mem-raw|perf-script"
    )


def _open_reader(
    src: Source,
    fmt: str,
    acct: Accounting,
    skip_bad: bool,
    batch_rows: int,
    block_bytes: int = BLOCK_BYTES,
    spare: list[tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None,
) -> tuple[Iterator[dict[str, np.ndarray]], tuple[str, ...], str, str]:
    """(batches, columns, reader name, reader version) for one opened source.

    ``block_bytes`` and ``spare`` (arrays to refill) go to the lackey reader (see ``read_lackey``).
    """
    if fmt == "lackey":
        from memmodel.trace import lackey

        it = lackey.read_lackey(src, acct, skip_bad=skip_bad, batch_rows=batch_rows, block_bytes=block_bytes,
                                spare=spare)
        return it, DEFAULT_COLUMNS, lackey.READER_NAME, lackey.READER_VERSION
    if fmt in ("perf-mem-raw", "perf-script"):
        from memmodel.trace import perf

        it, cols = perf.read_perf(src, fmt, acct, skip_bad=skip_bad, batch_rows=batch_rows)
        return it, cols, perf.READER_NAME + ":" + fmt, perf.READER_VERSION
    raise TraceError(f"{src.name}: unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


def _same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two paths name the same file (however they are spelt; false if either is missing)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def is_parquet(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a Parquet file (by its magic bytes ``PAR1``)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"PAR1"
    except OSError:
        return False


# --------------------------------------------------------------------------------------------------
# public API


def iter_batches(
    path: str | os.PathLike[str],
    columns: tuple[str, ...] | list[str] = DEFAULT_COLUMNS,
    batch_rows: int = 1 << 20,
    format: str | None = None,
    skip_bad: bool = False,
) -> Iterator[dict[str, np.ndarray]]:
    """Stream a trace as numpy batches, in exact record order.

    Works on a store Parquet file or on a raw trace (lackey / perf text, optionally .gz/.xz/.zst,
    format auto-detected unless ``format`` is given), parsed on the fly with bounded memory.

    Args:
        path: the trace file.
        columns: columns to return (``kind`` uint8 codes, ``gva`` uint64 bytes, ``size`` uint64 bytes,
            and optional columns the source has); a column the source lacks raises ``TraceError``.
            A schema-v1 store's uint16 ``size`` is returned as uint64.
        batch_rows: records per batch (the last one may be shorter); every batch holds new arrays
            (from Parquet they may be read-only views of the decoded column).
        format: force a raw text format (one of :data:`FORMATS`).
        skip_bad: count bad lines of raw traces as skipped instead of raising.

    Yields:
        ``{column: ndarray}`` with equal lengths.
    """
    import numpy as np

    from memmodel.trace.accounting import Accounting

    cols = tuple(columns)
    if is_parquet(path):
        pf = _open_store(path)
        have = set(pf.schema_arrow.names)
        missing = [c for c in cols if c not in have]
        if missing:
            raise TraceError(f"{path}: store file has no column(s) {missing}; it has {sorted(have)}")
        for rb in _store_batches(pf, path, batch_rows, list(cols)):
            b = {c: rb.column(i).to_numpy(zero_copy_only=False) for i, c in enumerate(cols)}
            if "size" in b and b["size"].dtype != np.uint64:  # schema v1 stored uint16
                b["size"] = b["size"].astype(np.uint64)
            yield b
        return
    fmt = format or detect_format(path)
    src = Source(path)
    acct = Accounting(name=str(path))
    try:
        it, have_cols, _, _ = _open_reader(src, fmt, acct, skip_bad, batch_rows)
        missing = [c for c in cols if c not in have_cols]
        if missing:
            raise TraceError(f"{path}: a {fmt} trace has no column(s) {missing}; it has {list(have_cols)}")
        for batch in it:
            yield {c: batch[c] for c in cols}
        acct.check()
    finally:
        src.close()


def _not_complete(path: str | os.PathLike[str], exc: BaseException) -> TraceError:
    from memmodel.errors import shorten

    why = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
    return TraceError(
        f"{path}: is not a complete trace store (a Parquet file cut short or damaged, e.g. the temporary "
        f"file of an interrupted ingest; ingest the trace again): {shorten(why)}"
    )


def _open_store(path: str | os.PathLike[str]) -> Any:
    """``pq.ParquetFile`` of a store, or :class:`TraceError` if its footer is missing or damaged."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise _not_complete(path, exc) from None


def _store_batches(pf: Any, path: str | os.PathLike[str], batch_rows: int, cols: list[str]) -> Iterator[Any]:
    """Record batches of a store; a damaged page or row group is a :class:`TraceError`, not a traceback."""
    import pyarrow as pa

    it = pf.iter_batches(batch_size=batch_rows, columns=cols)
    while True:
        try:
            rb = next(it)
        except StopIteration:
            return
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise _not_complete(path, exc) from None
        yield rb


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``memmodel`` metadata document of a store file (see module doc).

    Raises:
        TraceError: if the file is not Parquet or was not written by memmodel.
    """
    if not is_parquet(path):
        raise TraceError(f"{path}: not a Parquet store file (no PAR1 magic)")
    md = _open_store(path).metadata.metadata or {}
    if METADATA_KEY not in md:
        raise TraceError(f"{path}: Parquet file has no memmodel metadata (not written by `memmodel ingest`)")
    return json.loads(md[METADATA_KEY])  # type: ignore[no-any-return]


def trace_identity(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Identity of a trace: ``path``, ``bytes``, ``sha256`` of the file itself.

    For a store file, also ``sources`` (the recorded identity of every source it was ingested
    from), ``records`` and ``memmodel_version`` from its metadata.
    """
    ident: dict[str, Any] = file_sha256(path)
    if is_parquet(path):
        md = read_metadata(path)
        ident["sources"] = [s["identity"] for s in md.get("inputs", [])]
        ident["records"] = md.get("records")
        ident["memmodel_version"] = md.get("memmodel_version")
        ident["kind"] = "store"
    else:
        ident["kind"] = "raw"
    return ident


def _writer_options() -> dict[str, Any]:
    """``pq.ParquetWriter`` settings of every store file (ingest and :func:`write_store`).

    zstd level 1, no dictionaries; ``kind`` and ``size`` as ``BYTE_STREAM_SPLIT`` (their few
    distinct values leave all but one byte stream constant, which zstd removes), ``gva`` and the
    optional perf columns PLAIN; min/max statistics on ``kind`` and ``size`` only.

    Why (measured on the 35.25 M records of the 493.6 MB pchase benchmark text, 1 Mi rows per row
    group): the dictionary pages used before cost 0.33 s for ``kind`` and 0.35 s for ``size`` of the
    writer's 0.93 s (hashing every value, then RLE-packing the indices); byte stream split costs
    0.09 s and 0.17 s, so the whole write takes 0.66 s; the file is as small (21.7 MB, was 21.9 MB)
    and reads as fast (``iter_batches`` 0.34 s, polars 1.1 s, was 2.5 s). ``gva`` stays PLAIN: byte
    stream split (0.49 s, 24.1 MB) and DELTA_BINARY_PACKED (0.74 s, 45.9 MB) are slower and larger
    than PLAIN + zstd (0.35 s, 21.4 MB). Reading ``BYTE_STREAM_SPLIT`` integers needs pyarrow >= 16.

    Pages of 128 Ki rows (1 MiB of ``gva``), encoded 64 Ki values at a time: pyarrow's default of at
    most 20,000 rows per page made 5,500 pages, each with a new zstd context (64 ms of the writer's
    CPU in a profile of the whole command); the write then takes 0.43-0.47 s of CPU instead of 0.57
    (the same records: 21.3 MB, ``iter_batches`` 0.25-0.35 s).
    The writer holds no clock or random state: the same records give the same bytes.
    """
    import inspect

    import pyarrow.parquet as pq

    opts: dict[str, Any] = {
        "compression": "zstd",
        "compression_level": 1,
        "use_dictionary": False,
        "column_encoding": {"kind": "BYTE_STREAM_SPLIT", "size": "BYTE_STREAM_SPLIT"},
        "write_statistics": ["kind", "size"],
        "write_batch_size": 64 << 10,
    }
    # pyarrow >= 23 takes the row cap (the C++ writer's 20,000-row default came in pyarrow 22)
    if "max_rows_per_page" in inspect.signature(pq.ParquetWriter.__init__).parameters:
        opts["max_rows_per_page"] = 128 << 10
    return opts


def _is_regular_file(p: object) -> TypeGuard[str | os.PathLike[str]]:
    """Whether ``p`` is a path to a regular file (one that can be read twice: not a pipe)."""
    if not isinstance(p, str | os.PathLike):
        return False
    try:
        return stat.S_ISREG(os.stat(p).st_mode)
    except OSError:
        return False


def ingest(
    inputs: list[str | os.PathLike[str]] | list[str] | list[Path],
    out: str | os.PathLike[str],
    format: str | None = None,
    skip_bad: bool = False,
    progress: bool = False,
    batch_rows: int = 1 << 20,
    block_bytes: int | None = None,
    _streams: list[tuple[IO[bytes], str]] | None = None,
    _on_progress: Callable[[int, int], None] | None = None,
) -> IngestSummary:
    """Parse one or more raw traces (concatenated in order) into one store Parquet file.

    The same inputs with the same ``batch_rows`` give a byte-identical file (whatever ``block_bytes``).

    Args:
        inputs: raw trace paths (lackey / perf text, optionally compressed).
        out: the Parquet file to write (replaced atomically at the end).
        format: force the format of every input (default: detect each from its content).
        skip_bad: count bad lines as ``skipped["bad_line"]`` instead of raising.
        progress: show a rich progress bar (only when stdout is a terminal).
        batch_rows: records per row group.
        block_bytes: text read and parsed at a time by the lackey reader (bytes; it changes memory and
            speed, not the output); default :data:`~memmodel.trace.source.FILE_BLOCK_BYTES` for a
            regular file (hashed aside), :data:`~memmodel.trace.source.BLOCK_BYTES` for a pipe.

    Returns:
        The :class:`IngestSummary`; its line accounting is reconciled (checked, else ``TraceError``).

    Raises:
        TraceError: unreadable or bad input (file, line, text, expected), an input file that changed
            while it was read, or inputs with different column sets.
    """
    t0 = time.perf_counter()
    out = Path(out)
    for inp in inputs:
        if _same_file(inp, out):
            raise TraceError(f"{out}: is also an input of this ingest; writing it would destroy the input: "
                             "give another -o file")
    from memmodel.io import check_output, commit

    check_output(out, "trace store")  # before the long parse: the directory exists and is writable
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    sources: list[tuple[str | os.PathLike[str] | IO[bytes], str]] = [(p, str(p)) for p in inputs]
    if _streams:
        sources += [(s, n) for s, n in _streams]
    if not sources:
        raise TraceError("no input traces given")
    total_bytes = sum(os.path.getsize(p) for p, _ in sources if isinstance(p, str | os.PathLike))

    from concurrent.futures import ThreadPoolExecutor

    # Regular files are hashed by a background thread from here on, so the hashing overlaps the imports
    # below (numpy, pyarrow: about 0.3 s of one core, measured in the whole `memmodel ingest` command)
    # and then the parse, instead of adding to the parser's critical path. Pipes are hashed as read.
    hash_pool = ThreadPoolExecutor(max_workers=1)
    hashes = [FileHash(p, hash_pool) if _is_regular_file(p) else None for p, _ in sources]
    writer: Any = None
    pool: Any = None
    bar = None
    try:
        import numpy as np
        import pyarrow as pa
        import pyarrow.parquet as pq

        from memmodel._version import __version__
        from memmodel.trace.accounting import Accounting
        from memmodel.trace.schema import SCHEMA_VERSION, schema_for

        on_progress = _on_progress
        if progress and on_progress is None:
            bar = _ProgressBar(total_bytes)
            on_progress = bar.update

        schema: Any = None
        columns: tuple[str, ...] | None = None
        total = Accounting(name=str(out))
        per_input: list[dict[str, Any]] = []
        done_bytes = 0
        pending: Any = None
        written: dict[str, Any] | None = None  # the batch `pending` writes
        spare: list[tuple[Any, Any, Any]] = []  # arrays of written full batches, refilled by the reader
        periods: set[int] = set()  # sample periods seen in perf input (two are enough to know it varies)
        # the Parquet writer runs in this thread while the main thread parses the next batch
        pool = ThreadPoolExecutor(max_workers=1)
        for (p, name), file_hash in zip(sources, hashes, strict=True):
            base = done_bytes

            def _cb(n: int, base: int = base) -> None:
                if on_progress is not None:
                    on_progress(base + n, total_bytes)

            src = Source(p, name=name, progress=_cb if on_progress else None, file_hash=file_hash)
            try:
                fmt = format if format is not None else detect_format_lines(_peek_lines(src), name)
                acct = Accounting(name=name)
                bb = block_bytes or (FILE_BLOCK_BYTES if file_hash is not None else BLOCK_BYTES)
                it, cols, rname, rversion = _open_reader(src, fmt, acct, skip_bad, batch_rows, bb, spare)
                if columns is None:
                    columns = cols
                    schema = schema_for([c for c in cols if c not in DEFAULT_COLUMNS])
                    writer = pq.ParquetWriter(tmp, schema, **_writer_options())
                elif cols != columns:
                    raise TraceError(
                        f"{name}: its columns {list(cols)} differ from the first input's {list(columns)}; "
                        "ingest inputs of different formats into separate store files"
                    )
                for batch in it:
                    if "period" in batch and len(periods) < 2:
                        periods.update(int(x) for x in np.unique(batch["period"])[:2])
                    rb = pa.record_batch(
                        [pa.array(batch[c], type=schema.field(c).type) for c in columns], schema=schema
                    )
                    if pending is not None:
                        pending.result()
                        # each write_batch call encodes and writes its row groups before it returns, so
                        # the written batch's arrays are free (the record batch only borrowed them)
                        # (only the lackey reader refills arrays; two spare sets are all it ever needs)
                        if fmt == "lackey" and written is not None and len(written["kind"]) == batch_rows \
                                and len(spare) < 2:
                            spare.append((written["kind"], written["gva"], written["size"]))
                    pending = pool.submit(writer.write_batch, rb, row_group_size=batch_rows)
                    written = batch
                src.finish()
            finally:
                src.close()
            acct.check()
            acct.warn_if_no_translations()
            done_bytes += src.identity["bytes"]
            per_input.append(
                {
                    "identity": src.identity,
                    "format": fmt,
                    "reader": rname,
                    "reader_version": rversion,
                    "accounting": acct.to_dict(),
                }
            )
            total.merge(acct)
        if pending is not None:
            pending.result()
        total.check()
        seconds = time.perf_counter() - t0
        summary = IngestSummary(
            inputs=per_input,
            out=str(out),
            lines=total.lines,
            records=total.records,
            by_kind=dict(total.by_kind),
            skipped=dict(total.skipped),
            non_records=dict(total.non_records),
            footer_check=total.footer_check(),
            warnings=list(total.warnings),
            seconds=seconds,
            mb_per_s=done_bytes / 1e6 / seconds if seconds > 0 else 0.0,
            records_per_s=total.records / seconds if seconds > 0 else 0.0,
            input_bytes=done_bytes,
            columns=list(columns or ()),
            notes=dict(total.notes),
            unmapped_bytes=total.unmapped_bytes,
        )
        doc = {
            "memmodel_version": __version__,
            "schema": SCHEMA_VERSION,
            "records": total.records,
            "inputs": per_input,
            "accounting": total.to_dict(),
        }
        if any(i["format"].startswith("perf") for i in per_input):
            # perf mem records are samples (one access in 10^3-10^5): replaying them is not the program
            doc.update(sampled_metadata(periods))
        writer.add_key_value_metadata({METADATA_KEY: json.dumps(doc).encode()})
        writer.close()
        writer = None
        commit(tmp, out, "trace store")
        return summary
    except OSError as exc:  # reads fail as TraceError; an OSError here is the output (disk full...)
        from memmodel.io import output_error

        raise output_error(exc, out, "trace store", out.exists()) from None
    finally:
        for h in hashes:
            if h is not None:
                h.cancel()  # a no-op once done; after a failure, stop reading the inputs
        hash_pool.shutdown(wait=True, cancel_futures=True)
        if pool is not None:
            pool.shutdown(wait=True)
        if writer is not None:
            writer.close()
        if tmp.exists():
            tmp.unlink()
        if bar is not None:
            bar.close()


def write_store(
    out: str | os.PathLike[str],
    records: Any,
    source: str = "<arrays>",
    batch_rows: int = 1 << 20,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write in-memory records (a polars/pandas frame or a mapping of arrays) as a store file.

    For synthetic traces, traces filtered in polars, or converters: the result is read like any
    ingested trace (by path, so sweep workers can share it). The metadata records ``source``, the
    record count and a sha256 of the column bytes in place of a source file's identity.

    Args:
        out: the Parquet file to write (replaced atomically).
        records: columns ``kind`` (0=I, 1=L, 2=S, 3=M, 4=U), ``gva``, ``size`` (bytes; a ``U``'s unmap
            length) and optional schema columns.
        source: a name for where the records came from.
        batch_rows: records per row group.

    Returns:
        The metadata document written.
    """
    import hashlib

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from memmodel._version import __version__
    from memmodel.trace.accounting import Accounting
    from memmodel.trace.schema import FIELD_BY_NAME, KIND_NAMES, KIND_U, SCHEMA_VERSION, schema_for

    names = [c for c in FIELD_BY_NAME if c in records]
    missing = [c for c in DEFAULT_COLUMNS if c not in names]
    if missing:
        raise TraceError(f"{source}: records have no column(s) {missing}")
    schema = schema_for([c for c in names if c not in DEFAULT_COLUMNS])
    cols = {f.name: np.ascontiguousarray(np.asarray(records[f.name]), dtype=f.type.to_pandas_dtype())
            for f in schema}
    n = int(cols["kind"].shape[0])
    if any(c.shape[0] != n for c in cols.values()):
        raise TraceError(f"{source}: columns have different lengths")
    if n and int(cols["kind"].max()) > KIND_U:
        raise TraceError(f"{source}: column 'kind' holds codes other than 0..4 (I, L, S, M, U)")
    digest = hashlib.sha256()
    for f in schema:
        digest.update(cols[f.name].tobytes())
    by_kind = {name: int(np.count_nonzero(cols["kind"] == code)) for code, name in enumerate(KIND_NAMES)}
    acct = Accounting(name=source)
    is_u = cols["kind"] == KIND_U
    for a, z in zip(cols["gva"][is_u].tolist(), cols["size"][is_u].tolist(), strict=True):
        acct.unmap(a, z)
    doc = {
        "memmodel_version": __version__,
        "schema": SCHEMA_VERSION,
        "records": n,
        "inputs": [{
            "identity": {"path": source, "records": n, "sha256": digest.hexdigest()},
            "format": "arrays",
            "reader": "memmodel.trace.store.write_store",
            "reader_version": __version__,
            "accounting": {"lines": n, "records": n, "by_kind": by_kind, "unmaps": by_kind["U"],
                           "unmapped_bytes": acct.unmapped_bytes, "skipped": {}, "non_records": {}},
        }],
    }
    # extra top-level keys, e.g. ``sampled`` / ``sample_period`` of `memmodel sample` output
    doc.update(metadata or {})
    from memmodel.io import atomic_output

    with atomic_output(out, "trace store") as tmp, pq.ParquetWriter(tmp, schema, **_writer_options()) as writer:
        for start in range(0, max(n, 1), batch_rows):
            end = min(n, start + batch_rows)
            writer.write_batch(
                pa.record_batch([pa.array(cols[f.name][start:end], type=f.type) for f in schema], schema=schema),
                row_group_size=batch_rows,
            )
        writer.add_key_value_metadata({METADATA_KEY: json.dumps(doc).encode()})
    return doc


def sampled_metadata(periods: set[int]) -> dict[str, Any]:
    """``sampled: true`` and ``sample_period`` of a perf store: the one period every sample has, else null.

    Args:
        periods: the distinct ``period`` values seen (empty when the source prints no period).
    """
    period = next(iter(periods)) if len(periods) == 1 else None
    return {"sampled": True, "sample_period": period, "sample_method": "perf"}


def _peek_lines(src: Source) -> list[bytes]:
    """First lines of an opened source without consuming them (the bytes are pushed back)."""
    head = src.read(256 << 10)
    src.unread(head)
    return head.splitlines()[:200]


class _ProgressBar:
    """A rich progress bar over input bytes, shown only when stdout is a terminal."""

    def __init__(self, total: int) -> None:
        import sys

        self._p: Any = None
        if sys.stdout.isatty():
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._p = Progress(
                "ingest",
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                transient=True,
            )
            self._p.start()
            self._task = self._p.add_task("ingest", total=total or None)

    def update(self, done: int, total: int) -> None:
        if self._p is not None:
            self._p.update(self._task, completed=done, total=total or None)

    def close(self) -> None:
        if self._p is not None:
            self._p.stop()
