"""CLI of the trace layer through typer's CliRunner: ingest, info, record; no tracebacks; lazy imports."""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memmodel.cli import app

DATA = Path(__file__).resolve().parent.parent / "data"
runner = CliRunner()


def test_help_does_not_import_numba_polars_pyarrow():
    code = "import memmodel.cli, sys; print([m for m in ('numba','polars','pyarrow') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    r = subprocess.run([sys.executable, "-m", "memmodel", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "ingest" in r.stdout and "record" in r.stdout


def test_cli_ingest_json_summary(tmp_path):
    out = tmp_path / "t.parquet"
    r = runner.invoke(app, ["ingest", str(DATA / "lackey_true_superblocks.lackey.xz"), "-o", str(out), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["by_kind"] == {"I": 127785, "L": 27901, "S": 10266, "M": 1504, "U": 0}
    assert d["lines"] == d["records"] + sum(d["non_records"].values()) + sum(d["skipped"].values())
    assert d["skipped"] == {} and d["footer_check"]["status"] == "ok" and out.exists()


@pytest.mark.parametrize("good", [True, False])
def test_cli_ingest_restores_the_garbage_collector_and_blas_setting_after_success_and_failure(tmp_path, good):
    # the ingest command turns the cyclic collector off and OpenBLAS threads down while it runs (start-up
    # cost); an in-process caller (tests, notebooks) must get both back, also when the ingest fails
    src = DATA / ("lackey_true_superblocks.lackey.xz" if good else "perf_script_amd_ibs_data_src.txt")
    before = os.environ.get("OPENBLAS_NUM_THREADS")
    assert gc.isenabled()
    args = ["ingest", str(src), "-o", str(tmp_path / "t.parquet"), "--json"]
    r = runner.invoke(app, args if good else [*args, "--format", "lackey"])
    assert (r.exit_code == 0) == good, r.output
    assert gc.isenabled() and os.environ.get("OPENBLAS_NUM_THREADS") == before


def test_cli_ingest_table_output(tmp_path):
    r = runner.invoke(app, ["ingest", str(DATA / "csapp2e_cachelab_trans.trace"), "-o", str(tmp_path / "t.parquet")])
    assert r.exit_code == 0, r.output
    assert "records" in r.stdout and "596" in r.stdout and "MB/s" in r.stdout


def test_cli_bad_line_is_an_error_message_not_a_traceback(tmp_path):
    echo = str(DATA / "lackey_echo_logfd1.lackey.xz")
    r = runner.invoke(app, ["ingest", echo, "-o", str(tmp_path / "t.parquet")])
    assert r.exit_code == 2
    assert "Traceback" not in r.output and ":402319:" in r.output and "hello-from-client" in r.output
    r = runner.invoke(app, ["ingest", echo, "-o", str(tmp_path / "t.parquet"), "--skip-bad", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["skipped"] == {"bad_line": 1}


def test_cli_missing_file_and_bad_format_are_user_errors(tmp_path):
    r = runner.invoke(app, ["ingest", str(tmp_path / "nope"), "-o", str(tmp_path / "t.parquet")])
    assert r.exit_code == 2 and "no such file" in r.output
    trans = str(DATA / "csapp2e_cachelab_trans.trace")
    r = runner.invoke(app, ["ingest", trans, "-o", str(tmp_path / "t.parquet"), "--format", "pin"])
    assert r.exit_code == 2 and "lackey, perf-mem-raw, perf-script" in r.output


def test_cli_several_inputs_and_format_override(tmp_path):
    f = str(DATA / "csapp2e_cachelab_trans.trace")
    r = runner.invoke(app, ["ingest", f, f, "-o", str(tmp_path / "t.parquet"), "--format", "lackey", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["records"] == 2 * 596


def test_cli_info_json_on_raw_and_store(tmp_path):
    f = DATA / "csapp2e_cachelab_trans.trace"
    r1 = runner.invoke(app, ["info", str(f), "--json"])
    runner.invoke(app, ["ingest", str(f), "-o", str(tmp_path / "t.parquet")])
    r2 = runner.invoke(app, ["info", str(tmp_path / "t.parquet"), "--json"])
    assert r1.exit_code == 0 and r2.exit_code == 0
    a, b = json.loads(r1.stdout), json.loads(r2.stdout)
    assert a["by_kind"] == b["by_kind"] == {"I": 378, "L": 156, "S": 42, "M": 20, "U": 0}
    assert a["pages"] == b["pages"]
    r3 = runner.invoke(app, ["info", str(f)])
    assert r3.exit_code == 0 and "distinct 4K pages" in r3.stdout


def test_cli_record_without_valgrind_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    r = runner.invoke(app, ["record", "-o", str(tmp_path / "t.parquet"), "--", "true"])
    assert r.exit_code == 2 and "apt-get install valgrind" in r.output


def test_cli_record_without_command_is_a_user_error(tmp_path):
    r = runner.invoke(app, ["record", "-o", str(tmp_path / "t.parquet")])
    assert r.exit_code == 2 and "no command given" in r.output


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind not installed")
def test_cli_record_streams_the_trace_through_a_pipe_and_reports_the_exit_code(tmp_path):
    out = tmp_path / "t.parquet"
    # the client prints to stdout: that text must NOT reach the trace (it goes through --log-fd)
    r = runner.invoke(app, ["record", "-o", str(out), "--json", "--", "sh", "-c", "echo client-output; exit 3"])
    assert r.exit_code == 3, r.output
    d = json.loads(r.stdout)
    assert d["client_exit_code"] == 3 and d["skipped"] == {} and d["records"] > 10000
    assert d["footer_check"]["status"] == "ok"
    assert d["lines"] == d["records"] + sum(d["non_records"].values())
    assert out.exists() and not list(tmp_path.glob("*.lackey"))


def test_cli_record_help_shows_the_command_after_a_double_dash():
    r = runner.invoke(app, ["record", "--help"])
    assert r.exit_code == 0 and "-- CMD" in r.output and "--no-syscalls" in r.output


_FAKE_VALGRIND = '''#!{python}
"""A stand-in for valgrind: records its argv, writes a small lackey trace to --log-fd."""
import os, sys
args = sys.argv[1:]
open({argv_file!r}, "w").write("\\n".join(args))
fd = int(next(a for a in args if a.startswith("--log-fd="))[len("--log-fd="):])
text = "==9== Lackey, an example Valgrind tool\\nI  00400000,4\\n S 04000000,8\\n"
if "--trace-syscalls=yes" in args:
    text += "SYSCALL[9,1](11) sys_munmap ( 0x4000000, 4096 )[sync] --> Success(0x0) \\n"
os.write(fd, text.encode())
'''


@pytest.mark.parametrize("extra", [[], ["--no-syscalls"]])
def test_cli_record_traces_syscalls_by_default_and_no_syscalls_turns_it_off(tmp_path, monkeypatch, extra):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    argv_file = tmp_path / "argv.txt"
    fake = bindir / "valgrind"
    fake.write_text(_FAKE_VALGRIND.format(python=sys.executable, argv_file=str(argv_file)))
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    out = tmp_path / "t.parquet"
    r = runner.invoke(app, ["record", "-o", str(out), *extra, "--json", "--", "prog", "arg1"])
    assert r.exit_code == 0, r.output
    argv = argv_file.read_text().split("\n")
    assert argv[:2] == ["--tool=lackey", "--trace-mem=yes"] and argv[-2:] == ["prog", "arg1"]
    d = json.loads(r.stdout)
    if extra:
        assert "--trace-syscalls=yes" not in argv and d["unmaps"] == 0
    else:
        assert "--trace-syscalls=yes" in argv and d["unmaps"] == 1 and d["unmapped_bytes"] == 4096


def test_cli_ingest_and_info_tables_show_unmaps_and_unmapped_bytes(tmp_path):
    trace = DATA / "conformance" / "tiny_lifecycle.lackey"
    r = runner.invoke(app, ["ingest", str(trace), "-o", str(tmp_path / "t.parquet")])
    assert r.exit_code == 0, r.output
    assert "(unmaps)" in r.output and "1,076,121,600" in r.output
    r = runner.invoke(app, ["info", str(tmp_path / "t.parquet")])
    assert r.exit_code == 0 and "(unmaps)" in r.output and "1,076,121,600 (1.0 GiB)" in r.output
