"""One self-contained HTML report of a comparison: plotly.js embedded once, no network needed to view it.

Sections (ids are stable, tests check them): ``summary``, ``table``, one per figure of
:data:`memmodel.report.figures.REPORT_FIGURES`, ``fragmentation-indices``, ``costs``, ``provenance``.
The page sets ``data-status`` on ``<body>`` to ``ok`` once every figure is drawn, or ``error`` (with
``data-errors``) when a script error happened (``window.onerror``); a headless browser test reads it.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from memmodel.analysis.compare import DEFAULT_BASELINE, METRICS, compare_runs
from memmodel.analysis.costs import CostModel
from memmodel.report import figures as F

if TYPE_CHECKING:  # pragma: no cover
    from memmodel.analysis.api import Run

#: Section headings, by id, in page order.
SECTIONS: Final = {
    "summary": "Summary: memctl vs baseline",
    "table": "Side by side",
    "ratios": "Relative to the baseline",
    "loads-per-walk": "Loads per walk",
    "tlb-outcomes": "TLB outcomes",
    "walk-loads-time": "Walk loads over time",
    "host-backed-time": "Host backed memory over time",
    "zeroing": "Zeroing and set-up time",
    "host-fragmentation": "Host fragmentation",
    "costs": "Cost model (estimates)",
    "provenance": "Provenance",
}

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#222;background:#fafafa}
main{max-width:1180px;margin:0 auto;padding:16px 28px 40px}
h1{font-size:1.6rem;margin:18px 0 4px} h2{font-size:1.25rem;margin:28px 0 8px;border-bottom:1px solid #ddd;
padding-bottom:4px} .sub{color:#666;margin:0 0 12px}
section{background:#fff;border:1px solid #e4e4e4;border-radius:6px;padding:4px 18px 14px;margin:14px 0}
table{border-collapse:collapse;font-size:.86rem;margin:8px 0} th,td{padding:3px 9px;border-bottom:1px solid #eee;
text-align:right;white-space:nowrap} th:first-child,td:first-child{text-align:left} thead th{background:#f3f3f3}
td.base{background:#f7f7ff} .ratio{color:#777;font-size:.8em} .better{color:#1a7f37} .worse{color:#b42318}
.est{color:#8a5a00} pre{background:#f6f6f6;padding:8px;overflow-x:auto;font-size:.8rem}
ul.headline li{margin:4px 0} .note{color:#666;font-size:.85rem} .tablewrap{overflow-x:auto}
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


def _fmt(v: Any, kind: str) -> str:
    if v is None:
        return "—"
    if kind == "rate":
        return f"{v:.2%}"
    if kind == "int":
        return f"{int(v):,}"
    if kind == "bytes":
        return format_bytes(float(v))
    if kind == "index":
        return f"{v:.4f}"
    if kind == "s":
        return format_seconds(float(v))
    return f"{v:.3f}"


def format_bytes(n: float) -> str:
    """Bytes in binary units (``"12.5 MiB"``)."""
    sign = "-" if n < 0 else ""
    n = abs(n)
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{sign}{n / (1 << shift):,.1f} {unit}"
    return f"{sign}{n:,.0f} B"


def format_seconds(s: float) -> str:
    """Seconds in the most readable unit (``"3.2 ms"``)."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if abs(s) >= scale:
            return f"{s / scale:,.2f} {unit}"
    return f"{s * 1e9:,.1f} ns" if s else "0"


def headline(runs: Sequence[Run], baseline: str = DEFAULT_BASELINE) -> list[str]:
    """The headline deltas of each memctl config (name containing "memctl"; else every other config)
    against ``baseline``, one sentence per config and trace, in words and numbers."""
    df = compare_runs(runs, baseline=baseline)
    rows = list(df.iter_rows(named=True))
    names = [r["config"] for r in rows]
    targets = [n for n in dict.fromkeys(names) if "memctl" in n and n != baseline] or [
        n for n in dict.fromkeys(names) if n != baseline
    ]
    out = []
    for row in rows:
        if row["config"] not in targets:
            continue
        base = next(b for b in rows if b["config"] == baseline and b["trace"] == row["trace"])
        parts = [
            _delta("page walks", row["walks"], base["walks"], "int"),
            _delta("walk loads", row["walk_loads"], base["walk_loads"], "int"),
            f"{row['loads_per_walk'] or 0:.2f} vs {base['loads_per_walk'] or 0:.2f} loads per walk",
            _delta("bytes zeroed in the guest", row["guest_zeroed_bytes"], base["guest_zeroed_bytes"], "bytes"),
            _delta("bytes zeroed on the host", row["host_zeroed_bytes"], base["host_zeroed_bytes"], "bytes"),
            _delta("host faults", row["host_faults"], base["host_faults"], "int"),
            _delta("host backed memory", row["host_backed_bytes"], base["host_backed_bytes"], "bytes"),
            _delta("estimated set-up time (zeroing + faults)", row["est_setup_s"], base["est_setup_s"], "s"),
            _delta("estimated page-walk time", row["est_walk_s"], base["est_walk_s"], "s"),
        ]
        trace = f" on {Path(row['trace']).name}" if len({r['trace'] for r in rows}) > 1 else ""
        out.append(f"<b>{html.escape(row['config'])}</b> vs <b>{html.escape(baseline)}</b>{html.escape(trace)}: "
                   + "; ".join(parts) + ".")
    return out


def _delta(what: str, v: Any, b: Any, kind: str) -> str:
    vs, bs = _fmt(v, kind), _fmt(b, kind)
    if v is None or b is None:
        return f"{what} {vs} vs {bs}"
    if v == b:
        return f"same {what} ({vs})"
    if b == 0:
        return f"{what} {vs} (baseline: none)"
    change = (v - b) / b
    cls = "better" if change < 0 else "worse"
    if v / b >= 2:
        # "19,895x more" reads better than "1989418.2% more"
        return f'<span class="{cls}">{v / b:,.{0 if v / b >= 10 else 1}f}&times; the</span> {what} ({vs} vs {bs})'
    word = "fewer" if kind == "int" else "less"
    word = word if change < 0 else "more"
    return f'<span class="{cls}">{abs(change):.1%} {word}</span> {what} ({vs} vs {bs})'


def _table(runs: Sequence[Run], baseline: str) -> str:
    df = compare_runs(runs, baseline=baseline)
    rows = list(df.iter_rows(named=True))
    labels = F._labels(runs)
    head = "".join(
        f'<th{" class=base" if r["config"] == baseline else ""}>{html.escape(lbl)}</th>'
        for r, lbl in zip(rows, labels, strict=True)
    )
    body = []
    for col, label, unit, kind in METRICS:
        cells = []
        for r in rows:
            v = r[col]
            ratio = r.get(f"{col}_vs_base")
            extra = f' <span class="ratio">×{ratio:.3g}</span>' if ratio is not None and r["config"] != baseline else ""
            cls = ' class="base"' if r["config"] == baseline else ""
            cells.append(f"<td{cls}>{_fmt(v, kind)}{extra}</td>")
        lab = f'<span class="est">{html.escape(label)}</span>' if kind == "s" else html.escape(label)
        body.append(f"<tr><td>{lab} <span class=ratio>({html.escape(unit)})</span></td>{''.join(cells)}</tr>")
    return (f'<div class="tablewrap"><table id="compare-table"><thead><tr><th>metric</th>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>"
            f'<p class="note">×r = ratio to <b>{html.escape(baseline)}</b> on the same trace. Counters are exact '
            f'(MODEL.md §6); <span class="est">est.</span> rows are estimates from the cost model below.</p>')


def _frag_table(runs: Sequence[Run]) -> str:
    keys = ("host_unusable_index_2m", "host_unusable_index_1g", "host_extfrag_index_2m", "host_extfrag_index_1g")
    head = "".join(f"<th>{k}</th>" for k in keys)
    body = []
    for r, lbl in zip(runs, F._labels(runs), strict=True):
        c = r.result.counters
        frag = f"{r.config.host.fragmentation:g}" if r.config.virtualized else "native"
        cells = "".join(f"<td>{_fmt(c.get(k), 'index')}</td>" for k in keys)
        body.append(f"<tr><td>{html.escape(lbl)}</td><td>{frag}</td>{cells}</tr>")
    return (f'<table id="fragmentation-indices"><thead><tr><th>config</th><th>host.fragmentation</th>{head}</tr>'
            f"</thead><tbody>{''.join(body)}</tbody></table>"
            '<p class="note">Linux unusable-free-space and external-fragmentation indices of the host allocator at '
            "the end of the run (MODEL.md §6; — for native runs). extfrag −1 means a block of that order is "
            "free.</p>")


def _cost_table(runs: Sequence[Run]) -> str:
    models = {r.config.name: CostModel.for_config(r.config) for r in runs}
    names = list(models)
    default = CostModel()
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    body = []
    for k in CostModel.key_names():
        cells = []
        for n in names:
            v = getattr(models[n], k)
            mark = "" if v == getattr(default, k) else " (set in [cost])"
            cells.append(f"<td>{v:g}{mark}</td>")
        body.append(f"<tr><td>{k}</td>{''.join(cells)}</tr>")
    return (
        '<p>All times in this report are <b class="est">ESTIMATES</b>: exact event counts × per-event costs. '
        "Defaults were measured on a Zen 4 (Genoa) KVM guest (project research notes, hardware §1.8 and §3.3; "
        "each default's derivation is in <code>memmodel/analysis/costs.py</code>); override them in a "
        "<code>[cost]</code> table of a config, or measure this machine with <code>memmodel calibrate</code>. "
        "Units: <code>zero_gbps_*</code> GB/s (1e9 B/s), <code>*_fault_us_*</code> µs per fault excluding zeroing, "
        "<code>walk_load_ns</code> ns per page-table load.</p>"
        f'<table id="cost-table"><thead><tr><th>key</th>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    )


def _provenance(runs: Sequence[Run]) -> str:
    from memmodel import __version__

    versions = sorted({str(r.extra.get("memmodel_version", __version__)) for r in runs})
    traces: dict[str, dict[str, Any]] = {}
    for r in runs:
        traces.setdefault(r.trace, r.trace_identity)
    rows = []
    for t, ident in traces.items():
        ident_s = ", ".join(f"{k}={v}" for k, v in ident.items() if k != "path")
        rows.append(f"<tr><td>{html.escape(t)}</td><td style='text-align:left'>{html.escape(ident_s)}</td></tr>")
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
    return (f"<p>results from memmodel {html.escape(', '.join(versions))} (model MODEL.md v1); report written "
            f"by memmodel {__version__}.</p>"
            f'<table id="trace-identity"><thead><tr><th>trace</th><th style="text-align:left">identity</th></tr>'
            f"</thead><tbody>{''.join(rows)}</tbody></table><h3>Resolved configs</h3>{''.join(cfgs)}")


def build_report(runs: Sequence[Run], baseline: str = DEFAULT_BASELINE, title: str | None = None,
                 extra_figures: Sequence[tuple[str, str, Any]] = ()) -> str:
    """The report as one HTML string (plotly.js embedded once; several MB).

    Args:
        runs: replays, from :func:`memmodel.analysis.api.run` or :func:`memmodel.analysis.compare.runs_from_json`.
        baseline: config name the summary and ratios compare against.
        title: page title (default: the traces' names).
        extra_figures: ``(section id, heading, plotly figure)`` sections added after the standard
            figures (e.g. the TLB miss-ratio curves of ``memmodel compare --mrc``).

    Raises:
        ValueError: no runs, or ``baseline`` not among them.
    """
    from plotly.offline import get_plotlyjs

    if not runs:
        raise ValueError("no runs to report")
    traces = list(dict.fromkeys(Path(r.trace).name for r in runs))
    title = title or f"memmodel: baseline vs memctl on {', '.join(traces)}"
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
        f'<p class="sub">{len(runs)} runs: {html.escape(", ".join(dict.fromkeys(r.config.name for r in runs)))}; '
        f"baseline <b>{html.escape(baseline)}</b>.</p>",
    ]
    items = "".join(f"<li>{h}</li>" for h in headline(runs, baseline))
    parts.append(_section("summary", f'<ul class="headline">{items}</ul>'))
    parts.append(_section("table", _table(runs, baseline)))
    for sid, fn in figs.items():
        fig = fn(runs, baseline) if sid == "ratios" else fn(runs)
        div = fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"fig-{sid}",
                          config={"displaylogo": False, "responsive": True})
        extra = _frag_table(runs) if sid == "host-fragmentation" else ""
        parts.append(_section(sid, f'<div class="report-figure" data-title="{html.escape(_title(fig))}">{div}</div>'
                              + extra))
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
    """Write :func:`build_report` to ``path`` (parent directories created); returns the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(build_report(runs, baseline, title, extra_figures), encoding="utf-8")
    return p
