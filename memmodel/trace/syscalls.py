"""Valgrind ``--trace-syscalls=yes`` lines in a lackey trace -> ``U`` (unmap) records.

The rules are docs/model.md section 1 (the project's ``docs`` restate them); this module is the state
machine that applies them, one syscall line at a time, for :mod:`memmodel.trace.lackey`.

Line forms (valgrind 3.19 ``coregrind/m_syswrap/syswrap-main.c``; ``R``/``E`` decimal or ``0x`` hex):

* begin and complete on one line::

      SYSCALL[pid,tid](nr) sys_munmap ( 0x4b2b000, 1048576 )[sync] --> Success(0x0)
      SYSCALL[pid,tid](nr) sys_brk ( 0x0 ) --> [pre-success] Success(0x4035000)

* a blocking call: ``... --> [async] ...``, completed later by
  ``SYSCALL[pid,tid](nr) ... [async] --> Success(R)`` of the same pid, tid and nr (the most recently
  begun such call still pending);
* a beginning line without ``-->`` (valgrind glued a ``==pid==`` message to it, or printed a warning
  such as ``unimplemented (by the kernel) syscall``), completed by a later *continuation* line whose
  first non-space text is ``-->`` or ``[sync] -->``: it completes the most recently begun call (of any
  pid) that has not completed; a continuation ``--> [async] ...`` makes that call a pending blocking
  call instead.

Calls that give a ``U`` when they complete with ``Success(R)`` (nothing on ``Failure``):
``sys_munmap(A, N)`` -> ``U(A, N)``; ``sys_madvise(A, N, ADV)`` with ADV 4, 8 or 9 -> ``U(A, N)``;
``sys_brk``: per pid, the first success sets the break B, a later ``R < B`` gives ``U(R, B - R)``, then
B = R; ``sys_mremap(OLD, OLDSIZE, NEWSIZE, ...)``: ``R != OLD`` -> ``U(OLD, OLDSIZE)``, else
``NEWSIZE < OLDSIZE`` -> ``U(OLD + NEWSIZE, OLDSIZE - NEWSIZE)``. The ``U`` is placed where the call
completes: the line that completes it is the ``U`` record's line, every other syscall line is a known
non-record line. Addresses and lengths are kept exactly as the program passed them (an unaligned start
or a zero length too): the engine rounds (section 7).

**Decision (not in docs/model.md):** a completion line that matches no open call (a trace cut at its start)
and calls still open at the end (a process killed in a blocking call) change nothing; they are counted
in the reader's notes (``unmatched_syscall_completions``, ``uncompleted_syscalls``) with a warning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Largest value of a 64-bit register (bytes for addresses and lengths).
_MAX_U64 = (1 << 64) - 1

#: MADV_DONTNEED, MADV_FREE, MADV_REMOVE: the advice values that give the range back (section 1).
UNMAP_ADVICE = frozenset({4, 8, 9})

#: The calls that can give a ``U`` and how many leading arguments the rules read.
_NEEDED_ARGS = {"munmap": 2, "madvise": 3, "brk": 1, "mremap": 3}

_SYSCALL = re.compile(rb"^SYSCALL\[(\d+),(\d+)\]\(\s*(\d+)\)\s?(.*)$", re.S)
_ASYNC_DONE = re.compile(rb"^\.\.\. \[async\] -->(.*)$", re.S)
_GLUED = re.compile(rb"==\d+==")
_CALL = re.compile(rb"^sys_(munmap|madvise|brk|mremap)\s*\(([^()]*)\)")
_NUMBER = re.compile(rb"^(-?)(0[xX][0-9a-fA-F]+|[0-9]+)$")
_STATUS = re.compile(rb"^(?:\[[a-z-]+\]\s*)?(Success|Failure)\((0[xX][0-9a-fA-F]+|[0-9]+)\)$")
_ASYNC_PENDING = re.compile(rb"^\[async\]\s*\.\.\.$")

_EXPECTED_STATUS = (
    "expected 'Success(R)' or 'Failure(E)' (decimal or 0x hex, optionally after a tag such as "
    "'[pre-success]') or '[async] ...' after '-->'"
)


class SyscallLineError(ValueError):
    """A line that is a syscall line but cannot be read (the message says what was expected)."""


@dataclass
class _Call:
    """A call that has begun and not completed (yet)."""

    pid: int
    tid: int
    nr: int
    name: str | None  # munmap / madvise / brk / mremap, or None for a call that never gives a U
    args: tuple[int, ...]
    pending_async: bool  # a blocking call waiting for its '... [async] -->' line
    line: int  # where it began (for the warning about calls left open)


def _number(tok: bytes, what: str, signed: bool = False) -> int:
    m = _NUMBER.match(tok.strip())
    if not m:
        raise SyscallLineError(f"{what} {tok.strip().decode(errors='replace')!r} is not a decimal or 0x-hex number")
    v = int(m.group(2), 0) if m.group(2)[:2].lower() == b"0x" else int(m.group(2))
    if m.group(1):
        if not signed:
            raise SyscallLineError(f"{what} {tok.strip().decode(errors='replace')!r} is negative")
        v = -v
    if v > _MAX_U64:
        raise SyscallLineError(f"{what} {tok.strip().decode(errors='replace')!r} does not fit 64 bits")
    return v


def _status(text: bytes) -> tuple[bool, int] | None:
    """``(success, value)`` from the text after ``-->``, or ``None`` for ``[async] ...`` (still pending)."""
    t = text.strip()
    if _ASYNC_PENDING.match(t):
        return None
    m = _STATUS.match(t)
    if not m:
        raise SyscallLineError(_EXPECTED_STATUS)
    return m.group(1) == b"Success", _number(m.group(2), "result")


class SyscallTracker:
    """Applies the section-1 syscall rules to the syscall lines of one lackey input, in file order.

    Attributes:
        unmatched: completion lines that matched no open call (counted, they change nothing).
    """

    def __init__(self) -> None:
        self._open: list[_Call] = []  # begun, not completed, in begin order
        self._breaks: dict[int, int] = {}  # current break of each pid (bytes)
        self.unmatched = 0

    def feed(self, text: bytes, line: int) -> tuple[bool, tuple[int, int] | None]:
        """Read one line that the record scanner did not recognise.

        Args:
            text: the line without its line end.
            line: its 1-based line number (kept for the warning about calls left open).

        Returns:
            ``(is_syscall_line, unmap)``: ``is_syscall_line`` is False when the line is no syscall line
            (the caller reports it as a bad line); ``unmap`` is ``(gva, size)`` (bytes) of the ``U`` record
            this line completes, else ``None``.

        Raises:
            SyscallLineError: a syscall line that cannot be read; the state is left unchanged.
        """
        s = text.strip()
        if s.startswith(b"-->") or s.startswith(b"[sync] -->"):
            st = _status(s.split(b"-->", 1)[1])
            return True, self._continue(st)
        m = _SYSCALL.match(s)
        if m is None:
            if s.startswith(b"SYSCALL["):
                raise SyscallLineError(
                    "expected a syscall line 'SYSCALL[pid,tid](nr) sys_NAME ( ARGS ) ...' or "
                    "'SYSCALL[pid,tid](nr) ... [async] --> Success(R)'"
                )
            return False, None
        pid, tid, nr = int(m.group(1)), int(m.group(2)), int(m.group(3))
        body = m.group(4).rstrip()
        done = _ASYNC_DONE.match(body)
        if done is not None:
            st = _status(done.group(1))
            if st is None:
                raise SyscallLineError("an '... [async] -->' line must give 'Success(R)' or 'Failure(E)'")
            return True, self._async_done(pid, tid, nr, st)
        return True, self._begin(pid, tid, nr, body, line)

    def _begin(self, pid: int, tid: int, nr: int, body: bytes, line: int) -> tuple[int, int] | None:
        glued = _GLUED.search(body) if b"==" in body else None
        head = body[: glued.start()] if glued else body
        name: str | None = None
        args: tuple[int, ...] = ()
        c = _CALL.match(head) if head.startswith(b"sys_") else None
        if c is not None:
            name = c.group(1).decode()
            toks = c.group(2).split(b",")
            if len(toks) < _NEEDED_ARGS[name] or not c.group(2).strip():
                raise SyscallLineError(f"sys_{name} needs at least {_NEEDED_ARGS[name]} argument(s)")
            # madvise's advice is printed signed (%ld); addresses and lengths are unsigned
            args = tuple(
                _number(t, f"sys_{name} argument {i + 1}", signed=(name == "madvise" and i == 2))
                for i, t in enumerate(toks[: _NEEDED_ARGS[name]])
            )
            if name == "mremap" and args[2] < args[1] and args[0] + args[2] > _MAX_U64:
                raise SyscallLineError("sys_mremap: OLD + NEWSIZE is beyond the 64-bit address space")
        st: tuple[bool, int] | None = None
        completes = b"-->" in head
        if completes:
            st = _status(head.rsplit(b"-->", 1)[1])
        if completes and st is not None and name is None:
            return None  # the common case: a call that gives no U, begun and completed here
        call = _Call(pid, tid, nr, name, args, pending_async=completes and st is None, line=line)
        if completes and st is not None:
            return self._complete(call, st)
        self._open.append(call)
        return None

    def _continue(self, st: tuple[bool, int] | None) -> tuple[int, int] | None:
        if not self._open:
            self.unmatched += 1
            return None
        call = self._open[-1]
        if st is None:
            call.pending_async = True
            return None
        self._open.pop()
        return self._complete(call, st)

    def _async_done(self, pid: int, tid: int, nr: int, st: tuple[bool, int]) -> tuple[int, int] | None:
        for i in range(len(self._open) - 1, -1, -1):
            c = self._open[i]
            if c.pending_async and c.pid == pid and c.tid == tid and c.nr == nr:
                del self._open[i]
                return self._complete(c, st)
        self.unmatched += 1
        return None

    def _complete(self, call: _Call, st: tuple[bool, int]) -> tuple[int, int] | None:
        ok, r = st
        if not ok or call.name is None:
            return None
        a = call.args
        if call.name == "munmap":
            return a[0], a[1]
        if call.name == "madvise":
            return (a[0], a[1]) if a[2] in UNMAP_ADVICE else None
        if call.name == "brk":
            b = self._breaks.get(call.pid)
            self._breaks[call.pid] = r
            if b is not None and r < b:
                return r, b - r
            return None
        # mremap: a moved mapping is unmapped at OLD (and faulted afresh where it lands)
        old, oldsize, newsize = a[0], a[1], a[2]
        if r != old:
            return old, oldsize
        if newsize < oldsize:  # OLD + NEWSIZE < 2^64 was checked when the call began
            return old + newsize, oldsize - newsize
        return None

    def open_calls(self) -> list[tuple[int, int, int, str | None, int]]:
        """Calls begun and never completed: ``(pid, tid, nr, name, line)`` in begin order."""
        return [(c.pid, c.tid, c.nr, c.name, c.line) for c in self._open]
