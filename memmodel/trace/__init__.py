"""Trace layer: the record schema, readers for lackey and perf mem, and the Parquet trace store.

Public API (imported lazily so that ``import memmodel.trace`` stays light)::

    iter_batches(path, columns=("kind", "gva", "size"), batch_rows=1 << 20) -> Iterator[dict[str, ndarray]]
    trace_identity(path) -> dict
    read_metadata(path) -> dict
    ingest(inputs, out, format=None, skip_bad=False, progress=False) -> IngestSummary
    write_store(out, records, source="<arrays>") -> dict   # in-memory records (frame / arrays) -> store
    trace_info(path) -> dict
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["IngestSummary", "ingest", "iter_batches", "read_metadata", "trace_identity", "trace_info",
           "write_store"]

if TYPE_CHECKING:  # pragma: no cover
    from memmodel.trace.info import trace_info
    from memmodel.trace.store import IngestSummary, ingest, iter_batches, read_metadata, trace_identity, write_store


def __getattr__(name: str) -> Any:
    if name == "trace_info":
        from memmodel.trace import info

        return info.trace_info
    if name in __all__:
        from memmodel.trace import store

        return getattr(store, name)
    raise AttributeError(f"module 'memmodel.trace' has no attribute {name!r}")
