"""One self-contained HTML report of a comparison: plotly.js embedded once, no network needed to view it.

The answer comes first: one sentence per fair pair (each memctl config against the baseline its
preset declares, on each trace) that a reader can quote, then the details, the side-by-side table
and the figures. Sections (ids are stable, tests check them): ``summary``, ``table``, one per figure
of :data:`memmodel.report.figures.REPORT_FIGURES`, ``fragmentation-study`` (with
``compare --fragmentation``), ``costs``, ``provenance``. The page sets ``data-status`` on ``<body>``
to ``ok`` once every figure is drawn, or ``error`` (with ``data-errors``) when a script error
happened (``window.onerror``); a headless browser test reads it.

The report names no file outside the memmodel repository: the model is defined in
``docs/model.md`` and the cost constants in ``docs/costs.md``, and the report prints each constant's
derivation and source itself.
"""

from __future__ import annotations

import html
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from memmodel.analysis.compare import (
    DEFAULT_BASELINE,
    METRICS,
    compare_runs,
    format_bytes,
    format_change,
    pairings,
    run_row,
    summary_sentence,
)
from memmodel.analysis.costs import COST_SOURCES, REFERENCE_MACHINE, CostModel
from memmodel.errors import MemmodelError
from memmodel.report import figures as F

if TYPE_CHECKING:  # pragma: no cover
    from memmodel.analysis.api import Run

#: Section headings, by id, in page order (``fragmentation-study`` only with study runs).
SECTIONS: Final = {
    "summary": "The answer: memctl against its baseline",
    "table": "Side by side",
    "ratios": "Relative to the baseline",
    "loads-per-walk": "Loads per walk",
    "tlb-outcomes": "TLB outcomes",
    "walk-loads-time": "Walk loads over time",
    "host-backed-time": "Host memory footprint over time",
    "zeroing": "Zeroing and set-up time",
    "host-fragmentation": "Host free memory at the end",
    "fragmentation-study": "When the host is fragmented",
    "costs": "Cost model: every constant, its derivation and its source",
    "provenance": "Provenance",
}

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#222;background:#fafafa}
main{max-width:1180px;margin:0 auto;padding:16px 24px 40px}
h1{font-size:1.5rem;margin:18px 0 4px} h2{font-size:1.2rem;margin:22px 0 8px;border-bottom:1px solid #ddd;
padding-bottom:4px} h3{font-size:1rem;margin:14px 0 6px} .sub{color:#555;margin:0 0 12px}
section{background:#fff;border:1px solid #e4e4e4;border-radius:6px;padding:4px 18px 14px;margin:14px 0}
table{border-collapse:collapse;font-size:.84rem;margin:8px 0} th,td{padding:3px 7px;border-bottom:1px solid #eee;
text-align:right;white-space:nowrap} th:first-child,td:first-child{text-align:left} thead th{background:#f3f3f3}
table.compare-table td:first-child{white-space:normal;min-width:12em;max-width:17em}
td.base{background:#f7f7ff} .ratio{color:#666;font-size:.82em} .better{color:#1a6e2e} .worse{color:#a11d12}
.est{color:#7a4f00} pre{background:#f6f6f6;padding:8px;overflow-x:auto;font-size:.8rem}
p.answer{font-size:1.12rem;line-height:1.45;margin:10px 0;padding:8px 12px;border-left:4px solid #0072B2;
background:#f4f8fb} ul.details li{margin:3px 0} .note{color:#555;font-size:.85rem}
.tablewrap{max-width:100%;overflow-x:auto}
table.wrap td,table.wrap th{white-space:normal;text-align:left;vertical-align:top}
table.wrap td.num{text-align:right;white-space:nowrap} .swatch{display:inline-block;width:.8em;height:.8em;
border-radius:2px;margin-right:4px;vertical-align:-1px}
"""

_ERROR_JS = """
window.__reportErrors = [];
window.onerror = function (msg, src, line) {
  window.__reportErrors.push(String(msg) + " @" + line);
  document.documentElement.setAttribute("data-status", "error");
  document.documentElement.setAttribute("data-errors", window.__reportErrors.join(" | "));
};
"""

_STATUS_JS = """
window.addEventListener("load", function () {
  var plots = document.querySelectorAll(".report-figure .js-plotly-plot");
  var drawn = document.querySelectorAll(".report-figure .js-plotly-plot .main-svg").length > 0;
  if (window.__reportErrors.length === 0) {
    document.body.setAttribute("data-status", plots.length > 0 && drawn ? "ok" : "error");
  } else {
    document.body.setAttribute("data-status", "error");
    document.body.setAttribute("data-errors", window.__reportErrors.join(" | "));
  }
  document.body.setAttribute("data-figures", String(plots.length));
});
"""


def format_rate(v: float) -> str:
    """A fraction as a percentage that never rounds a real event away: ``"60.59 %"``, ``"0.00023 %"``."""
    if v == 0:
        return "0 %"
    if v >= 1e-4:
        return f"{v * 100:.2f} %"
    pct = v * 100  # two significant digits, never an exponent: "0.000072 %"
    return f"{pct:.{1 - math.floor(math.log10(pct))}f} %"


def format_seconds(s: float) -> str:
    """Seconds in the most readable unit (``"3.2 ms"``)."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if abs(s) >= scale:
            return f"{s / scale:,.2f} {unit}"
    return f"{s * 1e9:,.1f} ns" if s else "0"


def format_ns(ns: float) -> str:
    """Nanoseconds with three significant digits (``"12.3 ns"``, ``"4,567 ns"``)."""
    if ns == 0:
        return "0 ns"
    if abs(ns) >= 100:
        return f"{ns:,.0f} ns"
    return f"{format_float(ns)} ns"


def fmt_value(v: Any, kind: str) -> str:
    """A metric value in the unit of its kind (see :data:`memmodel.analysis.compare.METRICS`); "—" for
    None (nothing to measure: no walks, no instructions, a native run's host index)."""
    if v is None:
        return "—"
    if kind == "rate":
        return format_rate(float(v))
    if kind == "int":
        return f"{int(v):,}"
    if kind == "bytes":
        return format_bytes(float(v))
    if kind == "index":
        return f"{v:.4f}"
    if kind == "s":
        return format_seconds(float(v))
    if kind == "ns":
        return format_ns(float(v))
    return format_float(float(v))


def format_float(v: float) -> str:
    """Three decimals from 1 up (``"2.273"``), three significant digits below (``"0.0000359"``), so a
    small value never prints as 0.000."""
    if v == 0:
        return "0"
    if abs(v) >= 1:
        return f"{v:,.3f}"
    return f"{v:.{2 - math.floor(math.log10(abs(v)))}f}"


_fmt = fmt_value  # the old private name

#: Metrics of the host side: a native run has no host, so they show "—" there (the counters are 0).
HOST_METRICS: Final = ("host_faults", "host_zeroed_bytes", "host_backed_bytes", "host_zeroed_refault_bytes",
                       "host_resident_peak_bytes", "host_resident_bytes", "host_discards", "est_host_zero_s",
                       "est_host_fault_s")


def no_host(row: dict[str, Any], col: str) -> bool:
    """Whether ``col`` is a host metric of a native run (a comparison row): nothing to measure."""
    return col in HOST_METRICS and not row.get("virtualized", True)


def headline(runs: Sequence[Run], baseline: str = DEFAULT_BASELINE) -> list[str]:
    """The quotable sentence of every fair pair (HTML-escaped), one per memctl config and trace.

    Without declared pairs, every other config is compared with ``baseline`` instead.
    """
    main = [r for r in runs if "fragmentation" not in r.extra]
    multi = len({r.trace for r in main}) > 1
    pairs = pairings(main)
    if pairs:
        return [html.escape(summary_sentence(p, Path(p.trace).name)) for p in pairs]
    from memmodel.analysis.compare import Pairing

    base = {r.trace: r for r in main if r.config.name == baseline}
    out = []
    for r in main:
        if r.config.name != baseline and r.trace in base:
            s = summary_sentence(Pairing(r.trace, r, base[r.trace]), Path(r.trace).name if multi else None)
            out.append(html.escape(s))
    return out


def _details(pair: Any) -> str:
    m, b = run_row(pair.memctl), run_row(pair.baseline)
    items = []

    def line(label: str, col: str, kind: str, note: str = "") -> None:
        mv, bv = m[col], b[col]
        if mv is None and bv is None:
            return
        change = ""
        if mv is not None and bv is not None and kind not in ("rate", "index", "float"):
            change = f" <span class=ratio>({html.escape(format_change(float(mv), float(bv)))})</span>" \
                if bv else ""
        items.append(f"<li>{html.escape(label)}: <b>{fmt_value(mv, kind)}</b> vs {fmt_value(bv, kind)}{change}"
                     f"{html.escape(note)}</li>")

    line("page walks", "walks", "int")
    line("walk loads", "walk_loads", "int")
    line("loads per walk", "loads_per_walk", "float")
    line("walk loads per access over the second half of the run (steady state)", "steady_walk_loads_per_access",
         "float")
    line("host faults", "host_faults", "int")
    line("guest zeroing", "guest_zeroed_bytes", "bytes")
    line("host zeroing", "host_zeroed_bytes", "bytes")
    line("guest zeroing on re-fault (after a free)", "guest_zeroed_refault_bytes", "bytes")
    line("host zeroing on re-fault (after a discard)", "host_zeroed_refault_bytes", "bytes")
    line("host footprint at peak", "host_resident_peak_bytes", "bytes")
    line("host footprint at the end", "host_resident_bytes", "bytes")
    line("guest TLB flushes", "tlb_flushes", "int")
    line("host discards (each flushes all TLBs)", "host_discards", "int")
    line("est. one-time set-up (zeroing + faults)", "est_setup_s", "s")
    line("est. page-walk time", "est_walk_s", "s")
    line("est. walk time per access, steady state", "est_steady_walk_ns_per_access", "ns")
    line("est. walk time per 1000 instructions", "est_walk_ns_per_kinstr", "ns")
    line("est. set-up per 1000 instructions", "est_setup_ns_per_kinstr", "ns")
    name = f"{pair.memctl.config.name} vs {pair.baseline.config.name}"
    return f"<details><summary>{html.escape(name)}: details</summary><ul class=details>{''.join(items)}</ul></details>"


def _summary(runs: Sequence[Run], baseline: str) -> str:
    main = [r for r in runs if "fragmentation" not in r.extra]
    study = [r for r in runs if "fragmentation" in r.extra]
    parts = [f'<p class="answer">{s}</p>' for s in headline(main, baseline)]
    pairs = pairings(main)
    parts += [_details(p) for p in pairs]
    if study:
        top = max(r.extra["fragmentation"] for r in study)
        hot = [p for p in pairings(study) if p.memctl.extra["fragmentation"] == top]
        host = format_bytes(float(study[0].extra["host_memory"]))
        for p in hot:
            s = summary_sentence(p, Path(p.trace).name).replace(
                f"{p.memctl.config.name} vs {p.baseline.config.name}",
                f"{F.base_name(p.memctl)} vs {F.base_name(p.baseline)}", 1)
            parts.append(f'<p class="answer">When the host is fragmented (f = {top:g}, a {host} host share): '
                         f"{html.escape(s)}</p>")
    parts.append(
        '<p class="note">Walk loads, faults and zeroed bytes are exact model counters; “est.” values are '
        "estimates (counts × the per-event costs listed under <a href=\"#costs\">Cost model</a>). Set-up "
        "(zeroing + faults) is paid once per page mapped; walk time is paid per TLB miss for as long as the "
        "program runs, so the steady-state per-access figures say more about a long run than the totals of a "
        "short trace. Only data accesses (loads, stores, modifies) are translated; instruction fetches are "
        "counted (per 1000 instructions) but not translated. The memctl configs are each compared with the "
        "baseline their preset declares (<code>baseline = \"…\"</code>): the same host page size.</p>")
    return "".join(parts)


def _table(runs: Sequence[Run], baseline: str) -> str:
    main = [r for r in runs if "fragmentation" not in r.extra]
    df = compare_runs(main, baseline=baseline)
    rows = list(df.iter_rows(named=True))
    colors = F.config_colors(runs)
    out = []
    traces = list(dict.fromkeys(r["trace"] for r in rows))
    for trace in traces:
        trows = [r for r in rows if r["trace"] == trace]
        head = "".join(
            f'<th><span class="swatch" style="background:{colors.get(r["config"], "#999")}">'
            f'</span>{html.escape(r["config"])}'
            + (f'<br><span class="ratio">vs {html.escape(r["paired_with"])}</span>' if r["paired_with"] else "")
            + "</th>"
            for r in trows
        )
        body = []
        for col, label, unit, kind in METRICS:
            if all(r[col] is None for r in trows):
                continue  # nothing to show (e.g. lifecycle outputs of an engine without them)
            cells = []
            for r in trows:
                v = r[col]
                ratio = r.get(f"{col}_vs_pair")
                extra = ""
                if r["paired_with"] and v is not None and f"{col}_vs_pair" in r:
                    pv = next((p[col] for p in trows if p["config"] == r["paired_with"]), None)
                    if pv is not None and (ratio is not None or v == pv):
                        extra = f' <span class="ratio">{html.escape(format_change(float(v), float(pv)))}</span>'
                cells.append(f"<td>{fmt_value(None if no_host(r, col) else v, kind)}{extra}</td>")
            lab = f'<span class="est">{html.escape(label)}</span>' if kind in ("s", "ns") else html.escape(label)
            body.append(f"<tr><td>{lab} <span class=ratio>({html.escape(unit)})</span></td>{''.join(cells)}</tr>")
        title = f"<h3>{html.escape(Path(trace).name)}</h3>" if len(traces) > 1 else ""
        out.append(f'{title}<div class="tablewrap"><table class="compare-table"><thead><tr><th>metric</th>{head}'
                   f"</tr></thead><tbody>{''.join(body)}</tbody></table></div>")
    return ("".join(out) + '<p class="note">Small print under a memctl config: its change against the baseline '
            "it declares, on the same trace. — = nothing to measure (no walks, no instructions, a native run's host "
            'indices). <span class="est">est.</span> rows are estimates from the cost model below; every other '
            "row is an exact count of the model (docs/model.md in the memmodel repository).</p>")


def _frag_table(runs: Sequence[Run]) -> str:
    keys = ("host_unusable_index_2m", "host_unusable_index_1g", "host_extfrag_index_2m", "host_extfrag_index_1g")
    head = "".join(f"<th>{k}</th>" for k in keys)
    body = []
    main = [r for r in runs if "fragmentation" not in r.extra]
    for r, lbl in zip(main, F._labels(main), strict=True):
        c = r.result.counters
        frag = f"{r.config.host.fragmentation:g}" if r.config.virtualized else "native"
        cells = "".join(f"<td>{fmt_value(c.get(k), 'index')}</td>" for k in keys)
        body.append(f"<tr><td>{html.escape(lbl)}</td><td>{frag}</td>{cells}</tr>")
    return (f'<div class="tablewrap"><table id="fragmentation-indices"><thead><tr><th>config</th>'
            f"<th>host.fragmentation</th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
            '<p class="note">Linux unusable-free-space and external-fragmentation indices of the host allocator at '
            "the end of the run (— for native runs). extfrag −1 means a block of that order is free.</p>")


def _study_section(runs: Sequence[Run]) -> str:
    study = [r for r in runs if "fragmentation" in r.extra]
    fig = F.fragmentation_study(runs)
    div = fig.to_html(full_html=False, include_plotlyjs=False, div_id="fig-fragmentation-study",
                      config={"displaylogo": False, "responsive": True})
    host = format_bytes(float(study[0].extra["host_memory"]))
    rows = []
    for r in study:
        c = r.result.counters
        row = run_row(r)
        fb = c["host_pages_4k"] / c["host_faults"] if c["host_faults"] else None
        rows.append(
            f"<tr><td>{html.escape(Path(r.trace).name)}</td><td>{html.escape(F.base_name(r))}</td>"
            f"<td>{r.extra['fragmentation']:g}</td><td>{fmt_value(row['walk_loads_per_access'], 'float')}</td>"
            f"<td>{fmt_value(c['host_faults'], 'int')}</td><td>{fmt_value(fb, 'rate')}</td>"
            f"<td>{fmt_value(row['est_setup_s'], 's')}</td><td>{fmt_value(row['est_walk_s'], 's')}</td></tr>")
    table = ('<div class="tablewrap"><table id="fragmentation-study-table"><thead><tr><th>trace</th><th>config</th>'
             "<th>f</th><th>walk loads / access</th><th>host faults</th><th>4 KiB share of host faults</th>"
             f"<th>est. set-up</th><th>est. walk time</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>")
    note = (f'<p class="note">The configs whose host uses 2 MiB pages, replayed again with host fragmentation f '
            f"(a fraction f of the host's 2 MiB blocks broken by one unmovable 4 KiB page) on a {host} host share "
            "(twice what they needed unfragmented, rounded up to whole GiB). On the default 64 GiB host even "
            "f = 0.99 leaves far more whole blocks than a trace needs; on a bounded share the host runs out of "
            "2 MiB blocks and backs guest memory with 4 KiB pages: TLB entries splinter to 4 KiB and walks "
            "lengthen.</p>")
    return f'<div class="report-figure" data-title="{html.escape(_title(fig))}">{div}</div>{table}{note}'


def _cost_table(runs: Sequence[Run]) -> str:
    models = {r.config.name: CostModel.for_config(r.config) for r in runs if "fragmentation" not in r.extra}
    default = CostModel()
    values = {k: sorted({getattr(m, k) for m in models.values()}) for k in CostModel.key_names()}
    body = []
    for k in CostModel.key_names():
        src = COST_SOURCES[k]
        vals = values[k]
        if vals == [getattr(default, k)]:
            val = f"{vals[0]:g}"
        else:
            per = ", ".join(f"{html.escape(n)}: {getattr(m, k):g}" for n, m in models.items())
            val = f"{per} <span class=ratio>(set by [cost]; default {getattr(default, k):g})</span>"
        body.append(
            f"<tr><td><code>{k}</code></td><td class=num>{val}</td><td>{html.escape(src.unit)}</td>"
            f"<td>{html.escape(src.meaning)}</td><td>{html.escape(src.derivation)}</td>"
            f"<td>{html.escape(src.sources)} <span class=ratio>[{src.kind}]</span></td></tr>")
    return (
        '<p>Every time in this report is an <b class="est">ESTIMATE</b>: an exact event count × a per-event cost. '
        f"“Measured” defaults come from {html.escape(REFERENCE_MACHINE)}; the table gives each one's arithmetic "
        "and sources (summarised with full references in docs/costs.md of the memmodel repository). Override "
        "any key in a <code>[cost]</code> table of a config, for every config at once with "
        "<code>--cost FILE</code>, or measure this machine with <code>memmodel calibrate</code>.</p>"
        '<div class="tablewrap"><table id="cost-table" class="wrap"><thead><tr><th>key</th><th>value</th>'
        "<th>unit</th><th>pays for</th><th>derivation</th><th>source</th></tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></div>"
        '<p class="note">Arithmetic: zeroing = zeroed bytes ÷ bandwidth (by page size); faults = pages × cost per '
        "fault (by side and page size); walks = walk loads × walk_load_ns; set-up = zeroing + faults. Per access = "
        "÷ translated data accesses; per 1000 instructions = ÷ (instructions ÷ 1000).</p>"
    )


def _provenance(runs: Sequence[Run]) -> str:
    from memmodel._version import __version__

    versions = sorted({str(r.extra.get("memmodel_version", __version__)) for r in runs})
    traces: dict[str, dict[str, Any]] = {}
    for r in runs:
        traces.setdefault(r.trace, r.trace_identity)
    rows = []
    for t, ident in traces.items():
        ident_s = ", ".join(f"{k}={v}" for k, v in ident.items() if k != "path")
        rows.append(f"<tr><td>{html.escape(t)}</td><td style='text-align:left;white-space:normal'>"
                    f"{html.escape(ident_s)}</td></tr>")
    cfgs = []
    seen: set[str] = set()
    for r in runs:
        if r.config.name in seen:
            continue
        seen.add(r.config.name)
        cfgs.append(f"<details><summary>{html.escape(r.config.name)} (cpu {html.escape(r.config.cpu or '-')}, "
                    f"window {r.result.window:,} translations)</summary><pre>{html.escape(r.config.to_toml())}</pre>"
                    "</details>")
    # no timestamp: the same results give a byte-identical report
    return (f"<p>results from memmodel {html.escape(', '.join(versions))}; report written by memmodel "
            f"{__version__}. The model is defined in docs/model.md of the memmodel repository.</p>"
            f'<div class="tablewrap"><table id="trace-identity"><thead><tr><th>trace</th>'
            f'<th style="text-align:left">identity</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
            f"<h3>Resolved configs</h3>{''.join(cfgs)}")


def build_report(runs: Sequence[Run], baseline: str = DEFAULT_BASELINE, title: str | None = None,
                 extra_figures: Sequence[tuple[str, str, Any]] = ()) -> str:
    """The report as one HTML string (plotly.js embedded once; several MB).

    Args:
        runs: replays, from :func:`memmodel.analysis.api.run` or :func:`memmodel.analysis.compare.runs_from_json`;
            runs of a fragmentation study (:func:`memmodel.analysis.compare.fragmentation_study`) add
            the "When the host is fragmented" section.
        baseline: config name ratios fall back to when no memctl config declares its baseline.
        title: page title (default: the traces' names).
        extra_figures: ``(section id, heading, plotly figure)`` sections added after the standard
            figures (e.g. the TLB miss-ratio curves of ``memmodel compare --mrc``).

    Raises:
        ValueError: no runs, or ``baseline`` not among them.
    """
    from plotly.offline import get_plotlyjs

    if not runs:
        raise ValueError("no runs to report")
    main = [r for r in runs if "fragmentation" not in r.extra]
    traces = list(dict.fromkeys(Path(r.trace).name for r in main))
    title = title or f"memmodel: memctl vs baseline on {', '.join(traces)}"
    figs = {sid: getattr(F, fn) for sid, fn in F.REPORT_FIGURES}
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<style>{_CSS}</style>",
        f"<script>{_ERROR_JS}</script>",
        f'<script type="text/javascript">{get_plotlyjs()}</script>',
        '</head><body data-status="loading"><main>',
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="sub">{len(main)} runs: {html.escape(", ".join(dict.fromkeys(r.config.name for r in main)))}'
        f"{f' (+ {len(runs) - len(main)} fragmentation-study runs)' if len(runs) > len(main) else ''}.</p>",
    ]
    parts.append(_section("summary", _summary(runs, baseline)))
    parts.append(_section("table", _table(runs, baseline)))
    for sid, fn in figs.items():
        fig = fn(runs, baseline) if sid == "ratios" else fn(main)
        div = fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"fig-{sid}",
                          config={"displaylogo": False, "responsive": True})
        extra = _frag_table(runs) if sid == "host-fragmentation" else ""
        parts.append(_section(sid, f'<div class="report-figure" data-title="{html.escape(_title(fig))}">{div}</div>'
                              + extra))
    if len(runs) > len(main):
        parts.append(_section("fragmentation-study", _study_section(runs)))
    for sid, heading, fig in extra_figures:
        div = fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"fig-{sid}",
                          config={"displaylogo": False, "responsive": True})
        parts.append(_section(sid, f'<div class="report-figure" data-title="{html.escape(_title(fig))}">{div}</div>',
                              heading))
    parts.append(_section("costs", _cost_table(runs)))
    parts.append(_section("provenance", _provenance(runs)))
    parts.append(f"</main><script>{_STATUS_JS}</script></body></html>")
    return "\n".join(parts)


def _title(fig: Any) -> str:
    return str(fig.layout.title.text or "")


def _section(sid: str, body: str, heading: str | None = None) -> str:
    return f'<section id="{sid}"><h2>{html.escape(heading or SECTIONS[sid])}</h2>{body}</section>'


def write_report(runs: Sequence[Run], path: str | Path, baseline: str = DEFAULT_BASELINE,
                 title: str | None = None, extra_figures: Sequence[tuple[str, str, Any]] = ()) -> Path:
    """Write :func:`build_report` to ``path`` atomically (parent directories created); returns the path.

    The page is written to a temporary file next to ``path`` and renamed over it, so a failed write
    never leaves a half-written report.

    Raises:
        MemmodelError: the file cannot be written (the message names it).
    """
    p = Path(path)
    text = build_report(runs, baseline, title, extra_figures)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    except OSError as exc:
        raise MemmodelError(f"{p}: cannot write the report: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a report is meant to be shared
        os.replace(tmp, p)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise MemmodelError(f"{p}: cannot write the report: {exc.strerror or exc}") from None
    return p
