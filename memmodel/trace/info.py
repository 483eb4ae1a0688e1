"""Trace summary (``memmodel info``): records by kind, distinct pages touched, address span, unmaps.

Computed in one streaming pass over :func:`memmodel.trace.store.iter_batches` with numpy: each
batch's page numbers are reduced with ``np.unique`` and merged into a running sorted set, so
memory grows with the number of distinct pages, not with the trace length.

Page counting: an access of ``size`` bytes at ``gva`` touches the pages of its first byte
``gva`` and of its last byte ``gva + size - 1`` (an access straddling a boundary counts both;
lackey sizes are at most 512 bytes, so no access spans more than two 4 KiB pages). ``U`` (unmap)
records touch nothing: they are counted in ``unmaps`` and their 4 KiB-rounded ranges summed in
``unmapped_bytes`` (docs/model.md section 7, the engine's counters of the same names); a page unmapped
and touched again counts once in the page sets, as in the model's ``touched_bytes``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

PAGE_SHIFTS = {"4K": 12, "2M": 21, "1G": 30}


class _PageSet:
    """A growing set of page numbers (uint64), merged lazily."""

    def __init__(self) -> None:
        self._parts: list[np.ndarray] = []
        self._size = 0
        self.merged = np.empty(0, np.uint64)

    def add(self, pages: np.ndarray) -> None:
        u = np.unique(pages)
        self._parts.append(u)
        self._size += u.size
        if self._size > 4 * max(self.merged.size, 1 << 20):
            self._merge()

    def _merge(self) -> None:
        if self._parts:
            self.merged = np.unique(np.concatenate([self.merged, *self._parts]))
            self._parts = []
            self._size = 0

    def union(self, other: _PageSet) -> np.ndarray:
        self._merge()
        other._merge()
        return np.union1d(self.merged, other.merged)

    def __len__(self) -> int:
        self._merge()
        return int(self.merged.size)


def trace_info(path: str | os.PathLike[str], batch_rows: int = 1 << 20,
               progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Summarize a trace (store Parquet or raw text); ``progress(records_read)`` is called per batch.

    Returns:
        ``{"path", "records", "by_kind": {I,L,S,M,U}, "unmaps", "unmapped_bytes", "pages": {"data": {4K,2M,1G},
        "all": {4K,2M,1G}}, "data_span": {"min","max","bytes"}, "footprint_bytes":
        {"data", "all"}}``. Page counts are distinct pages; footprints are distinct 4 KiB pages
        times 4096 (bytes); the span is max last byte - min first byte + 1 of data records.
    """
    from memmodel.trace.schema import KIND_I, KIND_M, KIND_NAMES, KIND_U, unmap_range
    from memmodel.trace.store import iter_batches

    by_kind = np.zeros(len(KIND_NAMES), np.int64)
    unmapped = 0
    data_sets = {k: _PageSet() for k in PAGE_SHIFTS}
    inst_sets = {k: _PageSet() for k in PAGE_SHIFTS}
    lo: int | None = None
    hi: int | None = None
    for b in iter_batches(path, ("kind", "gva", "size"), batch_rows=batch_rows):
        kind, gva, size = b["kind"], b["gva"], b["size"]
        by_kind += np.bincount(kind, minlength=len(KIND_NAMES))[: len(KIND_NAMES)]
        if progress is not None:
            progress(int(by_kind.sum()))
        is_u = kind == KIND_U
        if is_u.any():  # rare rows: exact Python integers (a length can reach 2^64 - 1)
            for a, z in zip(gva[is_u].tolist(), size[is_u].tolist(), strict=True):
                start, end = unmap_range(a, z)
                unmapped += end - start
        last = gva + (size.astype(np.uint64) - np.uint64(1))
        is_data = (kind > KIND_I) & (kind <= KIND_M)
        for sel, sets in ((is_data, data_sets), (kind == KIND_I, inst_sets)):
            if not sel.any():
                continue
            g, e = gva[sel], last[sel]
            if sets is data_sets:
                mn, mx = int(g.min()), int(e.max())
                lo = mn if lo is None else min(lo, mn)
                hi = mx if hi is None else max(hi, mx)
            for name, shift in PAGE_SHIFTS.items():
                sh = np.uint64(shift)
                sets[name].add(np.concatenate([g >> sh, e >> sh]))
    pages_data = {k: len(v) for k, v in data_sets.items()}
    pages_all = {k: int(data_sets[k].union(inst_sets[k]).size) for k in PAGE_SHIFTS}
    return {
        "path": str(path),
        "records": int(by_kind.sum()),
        "by_kind": {n: int(by_kind[i]) for i, n in enumerate(KIND_NAMES)},
        "unmaps": int(by_kind[KIND_U]),
        "unmapped_bytes": unmapped,
        "pages": {"data": pages_data, "all": pages_all},
        "data_span": {
            "min": lo,
            "max": hi,
            "bytes": (hi - lo + 1) if lo is not None and hi is not None else 0,
        },
        "footprint_bytes": {"data": pages_data["4K"] * 4096, "all": pages_all["4K"] * 4096},
    }
