"""Issue 11, writes: every output path fails with one clean line naming the file, never a traceback,
never a partial file at the target (checked before the long work where cheap, written atomically).

Read-only file systems and full disks are simulated in-process (root ignores permission bits): the
final ``os.replace`` raising EROFS and ``os.fsync`` raising ENOSPC, the two places where a real
read-only or full file system surfaces after a writer library has written its data. Where the test
runs as root with mount rights, a real 64 KiB tmpfs is filled as well.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from memmodel.cli import app

DATA = Path(__file__).resolve().parent.parent / "data"
TINY = str(DATA / "conformance" / "tiny.lackey")
runner = CliRunner()

# every command that writes a file: (name, args writing to OUT); OUT's suffix matters for some
OUTPUTS: dict[str, tuple[str, Callable[[str], list[str]]]] = {
    "ingest -o": (".parquet", lambda out: ["ingest", TINY, "-o", out]),
    "simulate --json": (".json", lambda out: ["simulate", TINY, "-c", "baseline-4k", "--json", out]),
    "mrc -o": (".json", lambda out: ["mrc", TINY, "-c", "baseline-4k", "--sizes", "4,8", "-o", out]),
    "mrc --html": (".html", lambda out: ["mrc", TINY, "-c", "baseline-4k", "--sizes", "4,8", "--html", out]),
    "compare --report": (".html", lambda out: ["compare", TINY, "-c", "baseline-thp", "-c", "memctl-2m",
                                               "--report", out]),
    "compare --json": (".json", lambda out: ["compare", TINY, "-c", "baseline-thp", "-c", "memctl-2m",
                                             "--json", out]),
    "calibrate -o": (".toml", lambda out: ["calibrate", "--size-mib", "2", "--touch-mib", "2", "--repeats", "1",
                                           "-o", out]),
    "sweep -o": (".parquet", lambda out: ["sweep", TINY, "-c", "baseline-4k", "--workers", "1", "-o", out]),
}


def assert_clean_error(res: Result, *needles: str) -> None:
    """Non-zero exit, no traceback, an 'error:' line, every needle in the output."""
    assert res.exit_code not in (0, None), res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output
    assert "error:" in res.output
    for n in needles:
        assert n in res.output, (n, res.output)


def _leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.endswith((".tmp", ".probe")))


@pytest.mark.parametrize("cmd", ["ingest -o", "simulate --json", "mrc -o", "mrc --html", "compare --report",
                                 "compare --json", "calibrate -o", "sweep -o"])
def test_output_in_a_missing_directory_is_a_clean_error_before_the_work(cmd: str, tmp_path: Path) -> None:
    suffix, args = OUTPUTS[cmd]
    out = tmp_path / "no" / "such" / f"out{suffix}"
    res = runner.invoke(app, args(str(out)))
    assert_clean_error(res, str(out), "does not exist")
    assert not out.parent.exists()


@pytest.mark.parametrize("cmd", ["ingest -o", "simulate --json", "mrc -o", "compare --report", "calibrate -o",
                                 "sweep -o"])
def test_output_that_is_an_existing_directory_is_a_clean_error(cmd: str, tmp_path: Path) -> None:
    suffix, args = OUTPUTS[cmd]
    out = tmp_path / f"adir{suffix}"
    out.mkdir()
    res = runner.invoke(app, args(str(out)))
    assert_clean_error(res, str(out), "directory")
    assert out.is_dir() and not any(out.iterdir())


def _fail_replace(code: int) -> Callable[..., None]:
    def replace(src: object, dst: object) -> None:
        raise OSError(code, os.strerror(code), str(dst))

    return replace


def _fail_fsync(code: int) -> Callable[[int], None]:
    def fsync(fd: int) -> None:
        raise OSError(code, os.strerror(code))

    return fsync


@pytest.mark.parametrize("cmd", ["ingest -o", "simulate --json", "mrc -o", "mrc --html", "compare --report",
                                 "calibrate -o"])
@pytest.mark.parametrize(("fault", "code", "words"), [
    ("replace", errno.EROFS, "read-only"),
    ("fsync", errno.ENOSPC, "no space left"),
    ("replace", errno.EACCES, "permission denied"),
])
def test_read_only_or_full_file_system_leaves_no_partial_file(
    cmd: str, fault: str, code: int, words: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    suffix, args = OUTPUTS[cmd]
    out = tmp_path / f"out{suffix}"
    if fault == "replace":
        monkeypatch.setattr(os, "replace", _fail_replace(code))
    else:
        monkeypatch.setattr(os, "fsync", _fail_fsync(code))
    res = runner.invoke(app, args(str(out)))
    monkeypatch.undo()
    assert_clean_error(res, str(out), words)
    assert not out.exists()
    assert _leftovers(tmp_path) == []


def test_full_disk_keeps_the_previous_report_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "r.html"
    out.write_text("previous report")
    monkeypatch.setattr(os, "fsync", _fail_fsync(errno.ENOSPC))
    res = runner.invoke(app, OUTPUTS["compare --report"][1](str(out)))
    monkeypatch.undo()
    assert_clean_error(res, str(out), "no space left", "left unchanged")
    assert out.read_text() == "previous report"
    assert _leftovers(tmp_path) == []


@pytest.mark.slow
def test_sweep_table_on_a_full_disk_is_a_clean_error_and_keeps_parts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "r.parquet"
    real_fsync = os.fsync

    def fsync(fd: int) -> None:  # parts can be written, the final table cannot
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(tmp_path / ".r.parquet.")):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    res = runner.invoke(app, OUTPUTS["sweep -o"][1](str(out)))
    monkeypatch.undo()
    assert_clean_error(res, str(out), "no space left")
    assert not out.exists()
    assert len(list((tmp_path / "r.parquet.parts").glob("*.parquet"))) == 1  # the finished point is kept
    assert _leftovers(tmp_path) == []


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Path:
    """A real 64 KiB tmpfs (needs root with mount rights: skipped elsewhere)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root with the right to mount a tmpfs")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=False)


def test_real_full_tmpfs_report_is_a_clean_error_without_partial_file(tiny_tmpfs: Path) -> None:
    out = tiny_tmpfs / "r.html"  # the report embeds plotly.js (MBs): it cannot fit in 64 KiB
    res = runner.invoke(app, OUTPUTS["compare --report"][1](str(out)))
    assert_clean_error(res, str(out), "no space left")
    assert list(tiny_tmpfs.iterdir()) == []


def test_real_read_only_mount_is_found_before_the_work(tiny_tmpfs: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_tmpfs)], check=True)
    out = tiny_tmpfs / "t.parquet"
    res = runner.invoke(app, OUTPUTS["ingest -o"][1](str(out)))
    assert_clean_error(res, str(out), "read-only")


def test_atomic_outputs_get_the_usual_permissions(tmp_path: Path) -> None:
    out = tmp_path / "t.parquet"
    assert runner.invoke(app, OUTPUTS["ingest -o"][1](str(out))).exit_code == 0
    mask = os.umask(0o022)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~mask  # not the 0600 of a private temporary file


def test_ingest_refuses_to_write_over_its_own_input(tmp_path: Path) -> None:
    trace = tmp_path / "t.lackey"
    trace.write_bytes(Path(TINY).read_bytes())
    before = trace.read_bytes()
    res = runner.invoke(app, ["ingest", str(trace), "-o", str(tmp_path / "." / "t.lackey")])
    assert_clean_error(res, "t.lackey", "also an input")
    assert trace.read_bytes() == before
