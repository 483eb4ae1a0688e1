"""Same input, same config -> byte-identical results: simulate JSON, compare JSON and the HTML report."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from memmodel.cli import app

runner = CliRunner()
TRACE = str(Path(__file__).resolve().parent.parent / "data" / "conformance" / "true.lackey.xz")


def _run(args: list[str]) -> None:
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output


def test_simulate_json_is_byte_identical_across_runs(tmp_path: Path) -> None:
    for i in range(2):
        _run(["simulate", TRACE, "-c", "baseline-4k", "-c", "memctl-2m", "--json", str(tmp_path / f"s{i}.json")])
    assert (tmp_path / "s0.json").read_bytes() == (tmp_path / "s1.json").read_bytes()


def test_compare_json_and_report_are_byte_identical_across_runs(tmp_path: Path) -> None:
    for i in range(2):
        _run(["compare", TRACE, "-c", "baseline-thp", "-c", "memctl-2m", "--json", str(tmp_path / f"c{i}.json"),
              "--report", str(tmp_path / f"r{i}.html")])
    assert (tmp_path / "c0.json").read_bytes() == (tmp_path / "c1.json").read_bytes()
    assert (tmp_path / "r0.html").read_bytes() == (tmp_path / "r1.html").read_bytes()
    # the report from saved results is the same page
    _run(["report", str(tmp_path / "c0.json"), "-o", str(tmp_path / "from_json.html")])
    assert (tmp_path / "from_json.html").read_bytes() == (tmp_path / "r0.html").read_bytes()
