"""Writing output files safely: checked early, written atomically, failures as one clean line.

Every file memmodel writes (trace stores, JSON results, curves, sweep tables and parts, HTML reports,
cost tables) goes through this module:

* :func:`check_output` runs the cheap checks **before** the long work (an ingest or a replay can take
  hours): the parent directory exists and is a directory, the target is not a directory, and a probe
  file can be created in the directory (this catches read-only filesystems, also for root, whom
  permission bits do not stop).
* :func:`atomic_output` yields a temporary path in the target's directory; when the block succeeds the
  temporary file is flushed to disk (``fsync``) and renamed over the target (``rename`` is atomic within
  one filesystem), so a reader sees the old file or the complete new one, never a prefix. On any
  failure (disk full, read-only, Ctrl-C) the temporary file is removed and the target is untouched.
* Every ``OSError`` becomes an :class:`~memmodel.errors.OutputError` naming the path and the reason in
  words (``ENOSPC``, ``EROFS``, ``EACCES``, ``EISDIR``, ``ENOENT``...).

Invariant: after any call, ``path`` holds either its previous content (or does not exist) or the
complete new content; no ``*.tmp`` file of ours is left behind except after ``kill -9``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from memmodel.errors import MemmodelError, OutputError

_REASONS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EISDIR: "it is a directory",
    errno.ENOTDIR: "a component of the path is not a directory",
    errno.EFBIG: "the file is too large for the file system",
    errno.ENAMETOOLONG: "the file name is too long",
    errno.EIO: "input/output error on the device",
}
# pyarrow and polars (Rust) carry the errno only in their message text
_ERRNO_IN_TEXT = re.compile(r"\[Errno (\d+)\]|\(os error (\d+)\)")


def _errno_of(exc: BaseException) -> int | None:
    code = getattr(exc, "errno", None)
    if isinstance(code, int):
        return code
    m = _ERRNO_IN_TEXT.search(str(exc))
    if m:
        return int(m.group(1) or m.group(2))
    return None


def reason(exc: BaseException, path: str | os.PathLike[str]) -> str:
    """Why writing ``path`` failed, in words (no traceback, no errno number to look up)."""
    p = Path(path)
    code = _errno_of(exc)
    if code == errno.ENOENT or (code is None and not p.parent.is_dir()):
        return f"the directory {p.parent} does not exist" if not p.parent.is_dir() else "no such file or directory"
    if code in _REASONS:
        return _REASONS[code]
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text.splitlines()[0] if text.strip() else type(exc).__name__


def output_error(exc: BaseException, path: str | os.PathLike[str], what: str, existed: bool) -> OutputError:
    """The one-line :class:`OutputError` for a failed write of ``path`` (says what was kept)."""
    kept = f"{path} was left unchanged" if existed else "no file was written"
    return OutputError(f"{path}: cannot write the {what}: {reason(exc, path)}; {kept}")


def check_output(path: str | os.PathLike[str], what: str = "output") -> Path:
    """Fail early (before the long work) if ``path`` cannot be written; returns it as a ``Path``.

    Checks that the parent directory exists and is a directory, that ``path`` is not a directory,
    and that a file can be created in the directory (a probe file, removed at once).

    Raises:
        OutputError: naming ``path`` and the reason.
    """
    p = Path(path)
    parent = p.parent
    if p.is_dir():
        raise OutputError(f"{p}: cannot write the {what}: it is an existing directory; give a file name")
    if not parent.exists():
        raise OutputError(f"{p}: cannot write the {what}: the directory {parent} does not exist")
    if not parent.is_dir():
        raise OutputError(f"{p}: cannot write the {what}: {parent} is not a directory")
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=f".{p.name}.", suffix=".probe")
    except OSError as exc:
        raise output_error(exc, p, what, p.exists()) from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return p


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], what: str = "output") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically.

    The caller writes the whole file to the yielded path (with any writer: ``open``, pyarrow,
    polars). On success the file is fsync'ed, given the usual permissions (0666 minus the umask)
    and renamed to ``path``; on any exception the temporary file is removed, ``path`` is untouched,
    and an ``OSError`` is re-raised as :class:`OutputError` naming ``path``.

    Args:
        path: the file to produce.
        what: what the file is, for the message ("trace store", "HTML report", ...).
    """
    p = check_output(path, what)
    existed = p.exists()
    try:
        fd, tmp_name = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
        os.close(fd)
    except OSError as exc:
        raise output_error(exc, p, what, existed) from None
    tmp = Path(tmp_name)
    try:
        yield tmp
        commit(tmp, p, what, existed)
    except OSError as exc:
        raise output_error(exc, p, what, existed) from None
    except Exception as exc:
        # a writer library's own I/O error type (polars, arrow) carries the errno in its text
        if not isinstance(exc, MemmodelError) and _errno_of(exc) is not None:
            raise output_error(exc, p, what, existed) from None
        raise
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def commit(tmp: str | os.PathLike[str], path: str | os.PathLike[str], what: str = "output",
           existed: bool | None = None) -> None:
    """Make a completely written temporary file the output: permissions, fsync, atomic rename.

    For writers that manage their own temporary file in the target's directory (the streaming
    ingest). ``tmp`` is removed if the rename fails.

    Raises:
        OutputError: naming ``path`` (``path`` keeps its previous content).
    """
    p = Path(path)
    if existed is None:
        existed = p.exists()
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, p)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise output_error(exc, p, what, existed) from None
    _fsync_dir(p.parent)


def _fsync_dir(d: Path) -> None:
    """Make the rename durable (best effort: some file systems cannot fsync a directory)."""
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes(path: str | os.PathLike[str], data: bytes, what: str = "output") -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_output`); returns the path."""
    with atomic_output(path, what) as tmp, open(tmp, "wb") as f:
        f.write(data)
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str, what: str = "output") -> Path:
    """Write ``text`` as UTF-8 to ``path`` atomically (see :func:`atomic_output`); returns the path."""
    return write_bytes(path, text.encode("utf-8"), what)
