"""CLI of the config and engine layers, through typer's CliRunner."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

from typer.testing import CliRunner

from memmodel.cli import app
from memmodel.engine import COUNTER_NAMES

runner = CliRunner()
CONFORMANCE = Path(__file__).parent.parent / "data" / "conformance"


def test_configs_lists_every_vm_and_cpu_preset() -> None:
    out = runner.invoke(app, ["configs"])
    assert out.exit_code == 0, out.output
    for name in ("baseline-4k", "memctl-2m", "hugetlb-1g", "native-thp", "skylake", "zen5", "sapphire-rapids"):
        assert name in out.output


def test_configs_show_prints_resolved_toml_with_the_cpu_override() -> None:
    out = runner.invoke(app, ["configs", "show", "memctl-2m", "--cpu", "zen4"])
    assert out.exit_code == 0, out.output
    doc = tomllib.loads(out.output)
    assert doc["guest"]["page_size"] == "1G" and doc["guest"]["zeroing"] is False
    assert doc["tlb"]["l1"][0]["entries"] == 72  # zen4: 72-entry fully associative L1 DTLB


def test_configs_show_unknown_name_is_an_error_without_traceback() -> None:
    out = runner.invoke(app, ["configs", "show", "nope"])
    assert out.exit_code == 2
    assert "unknown vm preset 'nope'" in out.output
    assert "Traceback" not in out.output


def test_simulate_json_has_every_counter_for_every_trace_and_config() -> None:
    trace = str(CONFORMANCE / "tiny.lackey")
    configs = [str(CONFORMANCE / f"{n}.toml") for n in ("skylake-baseline-4k", "native-thp-frag")]
    out = runner.invoke(app, ["simulate", trace, "-c", configs[0], "-c", configs[1], "--json", "-"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    expected = json.loads((CONFORMANCE / "tiny.expected.json").read_text())
    assert [d["config"] for d in doc] == ["conformance-skylake-baseline-4k", "conformance-native-thp-frag"]
    # the v1 example lists the v1 counters; a trace without U records leaves the v2 ones at rest
    for got, want in ((doc[0]["counters"], expected["skylake-baseline-4k"]),
                      (doc[1]["counters"], expected["native-thp-frag"])):
        assert {k: got[k] for k in want} == want
        assert got["unmaps"] == got["guest_freed_bytes"] == got["tlb_flushes"] == got["host_discards"] == 0
    assert set(doc[0]["counters"]) == set(COUNTER_NAMES)
    assert doc[0]["counters"]["host_resident_bytes"] == doc[0]["counters"]["host_backed_bytes"]
    assert doc[0]["derived"]["loads_per_walk"] == expected["skylake-baseline-4k"]["walk_loads"] / 9


def test_simulate_prints_a_table_without_json(tmp_path: Path) -> None:
    out = runner.invoke(app, ["simulate", str(CONFORMANCE / "tiny.lackey"), "-c", "memctl-2m"])
    assert out.exit_code == 0, out.output
    assert "walk_loads" in out.output and "memctl-2m" in out.output


def test_simulate_missing_trace_and_bad_config_are_clear_errors(tmp_path: Path) -> None:
    out = runner.invoke(app, ["simulate", str(tmp_path / "none.parquet"), "-c", "memctl-2m"])
    assert out.exit_code == 2 and "no such trace file" in out.output
    bad = tmp_path / "bad.toml"
    bad.write_text("[guest]\nlevels = 6\n")
    out = runner.invoke(app, ["simulate", str(CONFORMANCE / "tiny.lackey"), "-c", str(bad)])
    assert out.exit_code == 2 and "guest.levels" in out.output and "Traceback" not in out.output


def test_help_is_instant_because_heavy_modules_are_not_imported() -> None:
    code = "import memmodel.cli, sys; print(sorted(m for m in ('numba', 'polars', 'pyarrow', 'plotly', 'dask') " \
           "if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_version_flag_prints_the_version() -> None:
    from memmodel import __version__

    out = runner.invoke(app, ["--version"])
    assert out.exit_code == 0 and out.output.strip() == f"memmodel {__version__}"
