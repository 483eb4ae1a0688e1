"""The replay-ready (compact) form of a trace: data and unmap records, each with the count of instruction
fetches right before it.

A lackey trace is mostly ``I`` records (82 % of pchase's 7.25 M records) that the model only counts
and clocks (docs/model.md sections 1 and 8). The compact form keeps every other record in order and carries
the ``I`` records as ``icount`` (uint32: how many come immediately before the record); a trace that ends
with ``I`` records keeps its last one as a row of kind ``I`` whose ``icount`` counts the others. Replaying
the compact form gives exactly the counters of the full form (the engine ticks the clock once per
counted fetch), with a fraction of the rows to read and loop over.

:func:`cached_compact_batches` keeps the compact form of a store file in a cache directory keyed by the
store's content (sha256), so that every later replay of that store — a sweep of 100 configs, a second
``compare`` — reads raw arrays instead of decoding Parquet. The cache is an optimisation only: when it
cannot be written (read-only or full disk) the form is computed on the fly, and nothing else changes.

The cache holds the form *packed* (:func:`pack`): per record its ``gva`` (uint64) and one uint32 ``meta``
(bits 0-2 kind code, bit 3 escape, bits 4-15 size, bits 16-31 icount); a record whose size or icount does
not fit (an unmap length, a run of more than 65,535 fetches) is escaped: its size and icount are the next
entries of ``esc_size``/``esc_icount``. 12 bytes per record instead of 21: a replay maps and reads 43 %
fewer bytes (the mapping's page faults showed as ~6 ms of a 25 ms replay of pchase). The engine reads
the packed form directly (``Replay.feed_packed``); :func:`unpack` gives the plain columns back.

An entry may also keep how many distinct 4 KiB pages the trace translates (:func:`remember_pages`, after
its first replay that counted them), so later replays size their per-page tables at once
(:func:`pages_hint`; speed only).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from memmodel.trace.schema import KIND_I

#: Columns of a compact batch.
COMPACT_COLUMNS = ("kind", "gva", "size", "icount")
#: Columns of a packed batch (the cache's layout; see the module doc).
PACKED_COLUMNS = ("gva", "meta", "esc_size", "esc_icount")
#: Bump when the layout of cache files changes (old files are then ignored). 2: the packed layout.
CACHE_VERSION = 2
#: Bits of ``meta`` in the packed form (the engine core reads the same layout: memmodel/engine/_core.c).
META_KIND_MASK = 0x7
META_ESCAPE = 0x8
META_SIZE_SHIFT, META_SIZE_MAX = 4, 4095
META_ICOUNT_SHIFT, META_ICOUNT_MAX = 16, 65535
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
    return _cache_folder()[0]


#: :func:`cache_dir` (as a Path and as its string) by the environment variables it is made of: building it
#: (``expanduser``, two Path objects, a join) cost ~10 us of a ~0.8 ms replay of the lifecycle trace; the
#: look-ups alone cost ~2 us. Without ``HOME`` (``~`` is then the password database's) nothing is kept.
_CACHE_DIRS: dict[tuple[str | None, str | None, str | None], tuple[Path, str]] = {}


def _cache_folder() -> tuple[Path, str]:
    """:func:`cache_dir` and its string, computed once per value of the variables it depends on."""
    env = os.environ
    key = (env.get("MEMMODEL_CACHE_DIR"), env.get("XDG_CACHE_HOME"), env.get("HOME"))
    found = _CACHE_DIRS.get(key)
    if found is not None:
        return found
    folder = (Path(key[0]) if key[0]
              else Path(key[1] or os.path.join(os.path.expanduser("~"), ".cache")) / "memmodel")
    found = (folder, str(folder))
    if key[0] or key[2] is not None:
        if len(_CACHE_DIRS) >= 64:  # bounded (a test suite sets a new folder per test)
            _CACHE_DIRS.clear()
        _CACHE_DIRS[key] = found
    return found


def _entry_key(sha256: str) -> str:
    """The cache entry of a store's content hash, as a path string (``str(cache_dir() / name)``)."""
    return os.path.join(_cache_folder()[1], f"replay-v{CACHE_VERSION}-{sha256}")


def pack(batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A compact batch (kind, gva, size, icount) in the packed form (module doc)."""
    kind = np.asarray(batch["kind"], dtype=np.uint32)
    size = np.asarray(batch["size"], dtype=np.uint64)
    icount = np.asarray(batch["icount"], dtype=np.uint32)
    esc = (size > META_SIZE_MAX) | (icount > META_ICOUNT_MAX)
    small_size = np.where(esc, 0, size).astype(np.uint32)
    small_icount = np.where(esc, 0, icount).astype(np.uint32)
    meta = (kind | (esc.astype(np.uint32) * np.uint32(META_ESCAPE)) | (small_size << np.uint32(META_SIZE_SHIFT))
            | (small_icount << np.uint32(META_ICOUNT_SHIFT)))
    return {"gva": np.asarray(batch["gva"], dtype=np.uint64), "meta": meta.astype(np.uint32),
            "esc_size": size[esc], "esc_icount": icount[esc]}


def unpack(packed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The compact columns (kind, gva, size, icount) of a packed batch."""
    meta = np.asarray(packed["meta"], dtype=np.uint32)
    esc = (meta & META_ESCAPE) != 0
    size = ((meta >> META_SIZE_SHIFT) & META_SIZE_MAX).astype(np.uint64)
    icount = (meta >> META_ICOUNT_SHIFT).astype(np.uint32)
    size[esc] = packed["esc_size"]
    icount[esc] = packed["esc_icount"]
    return {"kind": (meta & META_KIND_MASK).astype(np.uint8), "gva": np.asarray(packed["gva"], dtype=np.uint64),
            "size": size, "icount": icount}


def cached_compact_batches(store: str | os.PathLike[str], sha256: str, batch_rows: int = 1 << 20,
                           use_cache: bool = True, packed: bool = False) -> Iterator[dict[str, np.ndarray]]:
    """The compact form of a Parquet store, from the cache when present, else computed (and cached).

    Memory stays bounded by ``batch_rows``: an entry is written column by column as the form is computed,
    and read back memory-mapped.

    Args:
        store: a store file.
        sha256: the store file's content hash (``trace_identity(store)["sha256"]``): the cache key.
        batch_rows: rows per yielded batch.
        use_cache: False (or ``MEMMODEL_NO_CACHE=1``) computes the form on the fly and writes nothing.
        packed: yield batches in the packed form (:data:`PACKED_COLUMNS`, what ``Replay.feed_packed``
            reads) rather than as compact columns.
    """
    if not use_cache or os.environ.get("MEMMODEL_NO_CACHE"):
        yield from (pack(b) if packed else b for b in compact_batches(_full_batches(store, batch_rows)))
        return
    key = _entry_key(sha256)
    arrays = _load(key)
    if arrays is None:
        yield from _compute_and_save(compact_batches(_full_batches(store, batch_rows)), Path(key), packed)
        return
    n = arrays["gva"].shape[0]
    esc_row = arrays["esc_row"]
    if n <= batch_rows:  # one batch holds every escape (no search: ~3 us of a short replay)
        batch = {"gva": arrays["gva"][:], "meta": arrays["meta"][:], "esc_size": arrays["esc_size"][:],
                 "esc_icount": arrays["esc_icount"][:]}
        if n:
            yield batch if packed else unpack(batch)
        return
    for i in range(0, n, batch_rows):
        j = min(i + batch_rows, n)
        a, b = np.searchsorted(esc_row, [i, j])
        batch = {"gva": arrays["gva"][i:j], "meta": arrays["meta"][i:j],
                 "esc_size": arrays["esc_size"][a:b], "esc_icount": arrays["esc_icount"][a:b]}
        yield batch if packed else unpack(batch)


def _full_batches(store: str | os.PathLike[str], batch_rows: int) -> Iterator[dict[str, np.ndarray]]:
    """The store's full batches (kind, gva, size)."""
    from memmodel.trace.store import iter_batches

    return iter_batches(store, ("kind", "gva", "size"), batch_rows)


def drop_cached(sha256: str) -> None:
    """Remove the cache entry of the store whose content hash is ``sha256`` (if any): a damaged entry is
    recomputed on the next replay."""
    key = _entry_key(sha256)
    _MAPPED.pop(key, None)
    _PAGES.pop(key, None)
    _rmtree(Path(key))


#: The file of a cache entry that holds how many distinct 4 KiB pages the trace translates (decimal text),
#: written after the first replay that counted them (:func:`remember_pages`). Optional: an entry without it
#: replays the same, its per-page table growing as it fills.
PAGES_FILE = "pages"
#: A page count read from (or written to) an entry this process saw, by entry path (None: the entry has
#: none yet): reading the file took 20 us per replay, the memo 3 us (a replay of the lifecycle trace
#: takes ~0.6 ms).
_PAGES: dict[str, int | None] = {}
#: Counts past this are not kept (a damaged file cannot ask a replay for a huge table; the engine bounds
#: what it presizes anyway).
_PAGES_MAX = 1 << 40


def pages_hint(sha256: str) -> int | None:
    """How many distinct 4 KiB pages the store whose content hash is ``sha256`` translates, when an earlier
    replay of it counted them (:func:`remember_pages`), else None. Only a sizing hint for the next replays
    (``Replay(pages_hint=...)``): nothing they count depends on it."""
    key = _entry_key(sha256)
    if key in _PAGES:
        return _PAGES[key]
    try:
        text = (Path(key) / PAGES_FILE).read_text(encoding="ascii").strip()
        pages: int | None = int(text) if text.isdigit() and int(text) < _PAGES_MAX else None
    except (OSError, ValueError):
        pages = None
    if len(_PAGES) >= 64:  # bounded, like _MAPPED
        _PAGES.clear()
    _PAGES[key] = pages
    return pages


def remember_pages(sha256: str, pages: int) -> None:
    """Keep ``pages`` (the distinct 4 KiB pages a complete replay of the store translated) in the store's
    cache entry, for :func:`pages_hint`; nothing when the entry does not exist (yet) or cannot be written
    (a sizing hint only), and the file is replaced whole (written beside it, then renamed)."""
    if not 0 <= pages < _PAGES_MAX:
        return
    key = _entry_key(sha256)
    entry = Path(key)
    if not (entry / "complete").is_file():
        return
    try:
        fd, tmp = tempfile.mkstemp(dir=entry, prefix=".tmp-")
        try:
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(f"{pages}\n")
            os.replace(tmp, entry / PAGES_FILE)
        except OSError:
            os.unlink(tmp)
            raise
    except OSError:
        return
    _PAGES[key] = pages


_FILES = {"gva": np.uint64, "meta": np.uint32, "esc_size": np.uint64, "esc_icount": np.uint32, "esc_row": np.uint64}

#: Entries this process has mapped, most recent last, by entry path (at most _MAPPED_MAX): a sweep or a
#: benchmark replays one store many times, and finding, opening and mapping five files cost ~0.1 ms per
#: replay (measured on the 117 k-translation lifecycle trace, a ~1 ms replay). Safe to keep: an entry's
#: content is fixed by its name (the store's sha256 and CACHE_VERSION), and a mapping stays readable when
#: another process prunes or replaces the files. drop_cached forgets an entry.
_MAPPED: dict[str, dict[str, np.ndarray]] = {}
_MAPPED_MAX = 8


def _map(path: Path, dtype: type, n: int) -> np.ndarray:
    """The first ``n`` items of ``dtype`` in ``path``, memory-mapped read-only (a plain ``mmap`` under a
    numpy view: ``np.memmap`` cost ~80 us per file, a visible share of replaying a small trace)."""
    import mmap

    with open(path, "rb") as f:
        m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    return np.frombuffer(m, dtype=dtype, count=n)


def _load(key: str) -> dict[str, np.ndarray] | None:
    """The cached columns of the entry at path ``key``, memory-mapped, or None when absent or incomplete
    (then recomputed)."""
    arrays = _MAPPED.pop(key, None)
    if arrays is None:
        arrays = _load_files(Path(key))
        if arrays is None:
            return None
        while len(_MAPPED) >= _MAPPED_MAX:
            del _MAPPED[next(iter(_MAPPED))]
    _MAPPED[key] = arrays
    return arrays


def _load_files(entry: Path) -> dict[str, np.ndarray] | None:
    """The entry's files, memory-mapped (marked most recently used), or None when absent or incomplete."""
    try:
        if not (entry / "complete").is_file():
            return None
        counts = {c: (entry / f"{c}.bin").stat().st_size // np.dtype(t).itemsize for c, t in _FILES.items()}
        if counts["gva"] != counts["meta"] or len({counts["esc_size"], counts["esc_icount"], counts["esc_row"]}) != 1:
            return None
        arrays = {c: (_map(entry / f"{c}.bin", t, counts[c]) if counts[c] else np.zeros(0, dtype=t))
                  for c, t in _FILES.items()}
        os.utime(entry)  # most recently used: pruned last
    except (OSError, ValueError):
        return None
    return arrays


def _compute_and_save(batches: Iterator[dict[str, np.ndarray]], entry: Path,
                      packed: bool = False) -> Iterator[dict[str, np.ndarray]]:
    """Yield the batches (packed or not) while writing them, packed, to a new cache entry (a temp folder
    renamed when complete). A write failure (read-only or full disk) only drops the entry: the batches
    still come through.
    """
    tmp: Path | None = None
    files: dict[str, Any] = {}
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=entry.parent, prefix=".tmp-"))
        files = {c: open(tmp / f"{c}.bin", "wb") for c in _FILES}  # noqa: SIM115
    except OSError:
        tmp = None
    ok = tmp is not None
    rows = 0
    try:
        for b in batches:
            p = pack(b)
            if ok:
                try:
                    esc_row = (np.flatnonzero(p["meta"] & META_ESCAPE) + rows).astype(np.uint64)
                    for c, t in _FILES.items():
                        files[c].write(np.ascontiguousarray(esc_row if c == "esc_row" else p[c], dtype=t).tobytes())
                except OSError:
                    ok = False
            rows += int(b["kind"].shape[0])
            yield p if packed else b
        if ok and tmp is not None:
            for f in files.values():
                f.close()
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
            f.close()
        if tmp is not None:
            _rmtree(tmp)


def _rmtree(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def _entry_size(entry: Path) -> int:
    return sum(p.stat().st_size for p in entry.iterdir() if p.is_file())


def _prune(folder: Path, limit: int) -> None:
    """Drop the least recently used entries until the folder holds at most ``limit`` bytes (never the newest)."""
    entries = sorted((p.stat().st_mtime, _entry_size(p), p) for p in folder.glob("replay-v*-*") if p.is_dir())
    total = sum(size for _, size, _ in entries)
    for _, size, p in entries[:-1]:
        if total <= limit:
            break
        _rmtree(p)
        total -= size
