# ruff: noqa: E501  (verbatim perf output lines)
"""Issue 11, bad input: perf numbers out of range, truncated perf lines, damaged stores, pipes, empty
traces, impossible configs, huge tokens, Ctrl-C. Each through the CLI: exit code, no traceback, the
message names the file (and the line, for trace input)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from memmodel.cli import app

DATA = Path(__file__).resolve().parent.parent / "data"
TINY = DATA / "conformance" / "tiny.lackey"
runner = CliRunner()

X_HEADER = "# PID, TID, IP, ADDR, LOCAL WEIGHT, DSRC, SYMBOL\n"
X_GOOD = "14857,14857,0x401126,0x7f19939e0110,35,0x10268100142,/usr/bin/pchase:main\n"
D_HEADER = "# PID, TID, IP, ADDR, PHYS ADDR, DATA PAGE SIZE, LOCAL WEIGHT, DSRC, SYMBOL\n"
D_GOOD = "20134 20134 0xffffffffb63f645c 0xffffffffb752b814 0xcfb52b814 2M 225 0x26a100142 /vmlinux:_raw_spin_lock\n"
S_GOOD = ("         taskset  182628 247517.778385:          1  cpu_core/mem-loads,ldlat=30/: ffffb33a850078a0     "
          "40268100142 |OP LOAD|LVL L1 hit|SNP None|TLB L1 or L2 hit|LCK No|BLK  Addr  5  33  0 ffffffff8cc2ba08 [unknown] ([unknown])\n")


def assert_clean_error(res: Result, *needles: str) -> None:
    """Non-zero exit, no traceback, an 'error:' line, every needle in the output."""
    assert res.exit_code not in (0, None), res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output
    for n in needles:
        assert n in res.output, (n, res.output)


def _ingest(tmp_path: Path, name: str, text: str, *extra: str) -> tuple[Result, Path]:
    trace = tmp_path / name
    trace.write_text(text)
    out = tmp_path / "out.parquet"
    return runner.invoke(app, ["ingest", str(trace), "-o", str(out), "--json", *extra]), trace


# ---- perf numbers out of range ---------------------------------------------------------------------

OUT_OF_RANGE = {
    "x_ip_2_64": (X_HEADER + "14857,14857,0x1ffffffffffffffffff,0x7f19939e0110,35,0x10268100142,/usr/bin/pchase:main\n", "IP"),
    "x_dsrc_2_64": (X_HEADER + "14857,14857,0x401126,0x7f19939e0110,35,0x10000000000000000,/usr/bin/pchase:main\n", "DSRC"),
    "x_weight_2_64": (X_HEADER + "14857,14857,0x401126,0x7f19939e0110,18446744073709551616,0x10268100142,a:main\n", "LOCAL WEIGHT"),
    "x_pid_2_32": (X_HEADER + "4294967296,14857,0x401126,0x7f19939e0110,35,0x10268100142,/usr/bin/pchase:main\n", "PID"),
    "x_tid_2_32": (X_HEADER + "14857,4294967296,0x401126,0x7f19939e0110,35,0x10268100142,/usr/bin/pchase:main\n", "TID"),
    "d_page_99E": (D_HEADER + D_GOOD.replace(" 2M ", " 99E "), "page size"),
    "d_phys_2_64": (D_HEADER + D_GOOD.replace("0xcfb52b814", "0x1" + "0" * 16), "PHYS ADDR"),
    "script_tid_2_32": (S_GOOD.replace("182628", "4294967296"), "TID"),
    "script_period_2_64": (S_GOOD.replace("          1  cpu_core", " 18446744073709551616  cpu_core"), "period"),
    "script_addr_2_64": (S_GOOD.replace("ffffb33a850078a0", "1ffffb33a850078a0"), "ADDR"),
    "script_time_2_64": (S_GOOD.replace("247517.778385", "99999999999999.778385"), "time"),
}


@pytest.mark.parametrize("case", sorted(OUT_OF_RANGE))
def test_perf_number_out_of_range_is_a_bad_line_naming_file_and_line(case: str, tmp_path: Path) -> None:
    text, field = OUT_OF_RANGE[case]
    res, trace = _ingest(tmp_path, f"{case}.txt", text)
    line = text.count("\n")  # the bad line is the last one
    assert_clean_error(res, f"{trace}:{line}:", field, "does not fit")


@pytest.mark.parametrize("case", sorted(OUT_OF_RANGE))
def test_perf_number_out_of_range_with_skip_bad_is_a_counted_skip(case: str, tmp_path: Path) -> None:
    text, _ = OUT_OF_RANGE[case]
    res, _ = _ingest(tmp_path, f"{case}.txt", text, "--skip-bad")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["skipped"].get("bad_line") == 1 and d["reconciled"]


def test_perf_number_out_of_range_in_info_names_file_and_line(tmp_path: Path) -> None:
    trace = tmp_path / "ip.txt"
    trace.write_text(OUT_OF_RANGE["x_ip_2_64"][0])
    assert_clean_error(runner.invoke(app, ["info", str(trace)]), f"{trace}:2:", "IP")


# ---- truncated perf lines are bad lines, never other records --------------------------------------


@pytest.mark.parametrize(("case", "text", "line"), [
    ("x_cut_inside_dsrc", X_HEADER + X_GOOD + "14857,14857,0x401126,0x7f19939e0110,35,0x1026\n" + X_GOOD, 3),
    ("blank_separated_cut_to_0x508",
     "# PID, TID, IP, ADDR, LOCAL WEIGHT, DSRC, SYMBOL\n381 381 0xffffffff8102a9e3 0xffff88021f50e2c0 0 0x508\n", 2),
    ("script_cut_before_op", S_GOOD + S_GOOD.split(" |OP")[0] + "\n" + S_GOOD, 2),
    ("script_cut_inside_dsrc", S_GOOD + S_GOOD.split("0142 |OP")[0] + "\n", 2),
    ("script_cut_after_addr", S_GOOD + S_GOOD.split("     4026")[0] + "\n", 2),
])
def test_truncated_perf_line_is_a_bad_line(case: str, text: str, line: int, tmp_path: Path) -> None:
    res, trace = _ingest(tmp_path, f"{case}.txt", text)
    assert_clean_error(res, f"{trace}:{line}:", "cut short")
    res, _ = _ingest(tmp_path, f"{case}.txt", text, "--skip-bad")
    d = json.loads(res.stdout)
    assert d["skipped"]["bad_line"] == 1 and d["reconciled"]
    assert d["by_kind"]["M"] == 0  # the cut DSRC 0x1026 would decode as load+store: never a record


@pytest.mark.parametrize(("case", "text"), [
    ("x", X_HEADER + X_GOOD + "14857,14857,0x401126,0x7f19939e0110,35,0x1026"),
    ("script", S_GOOD + S_GOOD.split(" |OP")[0]),
])
def test_perf_cut_last_line_without_newline_is_skipped_with_a_warning(case: str, text: str, tmp_path: Path) -> None:
    res, trace = _ingest(tmp_path, f"{case}.txt", text)
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["records"] == 1 and d["skipped"] == {"truncated_last_line": 1} and d["reconciled"]
    assert any(f"{trace}:" in w and "no line end" in w for w in d["warnings"])


# ---- stores ---------------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Path:
    out = tmp_path / "t.parquet"
    res = runner.invoke(app, ["ingest", str(TINY), "-o", str(out), "--json"])
    assert res.exit_code == 0, res.output
    return out


@pytest.mark.parametrize("cut", ["half", "no_footer", "first_8_bytes"])
@pytest.mark.parametrize("cmd", ["info", "simulate"])
def test_truncated_store_is_not_a_complete_trace_store(cut: str, cmd: str, store: Path, tmp_path: Path) -> None:
    data = store.read_bytes()
    keep = {"half": len(data) // 2, "no_footer": len(data) - 12, "first_8_bytes": 8}[cut]
    bad = tmp_path / f"{cut}.parquet"
    bad.write_bytes(data[:keep])
    args = ["info", str(bad)] if cmd == "info" else ["simulate", str(bad), "-c", "baseline-4k"]
    assert_clean_error(runner.invoke(app, args), str(bad), "not a complete trace store")


@pytest.mark.parametrize("cmd", ["info", "simulate"])
def test_temporary_file_of_a_killed_ingest_is_not_a_complete_trace_store(cmd: str, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from memmodel.trace.schema import schema_for

    # what `kill -9` leaves: a ParquetWriter that wrote row groups but never its footer
    tmp = tmp_path / ".t.parquet.1234.tmp"
    schema = schema_for([])
    w = pq.ParquetWriter(tmp, schema)
    w.write_batch(pa.record_batch([pa.array([1], pa.uint8()), pa.array([4096], pa.uint64()),
                                   pa.array([8], schema.field("size").type)], schema=schema))
    data = tmp.read_bytes()
    w.close()
    tmp.write_bytes(data)
    args = ["info", str(tmp)] if cmd == "info" else ["simulate", str(tmp), "-c", "baseline-4k"]
    assert_clean_error(runner.invoke(app, args), str(tmp), "not a complete trace store")


def test_corrupt_store_pages_are_not_a_complete_trace_store(store: Path, tmp_path: Path) -> None:
    data = bytearray(store.read_bytes())
    for i in range(8, len(data) // 2):  # scramble the column pages, keep the footer
        data[i] ^= 0x5A
    bad = tmp_path / "corrupt.parquet"
    bad.write_bytes(bytes(data))
    assert_clean_error(runner.invoke(app, ["info", str(bad)]), str(bad))


# ---- pipes ----------------------------------------------------------------------------------------


def _fifo_writer(path: Path, data: bytes) -> threading.Thread:
    def feed() -> None:
        with open(path, "wb") as f:
            f.write(data)

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    return t


def test_ingest_streams_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "trace.fifo"
    os.mkfifo(fifo)
    t = _fifo_writer(fifo, TINY.read_bytes())
    res = runner.invoke(app, ["ingest", str(fifo), "-o", str(tmp_path / "t.parquet"), "--json"])
    t.join(10)
    assert res.exit_code == 0, res.output
    ref = runner.invoke(app, ["ingest", str(TINY), "-o", str(tmp_path / "ref.parquet"), "--json"])
    a, b = json.loads(res.stdout), json.loads(ref.stdout)
    assert a["by_kind"] == b["by_kind"] and a["inputs"][0]["identity"]["sha256"] == b["inputs"][0]["identity"]["sha256"]


@pytest.mark.parametrize("cmd", ["simulate", "info"])
def test_replaying_a_fifo_is_refused_with_the_reason(cmd: str, tmp_path: Path) -> None:
    fifo = tmp_path / "trace.fifo"
    os.mkfifo(fifo)
    args = ["simulate", str(fifo), "-c", "baseline-4k"] if cmd == "simulate" else ["info", str(fifo)]
    assert_clean_error(runner.invoke(app, args), str(fifo), "is a pipe", "memmodel ingest")


# ---- traces with 0 translations -------------------------------------------------------------------


@pytest.fixture
def no_data(tmp_path: Path) -> Path:
    trace = tmp_path / "ionly.lackey"
    trace.write_text("I  04000000,4\nI  04000004,4\n")
    return trace


def test_simulate_of_a_trace_with_0_translations_warns_on_the_terminal_and_in_the_json(
    no_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "r.json"
    res = runner.invoke(app, ["simulate", str(no_data), "-c", "baseline-4k", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "warning:" in res.output and "0 translations" in res.output and str(no_data) in res.output
    doc = json.loads(out.read_text())
    assert all(any("0 translations" in w for w in d["warnings"]) for d in doc)


def test_compare_refuses_a_trace_with_0_translations(no_data: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["compare", str(no_data), "-c", "baseline-thp", "-c", "memctl-2m"])
    assert_clean_error(res, str(no_data), "0 translations", "nothing to compare")
    store = tmp_path / "ionly.parquet"
    assert runner.invoke(app, ["ingest", str(no_data), "-o", str(store)]).exit_code == 0
    res = runner.invoke(app, ["compare", str(store), "-c", "baseline-thp", "-c", "memctl-2m"])
    assert_clean_error(res, str(store), "0 translations")


# ---- configs that ask for the impossible ----------------------------------------------------------


@pytest.mark.parametrize(("toml", "needles"), [
    ('[host]\nmemory = "1048576T"\n', ("host.memory", "16T", "32 bits")),
    ('[guest]\nmemory = "17T"\n', ("guest.memory", "16T")),
    ('[guest]\nmemory = "16T"\n', ("guest.memory", "16383G", "32 bits")),
    ('[[tlb.l1]]\npage_sizes = ["4K"]\nentries = 4294967296\nways = 4\n', ("tlb.l1.entries", "2^24")),
    ('[host]\nmemory = "' + "9" * 5000 + 'G"\n', ("host.memory", "too large")),
    ("[guest]\nseed = " + "9" * 5000 + "\n", ("not valid TOML",)),
    ("[cost]\nwalk_load_nss = 3.0\n", ("cost.walk_load_nss", "did you mean 'walk_load_ns'")),
    ("[cost]\nwalk_load_ns = -1\n", ("cost.walk_load_ns", "> 0")),
])
def test_impossible_config_is_a_clean_error_naming_the_file_and_key(toml: str, needles: tuple[str, ...],
                                                                    tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(toml)
    res = runner.invoke(app, ["simulate", str(TINY), "-c", str(cfg)])
    assert_clean_error(res, str(cfg), *needles)
    assert len(res.output) < 3000


def test_cost_keys_checked_at_load_are_the_cost_model_keys() -> None:
    from memmodel.analysis.costs import CostModel
    from memmodel.config.load import COST_KEYS

    assert set(COST_KEYS) == set(CostModel.key_names())


def test_non_utf8_config_is_a_clean_error(tmp_path: Path) -> None:
    cfg = tmp_path / "latin1.toml"
    cfg.write_bytes(b'name = "caf\xe9"\n')
    assert_clean_error(runner.invoke(app, ["simulate", str(TINY), "-c", str(cfg)]), str(cfg), "UTF-8", "0xe9")


def test_misspelt_preset_suggests_the_nearest_name() -> None:
    res = runner.invoke(app, ["simulate", str(TINY), "-c", "memctl-2n"])
    assert_clean_error(res, "memctl-2n", "did you mean 'memctl-2m'")


def test_two_configs_with_the_same_name_in_one_compare_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for d, frag in (("a", 0.0), ("b", 0.5)):
        (tmp_path / d / "x.toml").write_text(f'cpu = "skylake"\n[host]\nfragmentation = {frag}\n')
    res = runner.invoke(app, ["compare", str(TINY), "-c", str(tmp_path / "a" / "x.toml"),
                              "-c", str(tmp_path / "b" / "x.toml"), "--baseline", "x"])
    assert_clean_error(res, str(tmp_path / "a" / "x.toml"), str(tmp_path / "b" / "x.toml"), "same name")


def test_out_of_memory_names_the_config_file(tmp_path: Path) -> None:
    import numpy as np

    from memmodel.trace import write_store

    trace = tmp_path / "wide.parquet"  # one store every 2 MiB over 1.5 GiB: more than a 1 GiB guest holds
    gva = np.arange(768, dtype=np.uint64) << np.uint64(21)
    write_store(trace, {"kind": np.full(768, 2, np.uint8), "gva": gva, "size": np.full(768, 8, np.uint64)})
    cfg = tmp_path / "small-guest.toml"
    cfg.write_text('cpu = "skylake"\n[guest]\nmemory = "1G"\npage_size = "2M"\n')
    res = runner.invoke(app, ["simulate", str(trace), "-c", str(cfg), "-c", "baseline-4k"])
    assert_clean_error(res, "out of memory", f"config file: {cfg}", "docs/model.md")
    assert "MODEL.md" not in res.output  # users have the repo's docs, not the reference text


def test_simulate_points_only_at_the_repos_docs(tmp_path: Path) -> None:
    help_text = runner.invoke(app, ["simulate", "--help"]).output
    res = runner.invoke(app, ["simulate", str(TINY), "-c", "baseline-4k"])
    assert res.exit_code == 0, res.output
    for out in (help_text, res.output):
        assert "docs/model.md" in out and "MODEL.md" not in out


# ---- huge tokens, Ctrl-C --------------------------------------------------------------------------


def test_a_10_mb_bad_token_is_shortened_in_the_error(tmp_path: Path) -> None:
    token = "Z" * (10 << 20)
    trace = tmp_path / "huge.txt"
    trace.write_text(X_HEADER + X_GOOD.replace("35", token))
    res = runner.invoke(app, ["ingest", str(trace), "-o", str(tmp_path / "o.parquet"), "--format", "perf-mem-raw"])
    assert_clean_error(res, f"{trace}:2:", "characters cut")
    assert len(res.output) < 3000
    cfg = tmp_path / "huge.toml"
    cfg.write_text(f'[guest]\npage_size = "{token}"\n')
    res = runner.invoke(app, ["simulate", str(TINY), "-c", str(cfg)])
    assert_clean_error(res, str(cfg), "characters cut")
    assert len(res.output) < 3000


def test_ctrl_c_in_simulate_prints_one_line_saying_what_was_interrupted_and_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import memmodel.analysis.api as api

    def interrupted(*a: object, **k: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "run", interrupted)
    out = tmp_path / "r.json"
    res = runner.invoke(app, ["simulate", str(TINY), "-c", "baseline-4k", "--json", str(out)])
    assert res.exit_code == 130 and "Traceback" not in res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert lines == ["interrupted: memmodel simulate was stopped by Ctrl-C; nothing was written"]
    assert not out.exists()


def test_ctrl_c_in_ingest_leaves_no_partial_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import memmodel.trace.store as store

    real = store._open_reader

    def interrupted_reader(*a: object, **k: object) -> object:
        it, *rest = real(*a, **k)  # type: ignore[arg-type]

        def batches() -> object:
            yield next(iter(it))
            raise KeyboardInterrupt

        return (batches(), *rest)

    monkeypatch.setattr(store, "_open_reader", interrupted_reader)
    out = tmp_path / "t.parquet"
    res = runner.invoke(app, ["ingest", str(TINY), "-o", str(out)])
    assert res.exit_code == 130 and "Traceback" not in res.output
    assert f"interrupted: memmodel ingest into {out} was stopped by Ctrl-C; {out} was not written" in res.output
    assert list(tmp_path.iterdir()) == []
