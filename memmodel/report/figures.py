"""Plotly figures of replayed runs: each function takes runs and returns a ``plotly.graph_objects.Figure``.

Runs come from :func:`memmodel.analysis.api.run` or :func:`memmodel.analysis.compare.runs_from_json`.
Every figure has a title, axis titles with units and a legend; estimated quantities say "estimated"
in their titles.

Colours: one colour per config, the same in every figure of a report (:func:`config_colors`), from
the Okabe-Ito palette (distinguishable with the common colour-vision deficiencies); shipped presets
always get the same colour. Line figures also give each config its own dash pattern, so that equal
series stay visible on top of each other and the figure reads in grey print. Quantities that are not
configs (TLB outcomes, causes of set-up time) use greys and hatching, never a config's colour.

With runs of several traces, figures get one panel row per trace (shared legend), so a report of
three traces stays as wide as a report of one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from memmodel.analysis.costs import estimate_run

if TYPE_CHECKING:  # pragma: no cover
    import plotly.graph_objects as go

    from memmodel.analysis.api import Run

MIB: Final = float(1 << 20)
TEMPLATE: Final = "plotly_white"

#: Okabe & Ito (2008), "Color Universal Design": fixed colours of the shipped presets.
PRESET_COLORS: Final = {
    "memctl-2m": "#0072B2",  # blue
    "memctl-4k": "#56B4E9",  # sky blue
    "baseline-thp": "#D55E00",  # vermillion
    "baseline-4k": "#E69F00",  # orange
    "baseline-thp-fpr": "#CC79A7",  # reddish purple
    "hugetlb-1g": "#009E73",  # bluish green
    "native-thp": "#000000",  # black
    "native-4k": "#999999",  # grey
}
#: Colours of other configs, in order of first appearance (Paul Tol's "muted" scheme, also safe).
EXTRA_COLORS: Final = ("#332288", "#117733", "#882255", "#44AA99", "#999933", "#AA4499", "#DDCC77", "#88CCEE",
                       "#CC6677", "#661100")
#: The old name of the palette (kept for notebooks that index it).
PALETTE: Final = tuple(PRESET_COLORS.values()) + EXTRA_COLORS
#: Dash patterns per config family: memctl solid, baselines dashed, native dotted.
_DASHES: Final = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
#: Greys for things that are not configs (TLB outcome, side, cause).
GREYS: Final = ("#DDDDDD", "#AAAAAA", "#666666", "#222222")


def base_name(run: Run) -> str:
    """The config name colours and pairings use (a fragmentation-study run carries its preset's)."""
    return str(run.extra.get("base_config", run.config.name))


def config_colors(runs: Sequence[Run]) -> dict[str, str]:
    """One colour per config name: shipped presets fixed, others in order of first appearance."""
    out: dict[str, str] = {}
    extra = iter(EXTRA_COLORS * 4)
    for r in runs:
        name = base_name(r)
        if name not in out:
            out[name] = PRESET_COLORS.get(name) or next(extra)
    return out


def config_dash(name: str) -> str:
    """A dash pattern per config family (memctl solid, baselines dashed, native dotted, others mixed)."""
    if name.startswith("memctl"):
        return "solid"
    if name.endswith("-fpr"):
        return "dashdot"
    if name.startswith("baseline"):
        return "dash"
    if name.startswith("native"):
        return "dot"
    return _DASHES[3 + sum(map(ord, name)) % 3]


def trace_names(runs: Sequence[Run]) -> list[str]:
    """The traces of ``runs`` (file names), in order of first appearance."""
    return list(dict.fromkeys(Path(r.trace).name for r in runs))


def _labels(runs: Sequence[Run]) -> list[str]:
    traces = {r.trace for r in runs}
    if len(traces) <= 1:
        return [r.config.name for r in runs]
    return [f"{Path(r.trace).name}: {r.config.name}" for r in runs]


def _by_trace(runs: Sequence[Run]) -> list[tuple[str, list[Run]]]:
    groups: dict[str, list[Run]] = {}
    for r in runs:
        groups.setdefault(Path(r.trace).name, []).append(r)
    return list(groups.items())


def _facets(runs: Sequence[Run], title: str, height_per_row: int = 380, **kw: Any) -> tuple[go.Figure, int]:
    """A figure with one row per trace (a plain figure for one trace) and its row count."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    groups = _by_trace(runs)
    if len(groups) <= 1:
        return go.Figure(), 1
    fig = make_subplots(rows=len(groups), cols=1, subplot_titles=[t for t, _ in groups],
                        vertical_spacing=min(0.12, 0.35 / len(groups)), **kw)
    return fig, len(groups)


def _layout(fig: go.Figure, title: str, xtitle: str, ytitle: str, **kw: Any) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0.01, "xanchor": "left"},
        template=TEMPLATE,
        legend_title_text=kw.pop("legend_title_text", "config"),
        margin=kw.pop("margin", {"l": 80, "r": 20, "t": 70, "b": 60}),
        height=kw.pop("height", 420),
        **kw,
    )
    fig.update_xaxes(title_text=xtitle)
    fig.update_yaxes(title_text=ytitle)
    return fig


def _rc(rows: int, i: int) -> dict[str, int]:
    return {"row": i + 1, "col": 1} if rows > 1 else {}


def loads_per_walk(runs: Sequence[Run]) -> go.Figure:
    """Distribution of page-table loads per walk (fraction of each config's walks), grouped bars."""
    colors = config_colors(runs)
    fig, rows = _facets(runs, "")
    shown: set[str] = set()
    for i, (_trace, group) in enumerate(_by_trace(runs)):
        for r in group:
            h = np.asarray(r.result.walk_hist, dtype=np.float64)
            total = h.sum()
            if total == 0:
                continue
            name = r.config.name
            x = np.nonzero(h)[0]
            fig.add_bar(x=x, y=h[x] / total, name=name, marker_color=colors[base_name(r)], legendgroup=name,
                        showlegend=name not in shown, customdata=h[x].astype(np.int64),
                        hovertemplate="%{x} loads: %{y:.2%} of walks (%{customdata:,} walks)<extra>" + name
                        + "</extra>", **_rc(rows, i))
            shown.add(name)
    fig.update_layout(barmode="group", bargap=0.15)
    fig.update_yaxes(tickformat=".0%")
    fig.update_xaxes(dtick=1)
    return _layout(fig, "Page-table loads per walk (distribution)", "loads per walk (guest + host page-table loads)",
                   "share of walks", height=80 + 340 * rows)


def tlb_outcomes(runs: Sequence[Run]) -> go.Figure:
    """Where each translation was resolved: L1 TLB hit, L2 TLB hit or page walk (stacked fractions)."""
    import plotly.graph_objects as go

    labels = _labels(runs)
    parts = (("l1_hits", "L1 TLB hit", GREYS[0], ""), ("l2_hits", "L2 TLB hit", GREYS[1], ""),
             ("walks", "page walk", GREYS[3], ""))
    fig = go.Figure()
    for key, name, color, _pattern in parts:
        counts = [int(r.result.counters[key]) for r in runs]
        vals = [n / max(int(r.result.counters["accesses"]), 1) for n, r in zip(counts, runs, strict=True)]
        text = [_share_text(v, n) for v, n in zip(vals, counts, strict=True)]
        fig.add_bar(y=labels, x=vals, name=name, orientation="h", marker_color=color,
                    marker_line={"color": "#444444", "width": 0.5}, customdata=counts,
                    text=text, textposition="inside", insidetextanchor="middle",
                    textfont={"color": "#FFFFFF" if key == "walks" else "#000000"},
                    hovertemplate="%{y}: %{x:.3%} (%{customdata:,})<extra>" + name + "</extra>")
    fig.update_layout(barmode="stack", legend_title_text="outcome", legend_traceorder="normal")
    fig.update_xaxes(tickformat=".0%", range=[0, 1])
    fig.update_yaxes(autorange="reversed")
    colors = config_colors(runs)
    # the config's colour as a swatch in its tick label (the only place this figure shows configs)
    fig.update_yaxes(tickvals=labels, ticktext=[f"{lbl} <span style='color:{colors[base_name(r)]}'>■</span>"
                                                for lbl, r in zip(labels, runs, strict=True)])
    return _layout(fig, "TLB outcome of each translation", "share of translations", "config",
                   height=max(260, 90 + 42 * len(runs)), legend_title_text="outcome",
                   margin={"l": 200 if len({r.trace for r in runs}) > 1 else 120, "r": 20, "t": 70, "b": 60})


def _share_text(v: float, n: int) -> str:
    if n == 0 or v < 0.06:
        return ""  # too narrow for a label; the hover has it
    return f"{v:.1%}"


def _series_fig(runs: Sequence[Run], key: str, scale: float, title: str, ytitle: str,
                virtualized_only: bool = False, log: bool = False) -> go.Figure:
    colors = config_colors(runs)
    fig, rows = _facets(runs, title, shared_xaxes=False)
    shown: set[str] = set()
    order = {name: k for k, name in enumerate(dict.fromkeys(r.config.name for r in runs))}
    for i, (_trace, group) in enumerate(_by_trace(runs)):
        # solid lines first and widest, dashed and dotted ones drawn over them: equal series stay visible
        for r in sorted(group, key=lambda r: config_dash(base_name(r)) != "solid"):
            if virtualized_only and not r.config.virtualized:
                continue
            s = r.result.series
            if key not in s:
                continue
            x = np.concatenate([[0], s["translations"]]).astype(np.float64)
            y = np.concatenate([[0], s[key]]).astype(np.float64) / scale
            # the series is sampled at translation windows; records after the last window (e.g. the
            # final munmap) still change the end-of-run counter: end the line on that value
            c = r.result.counters
            if key in c and c.get("accesses") is not None and (y[-1] * scale != c[key] or x[-1] != c["accesses"]):
                x = np.append(x, float(c["accesses"]))
                y = np.append(y, float(c[key]) / scale)
            if log:  # a log axis cannot show 0: start at the first window with a value
                keep = y > 0
                x, y = x[keep], y[keep]
            name = r.config.name
            dash = config_dash(base_name(r))
            fig.add_scatter(x=x, y=y, mode="lines", name=name, legendgroup=name, showlegend=name not in shown,
                            legendrank=1000 + order[name],
                            line={"color": colors[base_name(r)], "width": 4.5 if dash == "solid" else 2.5,
                                  "dash": dash},
                            hovertemplate="%{x:,} translations: %{y:,.4~f}<extra>" + name + "</extra>",
                            **_rc(rows, i))
            shown.add(name)
    if log:  # whole decades only: minor ticks labelled "2" and "5" read as values
        fig.update_yaxes(type="log", dtick=1, exponentformat="power", minor={"showgrid": True})
    return _layout(fig, title, "translations replayed", ytitle, height=80 + 340 * rows)


def walk_loads_over_time(runs: Sequence[Run]) -> go.Figure:
    """Cumulative page-table loads of walks against translations replayed (log axis: configs that
    differ by orders of magnitude stay apart, equal ones overlap with different dashes)."""
    return _series_fig(runs, "walk_loads", 1.0, "Page-walk loads over time (cumulative, log scale)",
                       "walk loads (log scale)", log=True)


def host_footprint_key(runs: Sequence[Run]) -> str:
    """The footprint series the runs have: ``host_resident_bytes`` (engines with the memory
    lifecycle) or else ``host_backed_bytes`` (cumulative; equal to the footprint without frees)."""
    if runs and all("host_resident_bytes" in r.result.series for r in runs if r.config.virtualized):
        return "host_resident_bytes"
    return "host_backed_bytes"


def host_backed_over_time(runs: Sequence[Run]) -> go.Figure:
    """Host memory backing the guest (MiB) against translations replayed (virtualized configs only)."""
    key = host_footprint_key(runs)
    if key == "host_resident_bytes":
        return _series_fig(runs, key, MIB, "Host memory backing the guest over time (resident; frees and "
                           "discards lower it)", "host resident memory (MiB)", virtualized_only=True)
    return _series_fig(runs, key, MIB, "Host memory backing the guest over time (cumulative backed bytes)",
                       "host backed memory (MiB)", virtualized_only=True)


def zeroing(runs: Sequence[Run]) -> go.Figure:
    """Bytes zeroed by side (MiB) and ESTIMATED set-up and walk time by cause (ms), two panels."""
    from plotly.subplots import make_subplots

    multi = len({r.trace for r in runs}) > 1
    x: Any = [[Path(r.trace).name for r in runs], [r.config.name for r in runs]] if multi else \
        [r.config.name for r in runs]
    ests = [estimate_run(r) for r in runs]
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                        subplot_titles=("Bytes zeroed, by side (exact)", "Estimated time, by cause"))
    for key, name, color, pattern in (("guest_zeroed_bytes", "guest zeroing", GREYS[1], ""),
                                      ("host_zeroed_bytes", "host zeroing", GREYS[3], "")):
        fig.add_bar(x=x, y=[r.result.counters[key] / MIB for r in runs], name=name + " (MiB)",
                    marker_color=color, marker_pattern_shape=pattern, legendgroup="bytes",
                    legendgrouptitle_text="zeroed bytes", offsetgroup=key,
                    text=[_mib_text(r, key) for r in runs], textposition="outside",
                    hovertemplate="%{x}: %{y:,.1f} MiB<extra>" + name + "</extra>", row=1, col=1)
    parts = (("guest_zero_s", "guest zeroing", GREYS[1], ""), ("host_zero_s", "host zeroing", GREYS[3], ""),
             ("guest_fault_s", "guest faults", GREYS[1], "/"), ("host_fault_s", "host faults / EPT exits",
                                                                  GREYS[3], "/"),
             ("walk_s", "page walks", "#FFFFFF", "x"))
    for key, name, color, pattern in parts:
        fig.add_bar(x=x, y=[getattr(e, key) * 1e3 for e in ests], name=name + " (ms)", marker_color=color,
                    marker_pattern_shape=pattern, marker_line={"color": "#222222", "width": 0.8},
                    legendgroup="time", legendgrouptitle_text="estimated time", offsetgroup="t",
                    hovertemplate="%{x}: %{y:,.3f} ms<extra>" + name + "</extra>", row=1, col=2)
    # group mode: the two byte bars of a config stand side by side; the time bars share one offset
    # group and are stacked by hand (explicit bases), since plotly cannot stack in one panel and
    # group in the other
    fig.update_layout(barmode="group")
    _layout(fig, "Zeroing and memory set-up: bytes (exact) and time (ESTIMATED)", "", "", height=480,
            legend_title_text="")
    fig.update_yaxes(title_text="zeroed (MiB)", row=1, col=1)
    fig.update_yaxes(title_text="estimated time (ms)", row=1, col=2)
    fig.update_xaxes(title_text="config", row=1, col=1)
    fig.update_xaxes(title_text="config", row=1, col=2)
    _stack(fig, ests, parts)
    return fig


def _stack(fig: go.Figure, ests: list[Any], parts: Sequence[tuple[str, str, str, str]]) -> None:
    """Stack the time bars by hand (``base``), so the byte bars next to them can stay grouped."""
    base = np.zeros(len(ests))
    for key, name, _c, _p in parts:
        vals = np.array([getattr(e, key) * 1e3 for e in ests])
        fig.update_traces(selector={"name": name + " (ms)"}, base=base.tolist())
        base = base + vals


def _mib_text(run: Run, key: str) -> str:
    """Label only what a bar cannot show: nothing zeroed ("0"), or no host at all ("—", native)."""
    if key.startswith("host") and not run.config.virtualized:
        return "—"
    return "0" if run.result.counters[key] == 0 else ""


def host_fragmentation(runs: Sequence[Run]) -> go.Figure:
    """Free blocks of the host allocator by order at the end of the run (virtualized configs; log scale)."""
    colors = config_colors(runs)
    fig, rows = _facets(runs, "")
    orders = np.arange(19)
    sizes = [_order_name(int(o)) for o in orders]
    shown: set[str] = set()
    for i, (_trace, group) in enumerate(_by_trace(runs)):
        for r in group:
            if not r.config.virtualized:
                continue
            nr = np.asarray(r.result.host_nr_free, dtype=np.int64)
            name = r.config.name
            fig.add_bar(x=sizes, y=np.where(nr > 0, nr, np.nan), name=name, marker_color=colors[base_name(r)],
                        legendgroup=name, showlegend=name not in shown,
                        hovertemplate="order %{x}: %{y:,} free blocks<extra>" + name + "</extra>", **_rc(rows, i))
            shown.add(name)
    fig.update_layout(barmode="group")
    top = max((int(np.max(r.result.host_nr_free)) for r in runs if r.config.virtualized), default=1)
    # decades only; the range starts below 1 so that orders with a single free block show a bar
    fig.update_yaxes(type="log", dtick=1, range=[np.log10(0.5), np.log10(max(top, 1) * 2)])
    return _layout(fig, "Host free memory by block size at the end of the run",
                   "buddy order (block size)", "free blocks (log scale)", height=80 + 340 * rows)


#: Metrics of the ratio chart: (column, label). Footprint uses the lifecycle counter when present.
RATIO_CHART_METRICS: Final = (
    ("walk_loads", "walk<br>loads"),
    ("walks", "page<br>walks"),
    ("guest_zeroed_bytes", "guest<br>zeroed bytes"),
    ("host_zeroed_bytes", "host<br>zeroed bytes"),
    ("host_faults", "host<br>faults"),
    ("host_resident_peak_bytes", "host footprint<br>(peak)"),
    ("host_backed_bytes", "host<br>backed bytes"),
    ("est_setup_s", "est. set-up<br>time"),
    ("est_steady_walk_ns_per_access", "est. walk time<br>per access<br>(2nd half)"),
)


def ratio_label(r: float) -> str:
    """A bar label: ``"0 (−100 %)"``, ``"−43 %"``, ``"±0 %"``, ``"+12 %"`` or ``"19,896×"``."""
    from memmodel.analysis.compare import format_change

    if r == 0:
        return "0<br>(−100 %)"  # two lines: neighbouring zero bars are narrow
    return format_change(r, 1.0)


def ratios(runs: Sequence[Run], baseline: str) -> go.Figure:
    """Each memctl config relative to the baseline its preset declares (log scale; 1 = no change).

    Configs that declare no baseline are compared with ``baseline`` instead when no pair exists.
    Ratios of 0 (e.g. no guest zeroing at all) cannot sit on a log axis: they are drawn as hatched
    stubs at the bottom of the axis and labelled "0 (−100 %)". The line at 1 carries the label
    "baseline (= 1×)"; ticks are whole decades written as multipliers.
    """
    from memmodel.analysis.compare import compare_runs, pairings

    df = compare_runs(runs, baseline=baseline)
    rows = list(df.iter_rows(named=True))
    colors = config_colors(runs)
    pairs = pairings(runs)
    main = [r for r in runs if "fragmentation" not in r.extra]
    if pairs:
        bars = [(rows[runs.index(p.memctl)], f"{p.memctl.config.name} ÷ {p.baseline.config.name}", "pair",
                 base_name(p.memctl)) for p in pairs if "fragmentation" not in p.memctl.extra]
    else:
        bars = [(rows[i], f"{r.config.name} ÷ {baseline}", "base", base_name(r)) for i, r in enumerate(main)
                if r.config.name != baseline]
    have = {c for c, _ in RATIO_CHART_METRICS if any(row[0].get(c) is not None for row in bars)}
    metrics = [(c, n) for c, n in RATIO_CHART_METRICS
               if c in have and not (c == "host_backed_bytes" and "host_resident_peak_bytes" in have)]
    values = [row[f"{c}_vs_{kind}"] for row, _l, kind, _b in bars for c, _n in metrics]
    pos = [v for v in values if v]
    lo_dec = math.floor(math.log10(min([*pos, 1.0]))) - 1
    hi_dec = math.ceil(math.log10(max([*pos, 1.0]))) + 1
    floor = 10.0 ** lo_dec
    fig, rows_n = _facets(main, "")
    traces_order = trace_names(main)
    shown: set[str] = set()
    for row, label, kind, bname in bars:
        i = traces_order.index(Path(row["trace"]).name) if rows_n > 1 else 0
        ys = [row[f"{c}_vs_{kind}"] for c, _n in metrics]
        xs = [n for _c, n in metrics]
        # bars grow from the line at 1 (base = 1; a bar's y is its length): up = more than the
        # baseline, down = less; a 0 ratio reaches just above the bottom of the axis
        plot = [None if y is None else (floor * 1.6 if y == 0 else y) - 1.0 for y in ys]
        fig.add_bar(x=xs, y=plot, base=1.0, name=label, legendgroup=label, showlegend=label not in shown,
                    marker_color=colors[bname],
                    marker_pattern_shape=["/" if y == 0 else "" for y in ys],
                    marker_line={"color": colors[bname], "width": 1},
                    text=[ratio_label(y) if y is not None else "—" for y in ys], textposition="outside",
                    textfont={"size": 11}, cliponaxis=False, constraintext="none",
                    customdata=[["—" if y is None else f"{y:.4g}"] for y in ys],
                    hovertemplate="%{x}: ratio %{customdata[0]} (%{text})<extra>" + label + "</extra>",
                    **_rc(rows_n, i))
        shown.add(label)
    ticks = [10.0 ** d for d in range(lo_dec, hi_dec + 1)]
    # the axis reaches below the zero stubs so that their two-line label stays above the tick labels
    fig.update_yaxes(type="log", range=[lo_dec - 0.6, hi_dec], tickvals=ticks,
                     ticktext=[_mult(t) for t in ticks], minor={"showgrid": False})
    for i in range(rows_n):
        ref = "" if i == 0 else str(i + 1)
        # the line at 1 is a shape (data coordinates); its label is an annotation, whose y on a log
        # axis is the decimal logarithm (log10(1) = 0), not the value
        fig.add_shape(type="line", xref=f"x{ref} domain", x0=0, x1=1, yref=f"y{ref}", y0=1, y1=1,
                      line={"color": "#222222", "width": 1.5, "dash": "dot"})
        fig.add_annotation(xref=f"x{ref} domain", x=1.0, xanchor="left", yref=f"y{ref}", y=0, yanchor="middle",
                           text="baseline<br>(= 1×)", showarrow=False, font={"size": 12, "color": "#222222"},
                           align="left", xshift=4, name="baseline-label")
    fig.update_layout(barmode="group", bargap=0.25)
    title = ("Each memctl config relative to its baseline (below 1× = less than the baseline)" if pairs
             else f"Each config relative to {baseline} (below 1× = less than {baseline})")
    height = 130 + 380 * rows_n
    _layout(fig, title, "metric" if rows_n == 1 else "", "ratio to the baseline (log scale)", height=height,
            legend_title_text="memctl ÷ baseline:" if pairs else "config ÷ baseline:",
            margin={"l": 80, "r": 90, "t": 110 + (30 if rows_n > 1 else 0), "b": 60})
    # metric names on two or three short lines, never rotated into the next panel's title; the legend
    # sits above the first panel's title
    fig.update_xaxes(tickangle=0)
    plot_px = height - 170 - (30 if rows_n > 1 else 0)
    above = 34 if rows_n == 1 else 48  # pixels: clear of the first panel's title
    fig.update_layout(legend={"orientation": "h", "x": 0, "xanchor": "left", "y": 1 + above / plot_px,
                              "yanchor": "bottom"})
    return fig


def _mult(t: float) -> str:
    if t >= 1:
        return f"{t:,.0f}×"
    return f"{t:.{-math.floor(math.log10(t))}f}×"


def fragmentation_study(runs: Sequence[Run]) -> go.Figure:
    """Walk loads per access and estimated set-up time against host fragmentation (study runs only)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    study = [r for r in runs if "fragmentation" in r.extra]
    colors = config_colors(runs)
    if not study:
        return go.Figure()
    groups = _by_trace(study)
    suffix = [f" — {t}" if len(groups) > 1 else "" for t, _ in groups]
    panels = ("walk loads per access", "4 KiB share of host faults", "est. set-up time (ms)")
    fig = make_subplots(rows=len(groups), cols=3, horizontal_spacing=0.09,
                        subplot_titles=[p + x for x in suffix for p in panels])
    shown: set[str] = set()
    order = {name: k for k, name in enumerate(dict.fromkeys(base_name(r) for r in study))}
    for i, (_t, group) in enumerate(groups):
        names = sorted(dict.fromkeys(base_name(r) for r in group), key=lambda n: config_dash(n) != "solid")
        for name in names:
            rs = sorted((r for r in group if base_name(r) == name), key=lambda r: r.extra["fragmentation"])
            fs = [f"{r.extra['fragmentation']:g}" for r in rs]
            c = [r.result.counters for r in rs]
            per = [x["walk_loads"] / x["accesses"] if x["accesses"] else None for x in c]
            fb = [x["host_pages_4k"] / x["host_faults"] if x["host_faults"] else None for x in c]
            setup = [estimate_run(r).setup_s * 1e3 for r in rs]
            dash = config_dash(name)
            style = {"color": colors[name], "dash": dash, "width": 4.5 if dash == "solid" else 2.5}
            marker = {"size": 11 if dash == "solid" else 7}
            common = {"mode": "lines+markers", "name": name, "legendgroup": name, "line": style, "marker": marker,
                      "legendrank": 1000 + order[name]}
            fig.add_scatter(x=fs, y=per, showlegend=name not in shown, row=i + 1, col=1,
                            hovertemplate="f=%{x}: %{y:.4f} loads/access<extra>" + name + "</extra>", **common)
            fig.add_scatter(x=fs, y=fb, showlegend=False, row=i + 1, col=2,
                            hovertemplate="f=%{x}: %{y:.1%} of host faults are 4 KiB<extra>" + name + "</extra>",
                            **common)
            fig.add_scatter(x=fs, y=setup, showlegend=False, row=i + 1, col=3,
                            hovertemplate="f=%{x}: %{y:,.2f} ms (estimate)<extra>" + name + "</extra>", **common)
            shown.add(name)
    fig.update_yaxes(rangemode="tozero", col=1)
    fig.update_yaxes(tickformat=".0%", range=[-0.02, 1.05], col=2)
    fig.update_yaxes(rangemode="tozero", col=3)
    host = study[0].extra.get("host_memory", 0)
    _layout(fig, f"When the host is fragmented: {int(host) >> 30} GiB host share, f = share of 2 MiB blocks broken",
            "host fragmentation f", "", height=100 + 340 * len(groups))
    return fig


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
