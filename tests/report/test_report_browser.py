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
