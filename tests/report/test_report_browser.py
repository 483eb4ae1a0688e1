"""The report in a real browser: headless Chromium renders every figure without page errors."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from memmodel.report import figures
from memmodel.report.html import write_report

CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed")]


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chrome-profile'}",
           "--virtual-time-budget=10000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def report_file(report_runs, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report(report_runs, tmp_path_factory.mktemp("report") / "report.html")


def test_report_renders_every_figure_without_page_errors(report_file: Path, tmp_path: Path) -> None:
    res = _chromium(tmp_path, "--dump-dom", report_file.as_uri())
    dom = res.stdout
    assert res.returncode == 0, res.stderr[-2000:]
    body = re.search(r"<body[^>]*>", dom)
    assert body, dom[:500]
    assert 'data-status="ok"' in body.group(0), body.group(0)  # set on load; "error" after window.onerror
    assert f'data-figures="{len(figures.REPORT_FIGURES)}"' in body.group(0)
    for sid, _fn in figures.REPORT_FIGURES:
        start = dom.index(f'id="fig-{sid}"')
        end = dom.find('<section id="', start)
        assert 'class="main-svg"' in dom[start:end], f"figure {sid} not drawn"
        assert re.search(r'class="(point|trace|bars|scatterlayer)', dom[start:end]), f"figure {sid} has no data"


def test_report_error_marker_is_set_by_a_script_error(report_file: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.html"
    broken.write_text(report_file.read_text().replace("</main>", "</main><script>undefinedFn();</script>", 1))
    dom = _chromium(tmp_path, "--dump-dom", broken.as_uri()).stdout
    assert 'data-status="error"' in dom and "undefinedFn" in dom


def test_report_screenshot_is_not_blank(report_file: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    res = _chromium(tmp_path, "--hide-scrollbars", "--window-size=1280,2400", f"--screenshot={shot}",
                    report_file.as_uri())
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    assert shot.stat().st_size > 100_000  # a blank page is a few kB (ecosystem notes: 3.5 kB)


# --- issue 10: numbers read in the rendered page ---------------------------------------------------------------

#: Measures the rendered ratio chart and the page, then stores the numbers on <body data-probe="...">.
_PROBE = """
window.addEventListener("load", function () { setTimeout(function () {
  var out = {}, fig = document.getElementById("fig-ratios");
  function mid(el) { var r = el.getBoundingClientRect(); return (r.top + r.bottom) / 2; }
  var ann = Array.prototype.filter.call(fig.querySelectorAll(".annotation"),
                                        function (a) { return a.textContent.indexOf("baseline") >= 0; });
  var tick = Array.prototype.filter.call(fig.querySelectorAll(".ytick text"),
                                         function (t) { return t.textContent === "1×"; });
  out.labelY = ann.length ? mid(ann[0]) : null;
  out.tickY = tick.length ? mid(tick[0]) : null;
  out.zeroBars = [];
  Array.prototype.forEach.call(fig.querySelectorAll(".bars .point"), function (p) {
    var t = p.querySelector(".bartext"), path = p.querySelector("path");
    if (t && t.textContent.indexOf("(−100 %)") >= 0) {
      out.zeroBars.push({text: t.textContent, height: path.getBoundingClientRect().height});
    }
  });
  out.answers = Array.prototype.map.call(document.querySelectorAll("p.answer"), function (p) { return p.textContent; });
  out.scrollWidth = document.documentElement.scrollWidth;
  out.clientWidth = document.documentElement.clientWidth;
  document.body.setAttribute("data-probe", JSON.stringify(out));
}, 300); });
"""


def _probe(report: Path, tmp_path: Path, width: int = 1366) -> dict:
    import html
    import json

    probed = tmp_path / "probed.html"
    probed.write_text(report.read_text().replace("</body>", f"<script>{_PROBE}</script></body>", 1))
    dom = _chromium(tmp_path, f"--window-size={width},900", "--dump-dom", probed.as_uri()).stdout
    m = re.search(r'data-probe="([^"]*)"', dom)
    assert m, dom[-2000:]
    return json.loads(html.unescape(m.group(1)))


def test_report_in_chromium_states_the_pair_sentences_first(report_file: Path, report_runs, tmp_path: Path) -> None:
    from memmodel.analysis.compare import pairings, summary_sentence

    got = _probe(report_file, tmp_path)
    assert got["answers"][:2] == [summary_sentence(p) for p in pairings(report_runs)]
    assert got["answers"][0].startswith("memctl-4k vs baseline-4k on ")


def test_report_in_chromium_puts_the_baseline_label_on_the_line_at_1(report_file: Path, tmp_path: Path) -> None:
    got = _probe(report_file, tmp_path)
    assert got["labelY"] is not None and got["tickY"] is not None
    assert abs(got["labelY"] - got["tickY"]) < 4  # pixels: the label sits at y = 1, not at 10


def test_report_in_chromium_draws_zero_ratios_with_a_label(report_file: Path, tmp_path: Path) -> None:
    got = _probe(report_file, tmp_path)
    assert len(got["zeroBars"]) == 2  # guest zeroed bytes of memctl-4k and memctl-2m
    for bar in got["zeroBars"]:
        assert bar["text"] == "0(−100 %)" and bar["height"] > 20


def test_three_trace_report_fits_a_laptop_screen(report_runs, tmp_path: Path) -> None:
    import dataclasses

    runs = [dataclasses.replace(r, trace=f"trace{k}.lackey", extra={}) for k in range(3) for r in report_runs]
    report = write_report(runs, tmp_path / "three.html")
    got = _probe(report, tmp_path, width=1366)
    assert got["scrollWidth"] <= got["clientWidth"]  # no horizontal scroll at 1366 px
    assert len(got["answers"]) == 6  # two pairs on each of three traces
