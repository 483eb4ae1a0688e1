"""Structure of the HTML report (a snapshot of sections and figures, not of the plotly blob)."""

from __future__ import annotations

import html
import math
import re
from html.parser import HTMLParser

import pytest

from memmodel.report import figures
from memmodel.report.html import build_report, headline

#: Snapshot: section ids and headings, in page order (no fragmentation study in this fixture).
SECTIONS = [
    ("summary", "The answer: memctl against its baseline"),
    ("table", "Side by side"),
    ("ratios", "Relative to the baseline"),
    ("loads-per-walk", "Loads per walk"),
    ("tlb-outcomes", "TLB outcomes"),
    ("walk-loads-time", "Walk loads over time"),
    ("host-backed-time", "Host memory footprint over time"),
    ("zeroing", "Zeroing and set-up time"),
    ("host-fragmentation", "Host free memory at the end"),
    ("costs", "Cost model: every constant, its derivation and its source"),
    ("provenance", "Provenance"),
]
#: Snapshot: figure titles, in page order.
FIGURE_TITLES = [
    "Each memctl config relative to its baseline (below 1× = less than the baseline)",
    "Page-table loads per walk (distribution)",
    "TLB outcome of each translation",
    "Page-walk loads over time (cumulative, log scale)",
    "Host memory backing the guest over time (cumulative backed bytes)",
    "Zeroing and memory set-up: bytes (exact) and time (ESTIMATED)",
    "Host free memory by block size at the end of the run",
]


class _Outline(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sections: list[list[str]] = []
        self.in_h2 = False
        self.figure_titles: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section":
            self.sections.append([a["id"] or "", ""])
        elif tag == "h2":
            self.in_h2 = True
        elif tag == "div" and "report-figure" in (a.get("class") or ""):
            self.figure_titles.append(a["data-title"] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2":
            self.in_h2 = False

    def handle_data(self, data: str) -> None:
        if self.in_h2:
            self.sections[-1][1] += data


@pytest.fixture(scope="module")
def page(report_runs) -> str:
    return build_report(report_runs)


def test_report_sections_and_headings_match_the_snapshot(page: str) -> None:
    p = _Outline()
    p.feed(page)
    assert [tuple(s) for s in p.sections] == SECTIONS


def test_report_figure_count_and_titles_match_the_snapshot(page: str, report_runs) -> None:
    p = _Outline()
    p.feed(page)
    want = list(FIGURE_TITLES)
    if figures.host_footprint_key(report_runs) == "host_resident_bytes":  # an engine with the memory lifecycle
        want[4] = "Host memory backing the guest over time (resident; frees and discards lower it)"
    assert p.figure_titles == want
    assert len(figures.REPORT_FIGURES) == len(FIGURE_TITLES)


def test_report_embeds_plotly_js_exactly_once_and_loads_nothing_from_the_network(page: str) -> None:
    from plotly.offline import get_plotlyjs

    assert page.count(get_plotlyjs()[:2000]) == 1
    assert not re.search(r'<script[^>]+src=|<link[^>]+href="https?:', page)


def test_report_sets_an_error_marker_on_window_onerror(page: str) -> None:
    assert "window.onerror" in page and 'data-status="loading"' in page


def test_report_provenance_names_trace_version_and_resolved_configs(page: str, report_runs) -> None:
    from memmodel import __version__

    prov = page[page.index('<section id="provenance">'):]
    assert f"memmodel {__version__}" in prov
    assert "records=60000" in prov
    for r in report_runs:
        assert html.escape(f'name = "{r.config.name}"') in prov


def test_headline_is_one_sentence_per_fair_pair(report_runs) -> None:
    lines = headline(report_runs, "baseline-thp")
    assert len(lines) == 2
    assert lines[0].startswith("memctl-4k vs baseline-4k on ") and lines[1].startswith("memctl-2m vs baseline-thp on ")
    assert "guest zeroing" in lines[1] and "memory set-up time." in lines[1]


@pytest.mark.parametrize("name", [fn for _sid, fn in figures.REPORT_FIGURES])
def test_every_figure_has_a_title_axis_titles_and_a_legend(report_runs, name: str) -> None:
    fn = getattr(figures, name)
    fig = fn(report_runs, "baseline-thp") if name == "ratios" else fn(report_runs)
    assert fig.layout.title.text
    assert fig.layout.yaxis.title.text and (fig.layout.xaxis.title.text or name == "zeroing")
    assert len(fig.data) >= 2 and all(t.name for t in fig.data)


# --- issue 10: the answer first, fair pairs, figures a reader can trust ------------------------------------------


def test_the_page_starts_with_the_quotable_sentences(page: str, report_runs) -> None:
    from memmodel.analysis.compare import pairings, summary_sentence

    summary = page[page.index('<section id="summary">'):page.index('<section id="table">')]
    first = re.findall(r'<p class="answer">(.*?)</p>', summary)
    assert first[:2] == [html.escape(summary_sentence(p)) for p in pairings(report_runs)]
    assert page.index('<p class="answer">') < page.index('<section id="table">')


def test_ratio_chart_draws_zero_ratios_and_labels_them(report_runs) -> None:
    fig = figures.ratios(report_runs, "baseline-thp")
    bars = [t for t in fig.data if t.type == "bar"]
    assert [t.name for t in bars] == ["memctl-4k ÷ baseline-4k", "memctl-2m ÷ baseline-thp"]
    for t in bars:
        i = list(t.x).index("guest<br>zeroed bytes")  # memctl never zeroes in the guest: a ratio of 0
        assert t.text[i] == "0<br>(−100 %)"
        assert t.y[i] is not None and t.base + t.y[i] > 10 ** fig.layout.yaxis.range[0]  # drawn inside the axis
        assert t.base + t.y[i] < 1  # below the line at 1
        assert t.marker.pattern.shape[i] == "/"


def test_ratio_chart_labels_the_line_at_1_in_log_units_and_ticks_are_decades(report_runs) -> None:
    fig = figures.ratios(report_runs, "baseline-thp")
    (label,) = [a for a in fig.layout.annotations if "baseline" in a.text]
    assert label.y == 0  # log10(1): annotation coordinates on a log axis are decimal logarithms
    (line,) = fig.layout.shapes
    assert line.y0 == line.y1 == 1  # shapes take data coordinates
    ticks = list(fig.layout.yaxis.tickvals)
    assert all(math.log10(t) == round(math.log10(t)) for t in ticks)
    assert "1×" in fig.layout.yaxis.ticktext and not any(t.startswith("5") for t in fig.layout.yaxis.ticktext)


def test_each_config_keeps_one_colour_in_every_figure(report_runs) -> None:
    want = figures.config_colors(report_runs)
    assert want["memctl-2m"] == figures.PRESET_COLORS["memctl-2m"]
    assert len(set(want.values())) == len(want)
    for name in ("loads_per_walk", "walk_loads_over_time", "host_backed_over_time", "host_fragmentation"):
        fig = getattr(figures, name)(report_runs)
        for t in fig.data:
            color = t.marker.color if t.type == "bar" else t.line.color
            assert color == want[t.name], (name, t.name)


def test_equal_series_stay_visible_solid_under_dashed(report_runs) -> None:
    fig = figures.walk_loads_over_time(report_runs)
    order = [t.name for t in fig.data]
    assert order.index("memctl-2m") < order.index("baseline-thp")  # dashed baseline drawn over the solid memctl
    styles = {t.name: (t.line.dash, t.line.width) for t in fig.data}
    assert styles["memctl-2m"][0] == "solid" and styles["baseline-thp"][0] == "dash"
    assert styles["memctl-2m"][1] > styles["baseline-thp"][1]
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis.dtick == 1


@pytest.mark.parametrize(("v", "kind", "text"), [
    (None, "float", "—"), (1 / 1_389_000, "rate", "0.000072 %"), (0.6059, "rate", "60.59 %"), (0.0, "rate", "0 %"),
    (3.59e-5, "float", "0.0000359"), (2.2727, "float", "2.273"), (5.39e-5, "ns", "0.0000539 ns"), (0.0, "float", "0"),
])
def test_small_values_never_print_as_zero_and_missing_ones_print_a_dash(v, kind, text) -> None:
    from memmodel.report.html import fmt_value

    assert fmt_value(v, kind) == text


def test_native_runs_show_a_dash_for_host_metrics(page: str) -> None:
    table = page[page.index('<section id="table">'):page.index('<section id="ratios">')]
    row = re.search(r"<tr><td>host faults .*?</tr>", table)
    assert row and row.group(0).count("<td>—</td>") == 1  # native-thp only


def test_the_report_names_no_file_outside_the_repository(page: str) -> None:
    text = re.sub(r"<script.*?</script>", "", page, flags=re.S)
    for leak in ("/work/shared", "MODEL.md", "hardware.md", "research notes", "anchors.md"):
        assert leak not in text, leak


def test_cost_section_prints_every_constant_with_derivation_and_source(page: str) -> None:
    from memmodel.analysis.costs import COST_SOURCES

    costs = page[page.index('<section id="costs">'):page.index('<section id="provenance">')]
    for key, src in COST_SOURCES.items():
        assert f"<code>{key}</code>" in costs
        assert html.escape(src.derivation) in costs and html.escape(src.sources) in costs


def test_lifecycle_metrics_join_the_table_only_when_present(report_runs) -> None:
    import dataclasses

    from memmodel.analysis.compare import LIFECYCLE_METRICS

    without = []
    for r in report_runs:  # as an engine without the memory lifecycle reports them
        c = {k: v for k, v in r.result.counters.items() if k not in LIFECYCLE_METRICS}
        without.append(dataclasses.replace(r, result=dataclasses.replace(r.result, counters=c, extras={})))
    page = build_report(without)
    assert "host footprint at peak" not in page and "host discards" not in page
    mib = 1 << 20
    with_lc = []
    for r in without:
        c = dict(r.result.counters, host_resident_peak_bytes=64 * mib, host_resident_bytes=32 * mib,
                 tlb_flushes=3, host_discards=5)
        with_lc.append(dataclasses.replace(r, result=dataclasses.replace(r.result, counters=c)))
    page = build_report(with_lc)
    assert "host footprint at peak" in page and "host discards (full flushes)" in page
    assert "same host footprint at peak (64.0 MiB)" in page  # every hand-made run peaks at 64 MiB


def test_multi_trace_report_has_one_table_and_one_panel_row_per_trace(report_runs) -> None:
    import dataclasses

    other = [dataclasses.replace(r, trace="other.lackey", extra={}) for r in report_runs]
    runs = list(report_runs) + other
    page = build_report(runs)
    assert page.count('<table class="compare-table">') == 2
    fig = figures.walk_loads_over_time(runs)
    assert {t.yaxis for t in fig.data} == {"y", "y2"}
    assert len({t.name for t in fig.data if t.showlegend}) == len(report_runs)  # one legend entry per config


def test_mrc_points_without_translations_are_not_drawn() -> None:
    import polars as pl

    from memmodel.report.mrc_figure import mrc_figure

    frame = pl.DataFrame({"config": ["c", "c"], "array": ["l1", "l1"], "page_sizes": ["4K", "4K"], "sets": [1, 1],
                          "ways": [1, 2], "entries": [1, 2], "misses": [0, 0], "accesses": [0, 0],
                          "miss_ratio": [0.0, 0.0], "trace": ["t", "t"]})
    assert list(mrc_figure(frame).data[0].y) == [None, None]


def test_footprint_line_ends_on_the_end_of_run_counter(report_runs) -> None:
    # a final munmap after the last translation window changes the counter but not the sampled series
    import dataclasses

    r = next(r for r in report_runs if r.config.name == "memctl-2m")
    key = figures.host_footprint_key([r])
    end = int(r.result.series[key][-1]) // 2
    c = dict(r.result.counters, **{key: end})
    fig = figures.host_backed_over_time([dataclasses.replace(r, result=dataclasses.replace(r.result, counters=c))])
    (line,) = fig.data
    assert line.x[-1] == c["accesses"] and line.y[-1] == pytest.approx(end / figures.MIB)
