"""Opening trace files: transparent decompression, hashing of the raw bytes, newline-aligned blocks.

Every reader gets its text through :class:`Source`: it reads the file (or a pipe) in blocks of
``block_bytes`` (bytes), decompresses ``.gz`` / ``.xz`` / ``.zst`` on the fly (detected from the
magic bytes, not the name), and hashes the *raw* (possibly compressed) bytes as they pass, so the
SHA-256 in :attr:`Source.identity` is that of the file on disk. Memory use is bounded by about two
blocks whatever the file size.

A regular file can instead be hashed by a :class:`FileHash`: a background thread that reads the file
through its own descriptor, so the hash need not wait for the parser (``ingest`` starts it before its
heavy imports). The source then checks at :meth:`Source.finish` that the hashed bytes are the parsed
ones (same byte count, size and modification time unchanged while hashing), else a
:class:`~memmodel.errors.TraceError`: a store never names a hash of other bytes than it holds.

Invariant of :meth:`Source.blocks`: every yielded block but the last ends with a line end (``b"\\n"``,
or a lone ``b"\\r"`` that is not followed by ``b"\\n"``: CR-only files); the concatenation of all
blocks is exactly the decompressed text.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import lzma
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from pathlib import Path
from typing import IO, Any

from memmodel.errors import TraceError

#: Default block size for text reading (bytes). 16 MiB balances call overhead and memory; for a
#: stream hashed as it is read (a pipe), each block is also one hand-off to the hashing thread.
BLOCK_BYTES = 16 << 20
#: Block size for text whose hash is computed aside (a :class:`FileHash`; bytes). Why smaller: a
#: block that stays in the core's cache between being copied in and being scanned makes the lackey
#: reader faster: 0.37 s instead of 0.41-0.56 s for the 493.6 MB benchmark text (1-2 MiB alike,
#: 512 KiB 0.40 s), while hashing per block makes small blocks slower (0.70 s at 1 MiB, 0.58 s at
#: 16 MiB), hence the two sizes.
FILE_BLOCK_BYTES = 2 << 20

_MAGIC_GZ = b"\x1f\x8b"
_MAGIC_XZ = b"\xfd7zXZ\x00"
_MAGIC_ZST = b"\x28\xb5\x2f\xfd"


def compression_of(head: bytes) -> str | None:
    """The compression a file uses, from its first bytes: ``"gz"``, ``"xz"``, ``"zst"`` or ``None``."""
    if head.startswith(_MAGIC_GZ):
        return "gz"
    if head.startswith(_MAGIC_XZ):
        return "xz"
    if head.startswith(_MAGIC_ZST):
        return "zst"
    return None


class FileHash:
    """SHA-256 and byte count of a regular file, computed in the background from its own descriptor.

    Why: in ``memmodel ingest`` the hash (0.28 s of the 493.6 MB benchmark text, plus 0.1 s to read it)
    can then run on the second core while the main thread is still importing numpy and pyarrow (0.3 s
    during which that core was idle) instead of competing with the scanner and the Parquet writer.

    Args:
        path: a regular file (not a pipe: it is read a second time).
        pool: the executor that runs the hashing (one worker: files are hashed one after another).
    """

    #: Read size (bytes): large enough that ``hashlib`` releases the GIL and calls are few.
    CHUNK = 8 << 20

    def __init__(self, path: str | os.PathLike[str], pool: Executor) -> None:
        self.path = str(path)
        self._stop = threading.Event()
        self._future = pool.submit(self._run)

    def _run(self) -> tuple[int, str, bool]:
        """(bytes, hex digest, whether size and mtime stayed the same while hashing)."""
        sha = hashlib.sha256()
        buf = bytearray(self.CHUNK)
        mv = memoryview(buf)
        n = 0
        with open(self.path, "rb", buffering=0) as f:
            before = os.fstat(f.fileno())
            while not self._stop.is_set():
                got = f.readinto(buf)
                if not got:
                    break
                sha.update(mv[:got])
                n += got
            after = os.fstat(f.fileno())
        stable = before.st_size == after.st_size == n and before.st_mtime_ns == after.st_mtime_ns
        return n, sha.hexdigest(), stable

    def cancel(self) -> None:
        """Stop hashing soon (the ingest failed); :meth:`result` must not be called afterwards."""
        self._stop.set()
        self._future.cancel()

    def result(self, name: str) -> tuple[int, str, bool]:
        """(bytes, sha256 hex, stable) once hashing is done.

        Raises:
            TraceError: the file could not be read (named as ``name``).
        """
        try:
            return self._future.result()
        except OSError as exc:
            raise TraceError(f"{name}: cannot read trace: {exc.strerror or exc}") from None


class _HashingReader(io.RawIOBase):
    """A raw binary reader that feeds every byte it returns into SHA-256 (unless ``hashing`` is off) and counts them."""

    def __init__(self, f: IO[bytes], hashing: bool = True) -> None:
        self._f = f
        self.sha = hashlib.sha256()
        self.hashing = hashing
        self.nbytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self._f.read(len(b))
        n = len(data)
        b[:n] = data
        if self.hashing:
            self.sha.update(data)
        self.nbytes += n
        return n

    def read(self, size: int = -1) -> bytes:
        data = self._f.read(size)
        if self.hashing:
            self.sha.update(data)
        self.nbytes += len(data)
        return data


class Source:
    """One trace input (a path or an open binary stream), read once from start to end.

    Args:
        src: a file path, or an open binary file object (e.g. a pipe) read to its end.
        name: the name used in messages and metadata (defaults to the path).
        progress: optional callback, called with the number of raw bytes consumed so far.
        file_hash: the background hash of ``src`` (a regular file path); the source then hashes
            nothing itself and :meth:`finish` checks that the hashed bytes are the ones read.
    """

    def __init__(
        self,
        src: str | os.PathLike[str] | IO[bytes],
        name: str | None = None,
        progress: Callable[[int], None] | None = None,
        file_hash: FileHash | None = None,
    ) -> None:
        if isinstance(src, str | os.PathLike):
            path = Path(src)
            try:
                self._file: IO[bytes] = open(path, "rb")  # noqa: SIM115 - closed in close()
            except OSError as exc:
                raise TraceError(f"{path}: cannot open trace: {exc.strerror or exc}") from None
            self.name = name or str(path)
            self.path: str | None = str(path)
        else:
            self._file = src
            self.name = name or str(getattr(src, "name", "<stream>"))
            self.path = None
        self._file_hash = file_hash
        self._hashed: tuple[int, str] | None = None
        self._raw = _HashingReader(self._file, hashing=file_hash is None)
        self._pending_head = b""
        head = self._peek_raw()
        self.compression = compression_of(head)
        self._text: IO[bytes] = self._open_text()
        self._progress = progress
        self._unhashed: list[tuple[int, int]] = []

    def _peek_raw(self) -> bytes:
        self._head = self._raw.read(8)
        return self._head

    def _open_text(self) -> IO[bytes]:
        raw: IO[bytes] = io.BufferedReader(_Prepend(self._head, self._raw), buffer_size=1 << 20)  # type: ignore[arg-type]
        if self.compression is None:
            # plain text: read the file directly (after the peeked head) and hash in blocks()
            self._pending_head = self._head
            return self._file
        if self.compression == "gz":
            return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
        if self.compression == "xz":
            return lzma.LZMAFile(raw, mode="rb")
        if self.compression == "zst":
            import zstandard

            return zstandard.ZstdDecompressor().stream_reader(raw, read_size=1 << 20)  # type: ignore[no-any-return]
        return raw

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes of decompressed text (``b""`` at the end); for small reads (detection)."""
        buf = bytearray(n)
        got = self._readinto(memoryview(buf), hash_now=True)
        return bytes(buf[:got])

    def unread(self, data: bytes) -> None:
        """Push text back so that the next reads return ``data`` first (after detection peeks)."""
        self._pending_head = data + self._pending_head

    def _readinto(self, mv: memoryview, hash_now: bool = False) -> int:
        """Fill ``mv`` as far as the input allows; returns bytes placed (0 only at the end)."""
        total = 0
        if self._pending_head:
            # peeked / pushed-back text: already hashed and counted when it was read
            head = self._pending_head[: len(mv)]
            mv[: len(head)] = head
            self._pending_head = self._pending_head[len(head) :]
            total = len(head)
        while total < len(mv):
            try:
                reader: Any = self._file if self.compression is None else self._text
                n = reader.readinto(mv[total:])
            except (OSError, EOFError, lzma.LZMAError) as exc:
                raise TraceError(f"{self.name}: cannot decompress ({self.compression}): {exc}") from None
            except Exception as exc:  # zstandard.ZstdError
                if type(exc).__name__ == "ZstdError":
                    raise TraceError(f"{self.name}: cannot decompress (zst): {exc}") from None
                raise
            if not n:
                break
            if self.compression is None:
                if self._file_hash is None:  # (else the FileHash thread hashes the file)
                    if hash_now:
                        self._raw.sha.update(mv[total : total + n])
                    else:
                        self._unhashed.append((total, total + n))
                self._raw.nbytes += n
            total += n
        if self._progress is not None:
            self._progress(self._raw.nbytes)
        return total

    def blocks(self, block_bytes: int = BLOCK_BYTES) -> Iterator[memoryview]:
        """Line-aligned blocks of the text; only the last may lack a final line end (see module doc).

        Each block is a view into a reused buffer: it is valid only until the next block is requested.
        Hashing of plain (uncompressed) input runs in a helper thread while the caller parses the block.
        """
        from concurrent.futures import ThreadPoolExecutor

        buf = bytearray(block_bytes)
        mv = memoryview(buf)
        carry = 0
        with ThreadPoolExecutor(max_workers=1) as pool:
            while True:
                if carry == len(buf):  # one line longer than the block: grow the buffer
                    nbuf = bytearray(2 * len(buf))
                    nbuf[:carry] = buf
                    buf, mv = nbuf, memoryview(nbuf)
                self._unhashed = []
                n = self._readinto(mv[carry:])
                fut = None
                if self._unhashed:
                    lo, hi = carry + self._unhashed[0][0], carry + self._unhashed[-1][1]
                    fut = pool.submit(self._raw.sha.update, mv[lo:hi])
                if n == 0:
                    if carry:
                        yield mv[:carry]
                    return
                filled = carry + n
                cut = buf.rfind(b"\n", 0, filled) + 1
                if cut == 0:
                    # no LF at all (CR-only line ends?): cut after the last CR whose next byte is known
                    # and is not LF (a CR in the last byte may be the first half of a CRLF)
                    cut = buf.rfind(b"\r", 0, filled - 1) + 1
                if cut == 0:
                    carry = filled
                    if fut is not None:
                        fut.result()
                    continue
                yield mv[:cut]
                if fut is not None:
                    fut.result()
                rest = filled - cut
                if rest:
                    buf[:rest] = buf[cut:filled]
                carry = rest

    def finish(self) -> None:
        """Read any raw bytes the decompressor left (so the hash covers the whole file), then close.

        With a :class:`FileHash`, wait for it and check it covers exactly the bytes read.

        Raises:
            TraceError: the file changed while it was read (its hash would not describe the records).
        """
        while self._raw.read(1 << 20):
            pass
        self.close()
        if self._file_hash is not None:
            n, digest, stable = self._file_hash.result(self.name)
            if not stable or n != self._raw.nbytes:
                raise TraceError(
                    f"{self.name}: the file changed while it was being read ({self._raw.nbytes:,} bytes parsed, "
                    f"{n:,} hashed); ingest it again once it is complete"
                )
            self._hashed = (n, digest)

    def close(self) -> None:
        """Close the underlying file (only if this object opened it)."""
        if self.path is not None:
            self._file.close()

    @property
    def identity(self) -> dict[str, Any]:
        """``{"path", "bytes", "sha256", "compression"}`` of the raw input (complete after :meth:`finish`)."""
        nbytes, digest = self._hashed or (self._raw.nbytes, self._raw.sha.hexdigest())
        return {
            "path": self.name,
            "bytes": nbytes,
            "sha256": digest,
            "compression": self.compression,
        }


class _Prepend(io.RawIOBase):
    """A raw reader that returns ``head`` first, then the rest of ``rest``."""

    def __init__(self, head: bytes, rest: _HashingReader) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self._head:
            n = min(len(b), len(self._head))
            b[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        return self._rest.readinto(b)


def head_lines(path: str | os.PathLike[str], max_lines: int = 200, max_bytes: int = 1 << 20) -> list[bytes]:
    """The first ``max_lines`` lines (without line ends) of a possibly compressed file, for detection."""
    src = Source(path)
    try:
        data = src.read(max_bytes)
    finally:
        src.close()
    return data.splitlines()[:max_lines]


def file_sha256(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``{"path", "bytes", "sha256"}`` of a file on disk, read in 4 MiB blocks."""
    sha = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        while True:
            b = f.read(4 << 20)
            if not b:
                break
            sha.update(b)
            n += len(b)
    return {"path": str(path), "bytes": n, "sha256": sha.hexdigest()}
