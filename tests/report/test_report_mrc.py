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


CONF = TRACE.parent


def test_compare_mrc_replays_each_config_once_and_equals_the_standalone_curves(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import polars as pl

    import memmodel.analysis.api as api
    import memmodel.analysis.mrc as mrc_mod
    from memmodel.analysis.mrc import CompareCurves

    made: list[str] = []

    class CountingReplay(api.Replay):
        def __init__(self, cfg, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
            made.append(cfg.name)
            super().__init__(cfg, *args, **kwargs)

    monkeypatch.setattr(api, "Replay", CountingReplay)
    monkeypatch.setattr(mrc_mod, "Replay", CountingReplay)
    curves = CompareCurves()
    configs = ["baseline-4k", "baseline-thp", "memctl-2m"]
    runs = api.run([TRACE, CONF / "tiny.lackey"], configs, on_batch=curves)
    assert made == configs * 2  # the compare's replays only: no replay for the curves
    monkeypatch.undo()
    for i, trace in enumerate([TRACE, CONF / "tiny.lackey"]):
        frame = curves.frame(i, trace.name)
        alone = pl.concat([miss_ratio_curves(trace, c) for c in configs])
        alone = alone.with_columns(pl.lit(trace.name).alias("trace"))
        assert frame.sort("config", maintain_order=True).equals(alone.sort("config", maintain_order=True))
        assert curves.notes(i) == []
    # the curves count the replays' translations
    assert set(frame["accesses"]) == {int(runs[-1].result.counters["accesses"])} != {0}


def test_compare_mrc_leaves_out_what_has_no_exact_curve_and_says_why(tmp_path: Path) -> None:
    from memmodel.analysis.api import run
    from memmodel.analysis.mrc import CompareCurves

    curves = CompareCurves()
    run([TRACE, CONF / "tiny_lifecycle.lackey"], ["baseline-thp", "baseline-thp-fpr"], on_batch=curves)
    frame = curves.frame(0, TRACE.name)
    assert set(frame["config"]) == {"baseline-thp"}
    assert curves.notes(0) == ["No curve for baseline-thp-fpr: free page reporting flushes the TLB; curves are exact "
                               "only without it."]
    assert curves.frame(1, "tiny_lifecycle.lackey").height == 0
    assert curves.notes(1)[0].startswith("No curves: the trace holds U (unmap) records")
    out = tmp_path / "r.html"
    res = CliRunner().invoke(app, ["compare", str(TRACE), "-c", "baseline-thp", "-c", "baseline-thp-fpr",
                                   "--fragmentation", "none", "--report", str(out), "--mrc"])
    assert res.exit_code == 0, res.output
    assert "No curve for baseline-thp-fpr: free page reporting flushes the TLB" in out.read_text()
