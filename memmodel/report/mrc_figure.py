"""A plotly figure of miss-ratio curves (the frame of :func:`memmodel.analysis.mrc.miss_ratio_curves`)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import plotly.graph_objects as go
    import polars as pl


def mrc_figure(frame: pl.DataFrame, title: str | None = None, log_x: bool = True,
               notes: Sequence[str] = ()) -> go.Figure:
    """Miss ratio (misses / translations) against capacity (entries), one line per (config, array, sets).

    Args:
        frame: rows with at least ``config``, ``array``, ``page_sizes``, ``sets``, ``entries``,
            ``misses``, ``accesses`` and ``miss_ratio`` (exact counts; one row per capacity).
        title: the figure title (default: the trace name).
        log_x: logarithmic capacity axis (capacities are usually a geometric grid).
        notes: sentences printed under the plot (e.g. why a config has no curve).

    Returns:
        A ``plotly.graph_objects.Figure``; hovering a point shows the exact miss count.
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in frame.sort(["config", "array", "sets", "entries"]).iter_rows(named=True):
        groups.setdefault((row["config"], row["array"], row["page_sizes"], row["sets"]), []).append(row)
    for (config, array, sizes, sets), rows in groups.items():
        assoc = "fully assoc." if sets == 1 else f"{sets} sets"
        fig.add_trace(go.Scatter(
            x=[r["entries"] for r in rows],
            y=[r["miss_ratio"] if r["accesses"] else None for r in rows],  # no translations: no point
            customdata=[[r["misses"], r["accesses"], r["ways"]] for r in rows],
            mode="lines+markers",
            line={"shape": "hv"},
            name=f"{config} · {array} ({sizes}) · {assoc}",
            hovertemplate="%{x} entries (%{customdata[2]} ways)<br>miss ratio %{y:.4f}<br>"
                          "%{customdata[0]:,} misses of %{customdata[1]:,}<extra></extra>",
        ))
    if title is None:
        traces = frame["trace"].unique().to_list() if "trace" in frame.columns and frame.height else []
        title = f"TLB miss-ratio curves: {', '.join(map(str, traces))}" if traces else "TLB miss-ratio curves"
    fig.update_layout(
        title=title,
        xaxis={"title": "TLB entries (capacity)", "type": "log" if log_x else "linear"},
        yaxis={"title": "miss ratio (misses / translations)", "rangemode": "tozero"},
        template="plotly_white",
        legend={"orientation": "h", "y": -0.2},
    )
    if notes:
        # under the legend, left-aligned: they explain missing lines, so they must not hide any
        fig.add_annotation(text="<br>".join(html.escape(n) for n in notes), xref="paper", yref="paper", x=0,
                           y=-0.45, xanchor="left", yanchor="top", showarrow=False, align="left")
        fig.update_layout(margin={"b": 140 + 18 * len(notes)})
    return fig
