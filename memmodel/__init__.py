"""memmodel: what a virtual machine pays for address translation and memory setup.

The package is layered, and imports only flow downwards::

    trace  (readers, schema, Parquet store)
      -> config  (frozen dataclasses, TOML presets)
        -> engine  (numba kernels of the canonical model, no I/O)
          -> analysis  (costs, comparisons, curves, sweeps)
            -> report  (plotly figures, self-contained HTML)

``memmodel.cli`` is a thin typer front end over these layers. Heavy modules (numba, polars,
plotly, dask) are imported lazily so that ``import memmodel`` and ``memmodel --help`` stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["__version__", "simulate"]

if TYPE_CHECKING:  # pragma: no cover
    import polars as pl


def simulate(traces: Any, configs: Any, **kwargs: Any) -> pl.DataFrame:
    """Replay traces through configs; one row per (trace, config). See :func:`memmodel.analysis.api.simulate`."""
    from memmodel.analysis.api import simulate as _simulate

    return _simulate(traces, configs, **kwargs)
