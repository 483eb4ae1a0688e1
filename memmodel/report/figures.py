"""Plotly figures of replayed runs: each function takes runs and returns a ``plotly.graph_objects.Figure``.

Runs come from :func:`memmodel.analysis.api.run` or :func:`memmodel.analysis.compare.runs_from_json`.
With runs of several traces, each series is labelled ``trace: config``. Every figure has a title,
axis titles with units and a legend; estimated quantities say "estimated" in their titles.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from memmodel.analysis.costs import estimate_run

if TYPE_CHECKING:  # pragma: no cover
    import plotly.graph_objects as go

    from memmodel.analysis.api import Run

MIB: Final = float(1 << 20)
#: One colour per config, in run order (plotly's "Plotly" qualitative palette, then "D3").
PALETTE: Final = (
    "#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#FFA15A", "#19D3F3", "#FF6692", "#B6E880", "#FF97FF",
    "#FECB52", "#1F77B4", "#8C564B",
)
TEMPLATE: Final = "plotly_white"


def _labels(runs: Sequence[Run]) -> list[str]:
    traces = {r.trace for r in runs}
    if len(traces) <= 1:
        return [r.config.name for r in runs]
    return [f"{Path(r.trace).name}: {r.config.name}" for r in runs]


def _layout(fig: go.Figure, title: str, xtitle: str, ytitle: str, **kw: Any) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0.01, "xanchor": "left"},
        template=TEMPLATE,
        legend_title_text=kw.pop("legend_title_text", "config"),
        margin={"l": 70, "r": 20, "t": 60, "b": 60},
        height=kw.pop("height", 420),
        **kw,
    )
    fig.update_xaxes(title_text=xtitle)
    fig.update_yaxes(title_text=ytitle)
    return fig


def loads_per_walk(runs: Sequence[Run]) -> go.Figure:
    """Distribution of page-table loads per walk (fraction of each config's walks), grouped bars."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for i, (r, label) in enumerate(zip(runs, _labels(runs), strict=True)):
        h = np.asarray(r.result.walk_hist, dtype=np.float64)
        total = h.sum()
        if total == 0:
            continue
        x = np.nonzero(h)[0]
        fig.add_bar(x=x, y=h[x] / total, name=label, marker_color=PALETTE[i % len(PALETTE)],
                    customdata=h[x].astype(np.int64),
                    hovertemplate="%{x} loads: %{y:.2%} of walks (%{customdata:,} walks)<extra>" + label + "</extra>")
    fig.update_layout(barmode="group", bargap=0.15)
    fig.update_yaxes(tickformat=".0%")
    fig.update_xaxes(dtick=1)
    return _layout(fig, "Page-table loads per walk (distribution)", "loads per walk (guest + host page-table loads)",
                   "share of walks")


def tlb_outcomes(runs: Sequence[Run]) -> go.Figure:
    """Where each translation was resolved: L1 TLB hit, L2 TLB hit or page walk (stacked fractions)."""
    import plotly.graph_objects as go

    labels = _labels(runs)
    parts = (("l1_hits", "L1 TLB hit", "#2E8B57"), ("l2_hits", "L2 TLB hit", "#9ACD32"),
             ("walks", "page walk", "#D62728"))
    fig = go.Figure()
    for key, name, color in parts:
        vals = [r.result.counters[key] / max(r.result.counters["accesses"], 1) for r in runs]
        counts = [r.result.counters[key] for r in runs]
        fig.add_bar(y=labels, x=vals, name=name, orientation="h", marker_color=color, customdata=counts,
                    text=[f"{v:.1%}" if v >= 0.04 else "" for v in vals], textposition="inside",
                    hovertemplate="%{y}: %{x:.2%} (%{customdata:,})<extra>" + name + "</extra>")
    fig.update_layout(barmode="stack", legend_title_text="outcome", legend_traceorder="normal")
    fig.update_xaxes(tickformat=".0%", range=[0, 1])
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, "TLB outcome of each translation", "share of translations", "config",
                   height=max(260, 60 + 45 * len(runs)), legend_title_text="outcome")


def _series_fig(runs: Sequence[Run], key: str, scale: float, title: str, ytitle: str,
                virtualized_only: bool = False) -> go.Figure:
    import plotly.graph_objects as go

    fig = go.Figure()
    for i, (r, label) in enumerate(zip(runs, _labels(runs), strict=True)):
        if virtualized_only and not r.config.virtualized:
            continue
        s = r.result.series
        x = np.concatenate([[0], s["translations"]])
        y = np.concatenate([[0], s[key]]) / scale
        fig.add_scatter(x=x, y=y, mode="lines", name=label, line={"color": PALETTE[i % len(PALETTE)], "width": 2},
                        hovertemplate="%{x:,} translations: %{y:,.3~f}<extra>" + label + "</extra>")
    return _layout(fig, title, "translations replayed", ytitle)


def walk_loads_over_time(runs: Sequence[Run]) -> go.Figure:
    """Cumulative page-table loads of walks against translations replayed."""
    return _series_fig(runs, "walk_loads", 1e6, "Page-walk loads over time (cumulative)",
                       "walk loads (millions)")


def host_backed_over_time(runs: Sequence[Run]) -> go.Figure:
    """Host memory backing the guest (MiB) against translations replayed (virtualized configs only)."""
    return _series_fig(runs, "host_backed_bytes", MIB, "Host memory backing the guest over time",
                       "host backed memory (MiB)", virtualized_only=True)


def zeroing(runs: Sequence[Run]) -> go.Figure:
    """Bytes zeroed by side (MiB) and ESTIMATED set-up and walk time by side (ms), two panels."""
    from plotly.subplots import make_subplots

    labels = _labels(runs)
    ests = [estimate_run(r) for r in runs]
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                        subplot_titles=("Bytes zeroed, by side", "Estimated time, by side and cause"))
    for key, name, color in (("guest_zeroed_bytes", "guest zeroing", "#1F77B4"),
                             ("host_zeroed_bytes", "host zeroing", "#FF7F0E")):
        fig.add_bar(x=labels, y=[r.result.counters[key] / MIB for r in runs], name=name + " (MiB)",
                    marker_color=color, legendgroup="bytes", legendgrouptitle_text="zeroed bytes",
                    hovertemplate="%{x}: %{y:,.1f} MiB<extra>" + name + "</extra>", row=1, col=1)
    parts = (("guest_zero_s", "guest zeroing", "#1F77B4"), ("host_zero_s", "host zeroing", "#FF7F0E"),
             ("guest_fault_s", "guest fault overhead", "#AEC7E8"), ("host_fault_s", "host fault / EPT exit",
                                                                  "#FFBB78"),
             ("walk_s", "page walks", "#D62728"))
    for key, name, color in parts:
        fig.add_bar(x=labels, y=[getattr(e, key) * 1e3 for e in ests], name=name + " (ms)", marker_color=color,
                    legendgroup="time", legendgrouptitle_text="estimated time",
                    hovertemplate="%{x}: %{y:,.3f} ms<extra>" + name + "</extra>", row=1, col=2)
    # left panel: guest and host bytes side by side; right panel: one stacked bar per config
    fig.update_layout(barmode="stack")
    fig.update_traces(selector={"legendgroup": "time"}, offsetgroup="t")
    fig.update_traces(selector={"name": "guest zeroing (MiB)"}, offsetgroup="g")
    fig.update_traces(selector={"name": "host zeroing (MiB)"}, offsetgroup="h")
    _layout(fig, "Zeroing and memory set-up: bytes (exact) and time (ESTIMATED)", "", "", height=460,
            legend_title_text="")
    fig.update_yaxes(title_text="zeroed (MiB)", row=1, col=1)
    fig.update_yaxes(title_text="estimated time (ms)", row=1, col=2)
    fig.update_xaxes(title_text="config", row=1, col=1)
    fig.update_xaxes(title_text="config", row=1, col=2)
    return fig


def host_fragmentation(runs: Sequence[Run]) -> go.Figure:
    """Free blocks of the host allocator by order at the end of the run (virtualized configs; log scale)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    orders = np.arange(19)
    sizes = [_order_name(int(o)) for o in orders]
    for i, (r, label) in enumerate(zip(runs, _labels(runs), strict=True)):
        if not r.config.virtualized:
            continue
        nr = np.asarray(r.result.host_nr_free, dtype=np.int64)
        fig.add_bar(x=sizes, y=np.where(nr > 0, nr, np.nan), name=label, marker_color=PALETTE[i % len(PALETTE)],
                    hovertemplate="order %{x}: %{y:,} free blocks<extra>" + label + "</extra>")
    fig.update_layout(barmode="group")
    top = max((int(np.max(r.result.host_nr_free)) for r in runs if r.config.virtualized), default=1)
    # decades only; the range starts below 1 so that orders with a single free block show a bar
    fig.update_yaxes(type="log", dtick=1, range=[np.log10(0.5), np.log10(max(top, 1) * 2)])
    return _layout(fig, "Host free memory by block size at the end of the run",
                   "buddy order (block size)", "free blocks (log scale)")


def ratios(runs: Sequence[Run], baseline: str) -> go.Figure:
    """Headline metrics of each config as a ratio to ``baseline`` (log scale; 1 = same as the baseline)."""
    import plotly.graph_objects as go

    from memmodel.analysis.compare import compare_runs

    df = compare_runs(runs, baseline=baseline)
    metrics = (("walks", "page walks"), ("walk_loads", "walk loads"), ("guest_zeroed_bytes", "guest zeroed bytes"),
               ("host_zeroed_bytes", "host zeroed bytes"), ("host_faults", "host faults"),
               ("est_setup_s", "est. set-up time"), ("est_total_s", "est. total time"))
    fig = go.Figure()
    labels = _labels(runs)
    for i, (label, row) in enumerate(zip(labels, df.iter_rows(named=True), strict=True)):
        if row["config"] == baseline:
            continue
        ys = [row[f"{m}_vs_base"] for m, _ in metrics]
        fig.add_bar(x=[n for _, n in metrics], y=[y if y else np.nan for y in ys], name=label,
                    marker_color=PALETTE[i % len(PALETTE)],
                    hovertemplate="%{x}: %{y:.3g}× " + baseline + "<extra>" + label + "</extra>")
    fig.add_hline(y=1.0, line_dash="dot", line_color="#444", annotation_text=baseline, annotation_position="top left")
    fig.update_layout(barmode="group")
    fig.update_yaxes(type="log")
    return _layout(fig, f"Each config relative to {baseline} (below 1 = less than {baseline})", "metric",
                   f"ratio to {baseline} (log scale)")


def _order_name(order: int) -> str:
    size = 4096 << order
    for unit, shift in (("G", 30), ("M", 20), ("K", 10)):
        if size >= 1 << shift:
            return f"{order} ({size >> shift}{unit})"
    return str(order)


#: The figures of a report, in order: (section id, function name).
REPORT_FIGURES: Final = (
    ("ratios", "ratios"),
    ("loads-per-walk", "loads_per_walk"),
    ("tlb-outcomes", "tlb_outcomes"),
    ("walk-loads-time", "walk_loads_over_time"),
    ("host-backed-time", "host_backed_over_time"),
    ("zeroing", "zeroing"),
    ("host-fragmentation", "host_fragmentation"),
)
