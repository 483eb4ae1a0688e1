"""Structure of the HTML report (a snapshot of sections and figures, not of the plotly blob)."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import pytest

from memmodel.report import figures
from memmodel.report.html import build_report, headline

#: Snapshot: section ids and headings, in page order.
SECTIONS = [
    ("summary", "Summary: memctl vs baseline"),
    ("table", "Side by side"),
    ("ratios", "Relative to the baseline"),
    ("loads-per-walk", "Loads per walk"),
    ("tlb-outcomes", "TLB outcomes"),
    ("walk-loads-time", "Walk loads over time"),
    ("host-backed-time", "Host backed memory over time"),
    ("zeroing", "Zeroing and set-up time"),
    ("host-fragmentation", "Host fragmentation"),
    ("costs", "Cost model (estimates)"),
    ("provenance", "Provenance"),
]
#: Snapshot: figure titles, in page order.
FIGURE_TITLES = [
    "Each config relative to baseline-thp (below 1 = less than baseline-thp)",
    "Page-table loads per walk (distribution)",
    "TLB outcome of each translation",
    "Page-walk loads over time (cumulative)",
    "Host memory backing the guest over time",
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


def test_report_figure_count_and_titles_match_the_snapshot(page: str) -> None:
    p = _Outline()
    p.feed(page)
    assert p.figure_titles == FIGURE_TITLES
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


def test_headline_states_memctl_deltas_against_the_baseline_in_numbers(report_runs) -> None:
    lines = headline(report_runs, "baseline-thp")
    assert len(lines) == 2 and lines[0].startswith("<b>memctl-4k</b> vs <b>baseline-thp</b>")
    assert "bytes zeroed in the guest" in lines[1] and "%" in lines[1]


@pytest.mark.parametrize("name", [fn for _sid, fn in figures.REPORT_FIGURES])
def test_every_figure_has_a_title_axis_titles_and_a_legend(report_runs, name: str) -> None:
    fn = getattr(figures, name)
    fig = fn(report_runs, "baseline-thp") if name == "ratios" else fn(report_runs)
    assert fig.layout.title.text
    assert fig.layout.yaxis.title.text and (fig.layout.xaxis.title.text or name == "zeroing")
    assert len(fig.data) >= 2 and all(t.name for t in fig.data)
