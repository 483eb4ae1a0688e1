"""The comparison frame, its JSON round trip and the compare/report/calibrate commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from memmodel.analysis.api import run, simulate
from memmodel.analysis.compare import (
    DEFAULT_CONFIGS,
    RATIO_METRICS,
    compare,
    compare_runs,
    runs_from_json,
    runs_to_compare_json,
)
from memmodel.cli import app

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "traces" / "stream.lackey.xz"


def _reader_ready() -> bool:
    import memmodel.trace as t

    return hasattr(t, "iter_batches") and hasattr(t, "trace_identity")


needs_trace = pytest.mark.skipif(not (SHIPPED.is_file() and _reader_ready()),
                                 reason="shipped trace or trace reader not available yet")


def _frame(n: int = 40_000, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    gva = 0x5555_0000_0000 + np.concatenate([rng.integers(0, 64 << 20, n // 2), rng.integers(0, 3 << 30, n - n // 2)])
    return {"kind": rng.integers(0, 4, n).astype(np.uint8), "gva": gva.astype(np.uint64),
            "size": rng.choice([1, 4, 8, 16], n).astype(np.uint16)}


@pytest.fixture(scope="module")
def runs():
    return run(_frame(), list(DEFAULT_CONFIGS), window=5000)


def test_default_configs_are_native_baselines_and_memctl() -> None:
    assert DEFAULT_CONFIGS == ("native-thp", "baseline-4k", "baseline-thp", "baseline-thp-fpr", "memctl-4k",
                               "memctl-2m")
    from memmodel.cli.compare_cmds import _DEFAULT_CONFIGS

    assert _DEFAULT_CONFIGS == DEFAULT_CONFIGS


def _assert_compare_equals_simulate(cmp, sim) -> None:
    assert cmp["config"].to_list() == sim["config"].to_list()
    for col in ("walks", "walk_loads", "guest_faults", "host_faults", "guest_zeroed_bytes", "host_zeroed_bytes",
                "host_backed_bytes", "touched_bytes"):
        assert cmp[col].to_list() == sim[col].to_list(), col
    for col in ("l1_hit_rate", "l2_hit_rate", "loads_per_walk", "bloat_bytes", "host_unusable_index_2m",
                "host_extfrag_index_2m", "host_unusable_index_1g", "host_extfrag_index_1g"):
        assert cmp[col].to_list() == sim[col].to_list(), col


def test_compare_numbers_equal_the_simulate_counters() -> None:
    frame = _frame()
    _assert_compare_equals_simulate(compare(frame), simulate(frame, list(DEFAULT_CONFIGS)))


@needs_trace
def test_compare_numbers_equal_the_simulate_counters_on_a_shipped_trace() -> None:
    _assert_compare_equals_simulate(compare(str(SHIPPED)), simulate(str(SHIPPED), list(DEFAULT_CONFIGS)))


def test_ratios_divide_by_the_baseline_of_the_same_trace(runs) -> None:
    df = compare_runs(runs, baseline="baseline-4k")
    base = df.filter(df["config"] == "baseline-4k").row(0, named=True)
    for row in df.iter_rows(named=True):
        for col in RATIO_METRICS:
            if base[col]:
                assert row[f"{col}_vs_base"] == pytest.approx(row[col] / base[col]), col
            else:
                assert row[f"{col}_vs_base"] is None
    assert base["walks_vs_base"] == 1.0


def test_baseline_must_be_a_compared_config(runs) -> None:
    with pytest.raises(ValueError, match="baseline 'nope'"):
        compare_runs(runs, baseline="nope")


def test_native_runs_have_no_host_fragmentation_indices(runs) -> None:
    row = compare_runs(runs).row(0, named=True)
    assert row["config"] == "native-thp" and row["host_unusable_index_2m"] is None


def test_json_round_trip_gives_the_same_comparison(runs, tmp_path: Path) -> None:
    p = tmp_path / "r.json"
    p.write_text(runs_to_compare_json(runs))
    again = runs_from_json(p)
    assert compare_runs(again).equals(compare_runs(runs))
    doc = json.loads(p.read_text())
    assert doc[0]["estimates"]["total_s"] == pytest.approx(compare_runs(runs)["est_total_s"][0])
    assert set(doc[0]["cost"]) >= {"zero_gbps_4k", "walk_load_ns"}


def test_report_command_writes_html_from_saved_json(runs, tmp_path: Path) -> None:
    p = tmp_path / "r.json"
    p.write_text(runs_to_compare_json(runs))
    out = tmp_path / "r.html"
    res = CliRunner().invoke(app, ["report", str(p), "-o", str(out), "--baseline", "baseline-thp"])
    assert res.exit_code == 0, res.output
    assert out.stat().st_size > 1_000_000 and '<section id="summary">' in out.read_text()


def test_report_command_rejects_an_unknown_baseline_without_traceback(runs, tmp_path: Path) -> None:
    p = tmp_path / "r.json"
    p.write_text(runs_to_compare_json(runs))
    res = CliRunner().invoke(app, ["report", str(p), "-o", str(tmp_path / "x.html"), "--baseline", "nope"])
    assert res.exit_code == 2 and "not one of the compared configs" in res.output


def test_report_command_rejects_a_file_that_is_not_results(tmp_path: Path) -> None:
    p = tmp_path / "bad.json"
    p.write_text('[{"trace": "x"}]')
    res = CliRunner().invoke(app, ["report", str(p), "-o", str(tmp_path / "x.html")])
    assert res.exit_code == 2 and "not a result of" in res.output


def test_calibrate_command_writes_a_cost_table(tmp_path: Path) -> None:
    out = tmp_path / "cost.toml"
    res = CliRunner().invoke(app, ["calibrate", "-o", str(out), "--repeats", "1", "--size-mib", "4",
                                   "--touch-mib", "4"])
    assert res.exit_code == 0, res.output
    import tomllib

    from memmodel.analysis.costs import CostModel

    assert set(tomllib.loads(out.read_text())["cost"]) == set(CostModel.key_names())


@needs_trace
def test_compare_command_prints_the_table_and_writes_json_and_report(tmp_path: Path) -> None:
    rep, js = tmp_path / "demo.html", tmp_path / "r.json"
    res = CliRunner().invoke(app, ["compare", str(SHIPPED), "--report", str(rep), "--json", str(js)])
    assert res.exit_code == 0, res.output
    assert "side by side" in res.output and "memctl-2m" in res.output
    doc = json.loads(js.read_text())
    assert rep.is_file() and len([d for d in doc if "study" not in d]) == len(DEFAULT_CONFIGS)
    # the default fragmentation study (f = 0, 0.9, 0.99) replays the 2M pair: baseline-thp and memctl-2m
    assert sorted((d["study"]["base_config"], d["study"]["fragmentation"]) for d in doc if "study" in d) == [
        (c, f) for c in ("baseline-thp", "memctl-2m") for f in (0.0, 0.9, 0.99)]


# --- issue 10: fair pairs, the quotable sentence, normalised costs, fragmentation study, --cost ------------------

CONF = REPO / "tests" / "data" / "conformance"


def _sim(name: str, counters: dict, series: dict | None = None, extras: dict | None = None, **cfg_kw):
    """A Run with hand-made counters (no replay): lifecycle outputs can be tested before the engine has them."""
    import dataclasses

    from memmodel.analysis.api import Run
    from memmodel.analysis.compare import LIFECYCLE_METRICS
    from memmodel.config import load_config
    from memmodel.engine.result import COUNTER_NAMES, SimResult

    cfg = dataclasses.replace(load_config(name), **cfg_kw)
    # an engine without the memory lifecycle: its counters are absent unless the test gives them
    full = {k: 0 for k in COUNTER_NAMES if k not in LIFECYCLE_METRICS} | counters
    ser = series if series is not None else {"translations": np.array([10, 20]), "walk_loads": np.array([0, 0])}
    kw = {"extras": extras} if extras is not None and any(
        f.name == "extras" for f in dataclasses.fields(SimResult)) else {}
    res = SimResult(config_name=cfg.name, counters=full, walk_hist=np.zeros(1, np.int64), series=ser, window=10, **kw)
    return Run("known.lackey", {"path": "known.lackey"}, cfg, res)


def test_memctl_presets_declare_a_baseline_with_the_same_host_page_size() -> None:
    from memmodel.config import load_config

    for memctl, base in (("memctl-2m", "baseline-thp"), ("memctl-4k", "baseline-4k")):
        m = load_config(memctl)
        assert m.baseline == base
        assert load_config(m.baseline).host.page_shift == m.host.page_shift


def test_pairing_puts_each_memctl_config_next_to_its_declared_baseline(runs) -> None:
    from memmodel.analysis.compare import pairings

    got = [(p.memctl.config.name, p.baseline.config.name) for p in pairings(runs)]
    assert got == [("memctl-4k", "baseline-4k"), ("memctl-2m", "baseline-thp")]


def test_compare_frame_divides_by_the_declared_baseline_in_vs_pair_columns(runs) -> None:
    df = compare_runs(runs)
    rows = {r["config"]: r for r in df.iter_rows(named=True)}
    m, b = rows["memctl-4k"], rows["baseline-4k"]
    assert m["paired_with"] == "baseline-4k" and rows["baseline-4k"]["paired_with"] is None
    assert m["walk_loads_vs_pair"] == pytest.approx(m["walk_loads"] / b["walk_loads"])
    assert rows["baseline-thp"]["walk_loads_vs_pair"] is None


@pytest.mark.parametrize(("v", "b", "text"), [
    (0, 100, "−100 %"), (50, 100, "−50 %"), (100, 100, "±0 %"), (112, 100, "+12 %"), (1005, 1000, "+0.50 %"),
    (199, 100, "+99 %"), (250, 100, "2.5×"), (19_896, 1, "19,896×"), (999_954, 1_000_000, "−0.0046 %"),
])
def test_change_reads_as_percent_below_2x_and_as_a_multiple_above(v, b, text) -> None:
    from memmodel.analysis.compare import format_change

    assert format_change(v, b) == text


def test_summary_sentence_of_hand_made_lifecycle_counters() -> None:
    # memctl: half the walk loads, no guest zeroing, one 2 MiB host page; footprint 96 MiB at peak and end.
    # baseline: 32 guest 2 MiB pages zeroed (64 MiB), one 2 MiB host page; footprint 128 MiB peak, 64 MiB end.
    from memmodel.analysis.compare import Pairing, summary_sentence

    mib = 1 << 20
    cost = (("guest_fault_us_2m", 1.0), ("host_fault_us_2m", 1.0), ("zero_gbps_2m", 1.048576))
    m = _sim("memctl-2m", {"walk_loads": 1000, "host_pages_2m": 1, "host_resident_peak_bytes": 96 * mib,
                           "host_resident_bytes": 96 * mib}, cost=cost)
    b = _sim("baseline-thp", {"walk_loads": 2000, "guest_pages_2m": 32, "guest_zeroed_bytes": 64 * mib,
                              "host_pages_2m": 1, "host_resident_peak_bytes": 128 * mib,
                              "host_resident_bytes": 64 * mib}, cost=cost)
    # set-up at 1.048576 GB/s (2 MiB in 2 ms) and 1 µs per fault:
    memctl_s = 0.002 + 1e-6  # host: zero one 2 MiB page, one fault
    base_s = 32 * 0.002 + 32e-6 + 0.002 + 1e-6  # guest: 32 pages zeroed and faulted; host as memctl
    pct = round((1 - memctl_s / base_s) * 100)
    assert pct == 97
    assert summary_sentence(Pairing("known.lackey", m, b)) == (
        "memctl-2m vs baseline-thp on known.lackey: −50 % walk loads, 0 B guest zeroing (−64.0 MiB), "
        "host footprint −32.0 MiB at peak, +32.0 MiB at end; est. −97 % memory set-up time.")


def test_summary_sentence_without_lifecycle_counters_uses_host_backed_memory() -> None:
    from memmodel.analysis.compare import Pairing, summary_sentence

    m = _sim("memctl-2m", {"walk_loads": 10, "host_backed_bytes": 4 << 20})
    b = _sim("baseline-thp", {"walk_loads": 10, "host_backed_bytes": 6 << 20})
    s = summary_sentence(Pairing("known.lackey", m, b))
    assert "same walk loads (10)" in s and "host memory backed −2.0 MiB" in s and "at peak" not in s


def test_summary_sentence_on_the_shipped_true_trace_states_the_exact_counters() -> None:
    from memmodel.analysis.compare import format_change, pairings, summary_sentence

    runs = run(str(CONF / "true.lackey.xz"), ["baseline-thp", "memctl-2m"], window=5000)
    sim = {r["config"]: r for r in simulate(str(CONF / "true.lackey.xz"),
                                            ["baseline-thp", "memctl-2m"]).iter_rows(named=True)}
    (pair,) = pairings(runs)
    s = summary_sentence(pair)
    m, b = sim["memctl-2m"], sim["baseline-thp"]
    assert s.startswith("memctl-2m vs baseline-thp on true.lackey.xz: ")
    walk = (f"{format_change(m['walk_loads'], b['walk_loads'])} walk loads" if m["walk_loads"] != b["walk_loads"]
            else f"same walk loads ({m['walk_loads']:,})")
    assert walk in s
    assert m["guest_zeroed_bytes"] == 0 and b["guest_zeroed_bytes"] > 0
    assert f"0 B guest zeroing (−{b['guest_zeroed_bytes'] / 2**20:,.1f} MiB)" in s


def test_costs_are_normalised_per_access_and_per_1000_instructions(runs) -> None:
    df = compare_runs(runs)
    for row, r in zip(df.iter_rows(named=True), runs, strict=True):
        c = r.result.counters
        assert row["est_walk_ns_per_access"] == pytest.approx(row["est_walk_s"] / c["accesses"] * 1e9)
        assert row["est_setup_ns_per_kinstr"] == pytest.approx(row["est_setup_s"] / (c["instructions"] / 1000) * 1e9)


def test_per_1000_instructions_is_none_without_instruction_records() -> None:
    frame = _frame()
    frame["kind"] = np.where(frame["kind"] == 0, 1, frame["kind"]).astype(np.uint8)
    row = compare(frame, ["baseline-thp"]).row(0, named=True)
    assert row["est_walk_ns_per_kinstr"] is None and row["est_walk_ns_per_access"] is not None


def test_steady_state_walk_loads_are_those_of_the_second_half_of_the_series() -> None:
    from memmodel.analysis.compare import steady_walk_loads_per_access

    r = _sim("baseline-thp", {}, series={"translations": np.array([100, 200, 300, 400]),
                                         "walk_loads": np.array([500, 600, 610, 650])})
    assert steady_walk_loads_per_access(r.result) == pytest.approx((650 - 600) / (400 - 200))


def test_cost_table_applies_to_every_config_and_changes_only_estimates() -> None:
    frame = _frame()
    plain = compare(frame, ["baseline-thp", "memctl-2m"])
    slow = compare(frame, ["baseline-thp", "memctl-2m"], cost={"walk_load_ns": 100.0})
    assert slow["walk_loads"].to_list() == plain["walk_loads"].to_list()
    for row in slow.iter_rows(named=True):
        assert row["est_walk_s"] == pytest.approx(row["walk_loads"] * 100e-9)


def test_cost_file_errors_name_the_file(tmp_path: Path) -> None:
    from memmodel.analysis.costs import read_cost_file
    from memmodel.errors import ConfigError

    bad = tmp_path / "c.toml"
    bad.write_text("[cost]\nwalk_load = 3\n")
    with pytest.raises(ConfigError, match=r"c\.toml.*cost\.walk_load"):
        read_cost_file(bad)
    bad.write_text("walk_load_ns = 3\n")
    with pytest.raises(ConfigError, match=r"c\.toml: no \[cost\] table"):
        read_cost_file(bad)


def test_compare_cost_option_rejects_a_bad_file_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "cost.toml"
    bad.write_text("[cost]\nzero_gbps_4k = -1\n")
    res = CliRunner().invoke(app, ["compare", str(CONF / "tiny.lackey"), "-c", "baseline-thp", "--cost", str(bad)])
    assert res.exit_code == 2 and "cost.toml" in res.output and "Traceback" not in res.output


def test_fragmentation_study_host_share_is_twice_the_need_in_whole_gib() -> None:
    from memmodel.analysis.compare import study_host_memory

    gib = 1 << 30
    assert study_host_memory([_sim("baseline-thp", {"host_backed_bytes": 46 << 20})]) == gib
    assert study_host_memory([_sim("baseline-thp", {"host_backed_bytes": 2 * gib + 1})]) == 5 * gib
    assert study_host_memory([_sim("baseline-thp", {"host_backed_bytes": 1, "host_resident_peak_bytes": 3 * gib})]) \
        == 6 * gib


def test_fragmentation_study_replays_the_2m_pair_on_a_bounded_host_and_round_trips(runs, tmp_path: Path) -> None:
    from memmodel.analysis.compare import fragmentation_study, pairings

    frame = _frame()
    study = fragmentation_study(frame, runs, [0.0, 0.99], window=5000)
    assert [(r.extra["base_config"], r.extra["fragmentation"]) for r in study] == [
        ("baseline-thp", 0.0), ("memctl-2m", 0.0), ("baseline-thp", 0.99), ("memctl-2m", 0.99)]
    for r in study:
        assert r.config.host.memory == r.extra["host_memory"]
        assert r.config.host.fragmentation == r.extra["fragmentation"]
    hot = [r for r in study if r.extra["fragmentation"] == 0.99]
    assert all(r.result.counters["host_pages_4k"] > 0 for r in hot)  # the host ran out of whole 2 MiB blocks
    assert [p.memctl.extra["fragmentation"] for p in pairings(study)] == [0.0, 0.99]
    p = tmp_path / "s.json"
    p.write_text(runs_to_compare_json(list(runs) + study))
    again = runs_from_json(p)
    assert [r.extra.get("fragmentation") for r in again][-4:] == [0.0, 0.0, 0.99, 0.99]


def test_compare_command_prints_the_quotable_sentences_first(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["compare", str(CONF / "true.lackey.xz"), "--fragmentation", "0,0.99"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].startswith("memctl-4k vs baseline-4k on true.lackey.xz: ")
    assert lines[1].startswith("memctl-2m vs baseline-thp on true.lackey.xz: ")
    assert lines[2].startswith("When the host is fragmented (f = 0.99, 1 GiB host share): memctl-2m vs baseline-thp")


def test_compare_table_lines_are_not_broken_when_stdout_is_not_a_terminal() -> None:
    res = CliRunner().invoke(app, ["compare", str(CONF / "tiny.lackey"), "--fragmentation", "none"])
    assert res.exit_code == 0, res.output
    table = [ln for ln in res.stdout.splitlines() if ln.startswith(("┃", "│", "┏", "┡", "└"))]
    assert table and len({len(ln) for ln in table}) == 1  # one width: no cell wrapped onto a second line
    assert any(ln.startswith("│ walk loads (page-table loads)") for ln in table)


@pytest.mark.parametrize("bad", ["2", "x", "-0.1"])
def test_fragmentation_values_outside_0_1_are_refused(bad: str) -> None:
    res = CliRunner().invoke(app, ["compare", str(CONF / "tiny.lackey"), "--fragmentation", bad])
    assert res.exit_code == 2 and "--fragmentation" in res.output


def test_compare_json_to_stdout_ends_with_a_newline() -> None:
    res = CliRunner().invoke(app, ["compare", str(CONF / "tiny.lackey"), "-c", "baseline-thp", "--json", "-",
                                   "--fragmentation", "none"])
    assert res.exit_code == 0 and res.stdout.endswith("]\n")


def test_top_level_api_has_real_signatures_and_leaks_nothing() -> None:
    import inspect
    import subprocess
    import sys

    import memmodel
    from memmodel.analysis.compare import DEFAULT_BASELINE, DEFAULT_FRAGMENTATION

    code = "import memmodel; print(sorted(n for n in dir(memmodel) if not n.startswith('_')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['compare', 'report', 'simulate']"
    for fn in (memmodel.simulate, memmodel.compare, memmodel.report):
        params = inspect.signature(fn).parameters.values()
        assert all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params) and fn.__doc__
    sig = inspect.signature(memmodel.report)
    assert sig.parameters["configs"].default == DEFAULT_CONFIGS
    assert sig.parameters["baseline"].default == DEFAULT_BASELINE
    assert tuple(sig.parameters["fragmentation"].default) == DEFAULT_FRAGMENTATION
    assert inspect.signature(memmodel.compare).parameters["configs"].default == DEFAULT_CONFIGS


def test_memmodel_report_stays_callable_after_the_report_package_is_imported(tmp_path: Path) -> None:
    import memmodel
    import memmodel.report.figures  # binds the name memmodel.report to the package

    out = memmodel.report(_frame(4000), tmp_path / "r.html", configs=["baseline-thp", "memctl-2m"],
                          fragmentation=[0.0, 0.99], window=1000)
    page = out.read_text()
    assert '<section id="fragmentation-study">' in page and "memctl-2m vs baseline-thp on &lt;frame&gt;" in page


@pytest.mark.parametrize("command", ["compare", "simulate", "sweep", "report", "calibrate", "mrc"])
def test_help_shows_option_types_as_words_not_python_types(command: str) -> None:
    res = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "160"})
    assert res.exit_code == 0
    for python_type in ("<str>", "<int", "<bool>", "<list[", "<path>", "<float>"):
        assert python_type not in res.output, python_type
    if command == "compare":
        assert "PATH..." in res.output and "INTEGER" in res.output and "FILE" in res.output


def test_the_api_and_the_cli_default_to_the_same_configs() -> None:
    import memmodel
    from memmodel.config.model import DEFAULT_COMPARE_CONFIGS

    assert memmodel._DEFAULT_COMPARE_CONFIGS == DEFAULT_COMPARE_CONFIGS
