"""memmodel: what a virtual machine pays for address translation and memory setup.

The package is layered, and imports only flow downwards::

    trace  (readers, schema, Parquet store)
      -> config  (frozen dataclasses, TOML presets)
        -> engine  (the canonical model, no I/O)
          -> analysis  (costs, comparisons, curves, sweeps)
            -> report  (plotly figures, self-contained HTML)

``memmodel.cli`` is a thin typer front end over these layers. Heavy modules (polars,
pyarrow, plotly, dask) are imported lazily so that ``import memmodel`` and ``memmodel --help`` stay fast.

The top level holds the three calls a notebook needs::

    import memmodel
    df = memmodel.simulate("traces/pchase.lackey.xz", ["baseline-thp", "memctl-2m"])  # exact counters
    cmp = memmodel.compare("traces/pchase.lackey.xz")            # side by side, pairs, estimates
    memmodel.report("traces/pchase.lackey.xz", "reports/demo.html")  # the HTML report
"""

# Every public name of this module is API (see __all__): no ``from __future__`` import, and the
# types of the annotations (strings) are imported for type checkers only.
import typing as _typing

if _typing.TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    import polars as pl

    from memmodel.analysis.api import ConfigLike, TraceLike

from memmodel._version import __version__

# = memmodel.config.model.DEFAULT_COMPARE_CONFIGS (spelt out: importing the config layer here would
# expose it as an attribute of the package; a test keeps the two equal)
_DEFAULT_COMPARE_CONFIGS = ("native-thp", "baseline-4k", "baseline-thp", "baseline-thp-fpr", "memctl-4k", "memctl-2m")

__all__ = ["__version__", "compare", "report", "simulate"]


def simulate(
    traces: "TraceLike | Sequence[TraceLike]",
    configs: "ConfigLike | Sequence[ConfigLike]",
    cpu: "str | None" = None,
    window: int = 10_000,
    cost: "str | Path | Mapping[str, float] | None" = None,
) -> "pl.DataFrame":
    """Replay traces through configs; one row per (trace, config) with the exact counters.

    Args:
        traces: a trace path (lackey or perf text, also compressed, or a Parquet store file), a
            frame with ``kind``/``gva``/``size`` columns, or a list of them.
        configs: a preset name (``memmodel configs`` lists them), a TOML file, a
            :class:`memmodel.config.ModelConfig`, or a list of them.
        cpu: a CPU preset overriding each config's ``cpu``.
        window: translations per time-series window.
        cost: a ``[cost]`` TOML file or a dict of ``[cost]`` keys applied to every config (changes
            only the estimated ``est_*`` columns).

    Returns:
        A polars DataFrame: trace, config, every model counter (exact), derived rates, then the
        estimated seconds ``est_*_s`` (estimates, see ``docs/costs.md``).
    """
    from memmodel.analysis.api import simulate as run_simulate

    return run_simulate(traces, configs, cpu=cpu, window=window, cost=cost)


def compare(
    traces: "TraceLike | Sequence[TraceLike]",
    configs: "ConfigLike | Sequence[ConfigLike]" = _DEFAULT_COMPARE_CONFIGS,
    baseline: str = "baseline-thp",
    cpu: "str | None" = None,
    window: "int | None" = None,
    cost: "str | Path | Mapping[str, float] | None" = None,
) -> "pl.DataFrame":
    """Replay traces through configs side by side; one row per (trace, config).

    Each memctl config is paired with the baseline its preset declares (``memctl-2m`` with
    ``baseline-thp``, ``memctl-4k`` with ``baseline-4k``): the ``paired_with`` column names it and
    ``*_vs_pair`` columns divide by it; ``*_vs_base`` columns divide by ``baseline``.

    Args:
        traces: as in :func:`simulate`.
        configs: as in :func:`simulate` (default: native THP, both baselines, baseline THP with free
            page reporting, both memctl configs).
        baseline: the config the ``*_vs_base`` ratios divide by.
        cpu: a CPU preset overriding each config's ``cpu``.
        window: translations per time-series window (default: the engine's).
        cost: as in :func:`simulate`.

    Returns:
        A polars DataFrame of exact counters, derived rates, estimates (``est_*``; totals, and per
        access and per 1000 instructions) and ratios.
    """
    from memmodel.analysis.compare import compare as run_compare

    return run_compare(traces, configs, baseline=baseline, cpu=cpu, window=window, cost=cost)


def report(
    traces: "TraceLike | Sequence[TraceLike]",
    output: "str | Path",
    configs: "ConfigLike | Sequence[ConfigLike]" = _DEFAULT_COMPARE_CONFIGS,
    baseline: str = "baseline-thp",
    cpu: "str | None" = None,
    window: "int | None" = None,
    cost: "str | Path | Mapping[str, float] | None" = None,
    fragmentation: "Sequence[float]" = (0.0, 0.9, 0.99),
    title: "str | None" = None,
) -> "Path":
    """Replay traces and write the self-contained HTML report (the answer first); returns its path.

    Args:
        traces: as in :func:`simulate`.
        output: the HTML file to write (written atomically; parent directories are created).
        configs: as in :func:`compare`.
        baseline: the config ratios fall back to when no config declares its baseline.
        cpu: a CPU preset overriding each config's ``cpu``.
        window: translations per time-series window (default: the engine's).
        cost: as in :func:`simulate`.
        fragmentation: host fragmentation values of the "when the host is fragmented" study
            (configs with 2 MiB host pages and their baselines, on a bounded host share); an empty
            sequence skips it.
        title: the page title (default: names the traces).

    Raises:
        memmodel.errors.MemmodelError: a bad trace, config or cost file, or a failed write.
    """
    from memmodel.analysis.api import run
    from memmodel.analysis.compare import fragmentation_study
    from memmodel.report.html import write_report

    runs = run(traces, configs, cpu=cpu, cost=cost) if window is None else \
        run(traces, configs, cpu=cpu, cost=cost, window=window)
    study = []
    if fragmentation:
        # the study reads each trace once more: by path, or the one frame given
        many = isinstance(traces, list | tuple)
        for trace in dict.fromkeys(r.trace for r in runs):
            source = trace if trace != "<frame>" else (None if many else traces)
            if source is not None:
                study += fragmentation_study(source, [r for r in runs if r.trace == trace], list(fragmentation),
                                             window=window)
    return write_report(runs + study, output, baseline=baseline, title=title)


# ``import memmodel.report.figures`` rebinds the name ``report`` to the subpackage, which stays
# callable as this function (memmodel/report/__init__.py).
_report_function = report

del _typing
