"""The replay-ready (compact) form of a trace: data and unmap records, each with the count of instruction
fetches right before it.

A lackey trace is mostly ``I`` records (82 % of pchase's 7.25 M records) that the model only counts
and clocks (MODEL.md sections 1 and 8). The compact form keeps every other record in order and carries
the ``I`` records as ``icount`` (uint32: how many come immediately before the record); a trace that ends
with ``I`` records keeps its last one as a row of kind ``I`` whose ``icount`` counts the others. Replaying
the compact form gives exactly the counters of the full form (the engine ticks the clock once per
counted fetch), with a fraction of the rows to read and loop over.

:func:`cached_compact_batches` keeps the compact form of a store file in a cache directory keyed by the
store's content (sha256), so that every later replay of that store — a sweep of 100 configs, a second
``compare`` — reads raw arrays instead of decoding Parquet. The cache is an optimisation only: when it
cannot be written (read-only or full disk) the form is computed on the fly, and nothing else changes.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np

from memmodel.trace.schema import KIND_I

#: Columns of a compact batch.
COMPACT_COLUMNS = ("kind", "gva", "size", "icount")
#: Bump when the layout of cache files changes (old files are then ignored).
CACHE_VERSION = 1
#: Default bound of the cache directory (bytes); the oldest files go first.
DEFAULT_CACHE_LIMIT = 4 << 30
_U32_MAX = (1 << 32) - 1


def compact_batches(batches: Iterable[Mapping[str, np.ndarray]]) -> Iterator[dict[str, np.ndarray]]:
    """Turn full batches (``kind``, ``gva``, ``size``) into compact ones (plus ``icount``), in order.

    Invariants: the sum of ``icount`` plus the ``I`` rows equals the ``I`` records of the input; every
    non-``I`` record appears once, in order; batches never come out empty.
    """
    pending = 0  # I records seen but not yet attached to a row
    last_i: tuple[int, int] | None = None  # the last I record (gva, size), for a trailing row
    for b in batches:
        kind = np.asarray(b["kind"])
        n = kind.shape[0]
        if n == 0:
            continue
        idx = np.flatnonzero(kind != KIND_I)
        if idx.size == 0:
            pending += n
            last_i = (int(b["gva"][n - 1]), int(b["size"][n - 1]))
            continue
        gaps = np.diff(idx, prepend=-1) - 1
        gaps[0] += pending
        if int(gaps.max()) > _U32_MAX:  # more than 4 G fetches between two data records: keep full rows
            full = {"kind": kind, "gva": np.asarray(b["gva"], dtype=np.uint64),
                    "size": np.asarray(b["size"], dtype=np.uint64), "icount": np.zeros(n, dtype=np.uint32)}
            if pending:
                yield from _pending_rows(pending, last_i)
            yield full
            pending = 0  # the batch went out whole, its trailing I records included
            continue
        yield {"kind": kind[idx], "gva": np.asarray(b["gva"], dtype=np.uint64)[idx],
               "size": np.asarray(b["size"], dtype=np.uint64)[idx], "icount": gaps.astype(np.uint32)}
        pending = n - 1 - int(idx[-1])
        if pending:
            last_i = (int(b["gva"][n - 1]), int(b["size"][n - 1]))
    if pending:
        yield from _pending_rows(pending, last_i)


def _pending_rows(pending: int, last_i: tuple[int, int] | None) -> Iterator[dict[str, np.ndarray]]:
    """``pending`` trailing I records as I rows (one per 4 G fetches), the last one carrying its record."""
    gva, size = last_i if last_i is not None else (0, 1)
    rows = []
    while pending:
        take = min(pending, _U32_MAX + 1)
        rows.append(take - 1)
        pending -= take
    yield {"kind": np.full(len(rows), KIND_I, dtype=np.uint8), "gva": np.full(len(rows), gva, dtype=np.uint64),
           "size": np.full(len(rows), size, dtype=np.uint64), "icount": np.array(rows, dtype=np.uint32)}


def cache_dir() -> Path:
    """Where compact forms are cached: ``$MEMMODEL_CACHE_DIR``, else ``$XDG_CACHE_HOME/memmodel``, else
    ``~/.cache/memmodel``."""
    if os.environ.get("MEMMODEL_CACHE_DIR"):
        return Path(os.environ["MEMMODEL_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "memmodel"


def cached_compact_batches(store: str | os.PathLike[str], sha256: str, batch_rows: int = 1 << 20,
                           use_cache: bool = True) -> Iterator[dict[str, np.ndarray]]:
    """The compact form of a Parquet store, from the cache when present, else computed (and cached).

    Memory stays bounded by ``batch_rows``: an entry is written column by column as the form is computed,
    and read back memory-mapped.

    Args:
        store: a store file.
        sha256: the store file's content hash (``trace_identity(store)["sha256"]``): the cache key.
        batch_rows: rows per yielded batch.
        use_cache: False (or ``MEMMODEL_NO_CACHE=1``) computes the form on the fly and writes nothing.
    """
    from memmodel.trace.store import iter_batches

    full = iter_batches(store, ("kind", "gva", "size"), batch_rows)
    if not use_cache or os.environ.get("MEMMODEL_NO_CACHE"):
        yield from compact_batches(full)
        return
    entry = cache_dir() / f"replay-v{CACHE_VERSION}-{sha256}"
    arrays = _load(entry)
    if arrays is None:
        yield from _compute_and_save(compact_batches(full), entry)
        return
    n = arrays["kind"].shape[0]
    for i in range(0, n, batch_rows):
        yield {c: arrays[c][i : i + batch_rows] for c in COMPACT_COLUMNS}


_DTYPES = {"kind": np.uint8, "gva": np.uint64, "size": np.uint64, "icount": np.uint32}


def _load(entry: Path) -> dict[str, np.ndarray] | None:
    """The cached columns, memory-mapped, or None when absent or incomplete (then recomputed)."""
    try:
        if not (entry / "complete").is_file():
            return None
        sizes = {c: (entry / f"{c}.bin").stat().st_size // np.dtype(_DTYPES[c]).itemsize for c in COMPACT_COLUMNS}
        if len(set(sizes.values())) != 1:
            return None
        n = sizes["kind"]
        arrays = {c: (np.memmap(entry / f"{c}.bin", dtype=_DTYPES[c], mode="r", shape=(n,)) if n
                      else np.zeros(0, dtype=_DTYPES[c])) for c in COMPACT_COLUMNS}
        os.utime(entry)  # most recently used: pruned last
    except (OSError, ValueError):
        return None
    return arrays


def _compute_and_save(batches: Iterator[dict[str, np.ndarray]], entry: Path) -> Iterator[dict[str, np.ndarray]]:
    """Yield the batches while writing them to a new cache entry (a temp folder renamed when complete).

    A write failure (read-only or full disk) only drops the entry: the batches still come through.
    """
    tmp: Path | None = None
    files: dict[str, object] = {}
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=entry.parent, prefix=".tmp-"))
        files = {c: open(tmp / f"{c}.bin", "wb") for c in COMPACT_COLUMNS}  # noqa: SIM115
    except OSError:
        tmp = None
    ok = tmp is not None
    try:
        for b in batches:
            if ok:
                try:
                    for c in COMPACT_COLUMNS:
                        files[c].write(np.ascontiguousarray(b[c], dtype=_DTYPES[c]).tobytes())  # type: ignore[attr-defined]
                except OSError:
                    ok = False
            yield b
        if ok and tmp is not None:
            for f in files.values():
                f.close()  # type: ignore[attr-defined]
            (tmp / "complete").write_bytes(b"")
            if entry.exists():
                _rmtree(entry)
            os.replace(tmp, entry)
            tmp = None
            _prune(entry.parent, int(os.environ.get("MEMMODEL_CACHE_LIMIT", DEFAULT_CACHE_LIMIT)))
    except OSError:
        pass  # an optimisation only
    finally:
        for f in files.values():
            f.close()  # type: ignore[attr-defined]
        if tmp is not None:
            _rmtree(tmp)


def _rmtree(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def _entry_size(entry: Path) -> int:
    return sum(p.stat().st_size for p in entry.iterdir() if p.is_file())


def _prune(folder: Path, limit: int) -> None:
    """Drop the least recently used entries until the folder holds at most ``limit`` bytes (never the newest)."""
    entries = sorted((p.stat().st_mtime, _entry_size(p), p) for p in folder.glob(f"replay-v{CACHE_VERSION}-*")
                     if p.is_dir())
    total = sum(size for _, size, _ in entries)
    for _, size, p in entries[:-1]:
        if total <= limit:
            break
        _rmtree(p)
        total -= size
