"""`memmodel compare --mrc` adds exact TLB miss-ratio curves to the report (issue: curves in the report)."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from memmodel.analysis.mrc import miss_ratio_curves
from memmodel.cli import app

TRACE = Path(__file__).resolve().parent.parent / "data" / "conformance" / "true.lackey.xz"


def test_compare_mrc_adds_a_curve_section_per_trace(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    res = CliRunner().invoke(app, ["compare", str(TRACE), "-c", "baseline-4k", "-c", "baseline-thp", "--report",
                                   str(out), "--mrc"])
    assert res.exit_code == 0, res.output
    page = out.read_text()
    assert '<section id="mrc-0"><h2>TLB miss-ratio curves: true.lackey.xz</h2>' in page
    assert len(re.findall(r'class="report-figure"', page)) == 8  # the 7 standard figures + the curves
    # the plotted points are the exact curve of each config (compulsory misses at large capacity)
    curve = miss_ratio_curves(TRACE, "baseline-4k")
    assert curve["misses"].min() == curve["compulsory"][0]


def test_mrc_without_a_report_is_a_clear_error(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["compare", str(TRACE), "-c", "baseline-thp", "--mrc"])
    assert res.exit_code == 2 and "--report" in res.output
